"""Weights: safetensors files with a JSON model card beside them, sha256-checked, never unpickled.

A weights file ``NAME.safetensors`` (fp16 for shipped weights) has its model card ``NAME.json`` beside it:
architecture, input size, normalisation, training command, data, epochs, metrics and the file's sha256
(the layout of segmentation_models_pytorch's ``save_pretrained``: a model can be rebuilt from its files).
Training checkpoints (``*.pt``, for ``--resume``) are read with ``torch.load(weights_only=True)`` only.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from unetcli.errors import WeightsError
from unetcli.imageio import atomic_write
from unetcli.models.registry import REGISTRY_VERSION, ModelSpec, get_spec

#: Environment variable that points the tool at another folder of shipped-style weights.
WEIGHTS_DIR_ENV = "UNETCLI_WEIGHTS_DIR"


@dataclass
class WeightsInfo:
    """Where a model's weights came from: the file, its sha256 and its model card (empty dict if none)."""

    path: Path
    sha256: str
    card: dict


def weights_dir() -> Path:
    """The folder of shipped weights: ``$UNETCLI_WEIGHTS_DIR``, else the installed copy, else the source tree's.

    An installed package carries them as ``unetcli/_weights/`` (pyproject.toml maps the top-level ``weights/``
    there); a source checkout or an editable install reads the top-level ``weights/`` itself.
    """
    if os.environ.get(WEIGHTS_DIR_ENV):
        return Path(os.environ[WEIGHTS_DIR_ENV])
    package = Path(__file__).resolve().parent
    installed = package / "_weights"
    return installed if installed.is_dir() else package.parent / "weights"


def shipped_weights(spec: ModelSpec) -> Path | None:
    """``weights/<name>.safetensors`` for a registry model, or None if the project ships none."""
    path = weights_dir() / f"{spec.name}.safetensors"
    return path if path.is_file() else None


def trained_input_size(spec: ModelSpec, weights: str | Path | None = None) -> int:
    """The working size (pixels) the weights were trained at, from their model card; else the spec's default.

    Args:
        spec: registry model.
        weights: a weights file, or None for the shipped weights.
    """
    path = Path(weights) if weights is not None else shipped_weights(spec)
    if path is not None and path.suffix == ".safetensors" and path.is_file():
        card_input = read_card(path).get("input", {})
        size = card_input.get("working_size", card_input.get("size"))
        if isinstance(size, int) and size > 0:
            return size
    return spec.working_size or spec.train_size


def load_pretrained_encoder(model: nn.Module, spec: ModelSpec) -> WeightsInfo:
    """Load the shipped pretrained encoder named by ``spec.encoder_weights`` into ``model.encoder``.

    The file is ``weights/encoders/<spec.encoder_weights>.safetensors`` (fp16, cast to float32), checked against
    the sha256 in its card (which also records its source and licence).

    Raises:
        WeightsError: the file is missing, corrupt (checksum) or does not fit the encoder.
    """
    path = weights_dir() / "encoders" / f"{spec.encoder_weights}.safetensors"
    if not path.is_file():
        raise WeightsError(f"pretrained encoder {path} not found (rebuild it with examples/recipes/)")
    card = read_card(path)
    digest = _verified_sha256(path, card)
    try:
        state = {k: v.float() for k, v in load_file(str(path), device="cpu").items()}
    except (SafetensorError, OSError) as exc:
        raise WeightsError(f"{path}: not a readable weights file ({exc})") from exc
    load_into(model.encoder, state, path, spec)
    return WeightsInfo(path=path, sha256=digest, card=card)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def card_path(weights_path: Path) -> Path:
    """The model card beside a weights file: ``x.safetensors`` -> ``x.json``."""
    return weights_path.with_suffix(".json")


def read_card(weights_path: Path) -> dict:
    """The model card beside ``weights_path`` as a dict, or ``{}`` if there is none.

    Raises:
        WeightsError: the card exists but is not valid JSON.
    """
    path = card_path(weights_path)
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise WeightsError(f"{path}: model card is not readable JSON ({exc})") from exc


def load_state(path: Path, spec: ModelSpec) -> tuple[dict[str, torch.Tensor], WeightsInfo]:
    """Read a weights file and check it: exists, sha256 matches its card, card names this model.

    Args:
        path: ``.safetensors`` file (any float dtype; cast to float32 on load), or a training checkpoint
            ``.pt`` written by ``unetcli train`` (read with ``weights_only=True``).
        spec: the registry model the weights are meant for.

    Returns:
        (state dict of float32/int tensors, :class:`WeightsInfo`).

    Raises:
        WeightsError: missing file, unreadable file, checksum mismatch, or a card naming another model.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} not found")
    card = read_card(path) if path.suffix == ".safetensors" else {}
    digest = _verified_sha256(path, card)
    if card.get("model") and get_spec(card["model"]).name != spec.name:
        raise WeightsError(f"{path}: these weights are for {card['model']}, not {spec.name}")
    try:
        if path.suffix == ".pt":
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
            state = ckpt["model"] if isinstance(ckpt, dict) and "model" in ckpt else ckpt
        else:
            state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, RuntimeError, ValueError, KeyError) as exc:
        raise WeightsError(f"{path}: not a readable weights file ({exc})") from exc
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    return state, WeightsInfo(path=path, sha256=digest, card=card)


def _verified_sha256(path: Path, card: dict) -> str:
    """The file's sha256, checked against the one its card records (if any).

    Raises:
        WeightsError: the checksums differ.
    """
    digest = sha256_file(path)
    if card.get("sha256") and card["sha256"] != digest:
        raise WeightsError(f"{path}: sha256 {digest[:12]}... does not match its model card "
                           f"({card['sha256'][:12]}...): the file is corrupt or was replaced")
    return digest


def load_into(model: nn.Module, state: dict[str, torch.Tensor], path: Path, spec: ModelSpec) -> None:
    """``model.load_state_dict(state, strict=True)`` with a clear error for a wrong architecture.

    Raises:
        WeightsError: missing or unexpected keys, or a tensor of the wrong shape.
    """
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [k for k in own.keys() & state.keys() if own[k].shape != state[k].shape]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} of wrong shape (e.g. {k}: file {tuple(state[k].shape)}, "
                         f"model {tuple(own[k].shape)})")
        raise WeightsError(f"{path}: does not fit the {spec.name} architecture: " + "; ".join(parts))
    model.load_state_dict(state, strict=True)


def save_weights(model: nn.Module, path: Path, card: dict, dtype: torch.dtype = torch.float16) -> dict:
    """Write ``model``'s weights as safetensors (floats cast to ``dtype``) and its model card beside it.

    Both files are written to temporary names and renamed, so neither is ever half-written. The card gets
    ``sha256``, ``dtype``, ``registry_version`` and ``file`` filled in.

    Returns:
        The card as written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: (v.detach().to(dtype) if v.is_floating_point() else v.detach()).contiguous().cpu()
               for k, v in model.state_dict().items()}
    with atomic_write(path) as tmp:
        save_file(tensors, str(tmp), metadata={"model": str(card.get("model", "")),
                                               "registry_version": str(REGISTRY_VERSION)})
        os.chmod(tmp, 0o644)  # safetensors creates files owner-only; weights are meant to be shared
    card = {**card, "file": path.name, "dtype": str(dtype).replace("torch.", ""),
            "registry_version": REGISTRY_VERSION, "sha256": sha256_file(path)}
    write_json_atomic(card_path(path), card)
    return card


def write_json_atomic(path: Path, data: dict) -> None:
    """Write ``data`` as indented JSON via a temporary file and ``os.replace`` (:func:`atomic_write`)."""
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
