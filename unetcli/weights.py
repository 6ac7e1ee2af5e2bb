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
import pickle
import re
import stat
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import nn

from unetcli.errors import WeightsError
from unetcli.files import atomic_write
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
            ``.pt`` written by ``unetcli train`` (read with ``weights_only=True``), or a plain state dict ``.pt``.
        spec: the registry model the weights are meant for.

    Returns:
        (state dict of float32/int tensors, :class:`WeightsInfo`).

    Raises:
        WeightsError: missing file, a directory, an empty or unreadable file, a pickle of anything but tensors
            (never unpickled), a file that is not a state dict, checksum mismatch, or a card naming another model.
    """
    path = Path(path)
    check_weights_file(path)
    card = read_card(path) if path.suffix == ".safetensors" else {}
    digest = _verified_sha256(path, card)
    if card.get("model") and get_spec(card["model"]).name != spec.name:
        raise WeightsError(f"{path}: these weights are for {card['model']}, not {spec.name}")
    if path.suffix == ".pt":
        ckpt = read_torch_file(path)
        state = ckpt["model"] if isinstance(ckpt, dict) and "model" in ckpt else ckpt
        state = _as_state_dict(state, path)
    else:
        try:
            state = load_file(str(path), device="cpu")
        except (SafetensorError, OSError, RuntimeError, ValueError) as exc:
            raise WeightsError(f"{path}: not a safetensors file ({exc})") from exc
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    return state, WeightsInfo(path=path, sha256=digest, card=card)


def check_weights_file(path: Path) -> None:
    """A weights path must be a regular, non-empty file.

    Raises:
        WeightsError: it does not exist, is a directory (or another non-file), or is empty.
    """
    try:
        st = path.stat()
    except OSError as exc:
        what = "not found" if isinstance(exc, FileNotFoundError) else f"cannot be read ({exc.strerror or exc})"
        raise WeightsError(f"weights file {path} {what}") from None
    if stat.S_ISDIR(st.st_mode):
        raise WeightsError(f"{path}: is a directory, not a weights file")
    if not stat.S_ISREG(st.st_mode):
        raise WeightsError(f"{path}: is not a regular file (a FIFO, socket or device), not a weights file")
    if st.st_size == 0:
        raise WeightsError(f"{path}: empty file (0 bytes), not a weights file")


def read_torch_file(path: Path):
    """``torch.load(path, weights_only=True)``: tensors, dicts, lists and numbers only; a pickle that names any other
    Python object (a class, a function such as ``os.system``) is refused and never executed.

    Raises:
        WeightsError: empty, not a PyTorch file, or a pickle of other objects; the message says which.
    """
    check_weights_file(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
        if found or _looks_pickled(path):  # a pickle with more in it than torch's weights-only unpickler allows
            names = f"it names {found[1]}" if found else "it uses pickle instructions beyond tensors and containers"
            raise WeightsError(f"{path}: a pickle of Python objects, not only tensors ({names}); it was never "
                               f"unpickled (weights are read with torch.load(weights_only=True))") from None
        raise WeightsError(f"{path}: not a PyTorch checkpoint (neither a torch.save zip archive nor a pickle)") \
            from None
    except (RuntimeError, ValueError, EOFError, OSError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise WeightsError(f"{path}: not a PyTorch checkpoint ({_first_line(str(exc)) or type(exc).__name__})") \
            from None


def _looks_pickled(path: Path) -> bool:
    """True if the file starts as a pickle does (PROTO opcode, protocol 2-5) or as a zip archive (``torch.save``)."""
    try:
        with open(path, "rb") as f:
            head = f.read(2)
    except OSError:
        return False
    return head == b"PK" or (len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5)


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[0][:200] if lines else ""


def _as_state_dict(state, path: Path) -> dict[str, torch.Tensor]:
    """``state`` if it is a dict of tensors.

    Raises:
        WeightsError: a bare tensor, a list or another object, or a dict with a value that is not a tensor.
    """
    if isinstance(state, torch.Tensor):
        raise WeightsError(f"{path}: holds a single tensor {tuple(state.shape)}, not a state dict (names -> tensors)")
    if not isinstance(state, dict):
        kind = {list: "a list", tuple: "a tuple"}.get(type(state), f"a {type(state).__name__}")
        raise WeightsError(f"{path}: holds {kind}, not a state dict (names -> tensors)")
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise WeightsError(f"{path}: not a state dict: {key!r} is a {type(value).__name__}, not a tensor")
    return state


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

    Raises:
        OSError: a file could not be written (disk full, read-only ...); its temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: (v.detach().to(dtype) if v.is_floating_point() else v.detach()).contiguous().cpu()
               for k, v in model.state_dict().items()}
    # Serialised in memory, written by Python: safetensors' own writer reports a full disk as a SafetensorError,
    # a Python file as OSError (errno ENOSPC), which callers turn into one line naming the file.
    data = save(tensors, metadata={"model": str(card.get("model", "")), "registry_version": str(REGISTRY_VERSION)})
    with atomic_write(path) as tmp:
        tmp.write_bytes(data)
    card = {**card, "file": path.name, "dtype": str(dtype).replace("torch.", ""),
            "registry_version": REGISTRY_VERSION, "sha256": sha256_file(path)}
    write_json_atomic(card_path(path), card)
    return card


def write_json_atomic(path: Path, data: dict) -> None:
    """Write ``data`` as indented JSON via a temporary file and ``os.replace`` (:func:`atomic_write`)."""
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
