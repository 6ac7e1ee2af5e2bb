"""TorchScript: written by ``torch.jit.trace``, run by ``torch.jit.load`` (LibTorch / C++).

The models have no data-dependent control flow, and the tracer records the shape arithmetic of the padding, so the
traced module runs at any N x H x W (the export's verification runs another N, H and W than the example).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import torch
from torch import nn

from unetcli.errors import ExportError, WeightsError
from unetcli.formats import Format, check_metadata, compare, first_line
from unetcli.models.spec import ModelSpec

#: File suffixes of TorchScript archives written by ``unetcli export`` (``.pt`` is recognised by its content).
TORCHSCRIPT_SUFFIXES = (".torchscript", ".ts")
#: Name of the JSON metadata file stored inside TorchScript archives (``torch.jit.save(_extra_files=...)``).
TORCHSCRIPT_METADATA = "unetcli.json"


def is_torchscript_archive(path: Path) -> bool:
    """True if ``path`` is a TorchScript zip archive (it holds compiled ``code/``), not a ``torch.save`` pickle."""
    try:
        with zipfile.ZipFile(path) as zf:
            return any(n.endswith("/constants.pkl") or "/code/" in n for n in zf.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def write_torchscript(model: nn.Module, example: torch.Tensor, path: Path, metadata: dict[str, str]) -> None:
    """Trace ``model`` with ``example`` and save it with ``metadata`` as the archive's ``unetcli.json``.

    The archive is written through an unbuffered Python file: ``torch.jit.save`` to a path writes with C++
    streams, which on a full disk throw an exception nothing catches (the process aborts, leaving its file);
    through a Python file the failing write raises ``OSError``.

    Raises:
        ExportError: tracing or saving failed.
        OSError: the file could not be written (disk full, read-only file system ...).
    """
    from unetcli.engine.export import exporter_failure, quiet_exporter

    try:
        with quiet_exporter(), torch.no_grad():
            # check_trace re-runs the same input; the verification is stronger (another N, H and W).
            traced = torch.jit.trace(model, example, check_trace=False)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise ExportError(f"torch.jit.trace failed: {exporter_failure(exc)}") from exc
    with open(path, "wb", buffering=0) as f:
        try:
            torch.jit.save(traced, f, _extra_files={TORCHSCRIPT_METADATA: json.dumps(metadata, indent=1)})
        except RuntimeError as exc:
            if isinstance(exc.__context__, OSError):  # the write failed; closing the archive failed again
                raise exc.__context__ from None
            raise ExportError(f"torch.jit.save failed: {exporter_failure(exc)}") from exc


def verify_torchscript(path: Path, reference: torch.Tensor, x: torch.Tensor) -> tuple[float, str]:
    """``torch.jit.load`` the saved file and run it on ``x`` (N, C_in, H, W) against ``reference``.

    Returns:
        (max abs difference, description of the runtime).

    Raises:
        ExportError: the file cannot be loaded or run, or returns another shape.
    """
    from unetcli.engine.export import exporter_failure

    runtime = f"torch.jit.load (torch {torch.__version__})"
    try:
        loaded = torch.jit.load(str(path), map_location="cpu")
        with torch.inference_mode():
            out = loaded(x)
    except Exception as exc:  # noqa: BLE001 - TorchScript raises RuntimeError subclasses and more
        raise ExportError(f"{runtime} could not run the export: {exporter_failure(exc)}") from exc
    return compare(out, reference, runtime), runtime


def read_torchscript(path: Path, device: torch.device) -> tuple[nn.Module, dict]:
    """(module in eval mode on ``device``, its ``unetcli.json`` metadata or ``{}``).

    Raises:
        WeightsError: the file is missing or not a TorchScript archive.
    """
    if not path.is_file():
        raise WeightsError(f"weights file {path} not found")
    extra = {TORCHSCRIPT_METADATA: ""}
    try:
        module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
    except (RuntimeError, ValueError, OSError) as exc:
        raise WeightsError(f"{path}: not a loadable TorchScript file ({first_line(exc)})") from None
    try:
        meta = json.loads(extra[TORCHSCRIPT_METADATA] or "{}")
    except ValueError:
        meta = {}
    return module.eval(), meta


def load_torchscript(path: Path, spec: ModelSpec, device: torch.device) -> nn.Module:
    """A TorchScript export loaded with ``torch.jit.load`` on ``device``, in eval mode.

    Raises:
        WeightsError: the file is missing, not a TorchScript archive, or holds another model.
    """
    module, meta = read_torchscript(path, device)
    check_metadata(meta, path, spec)
    return module


class TorchScriptFormat(Format):
    """``--format torchscript``: ``.torchscript`` / ``.ts`` (or ``.pt`` holding a TorchScript archive) files."""

    name = "torchscript"
    backend = "torchscript"
    default_suffix = ".torchscript"  # not .pt, which --weights reads as a training checkpoint unless it is an archive
    suffixes = (*TORCHSCRIPT_SUFFIXES, ".pt")

    def exporter(self, settings: dict) -> str:
        return f"torch {torch.__version__} torch.jit.trace"

    def recognises(self, path: Path) -> bool:
        suffix = path.suffix.lower()
        return suffix in TORCHSCRIPT_SUFFIXES or (suffix == ".pt" and path.is_file() and is_torchscript_archive(path))

    def write(self, model, example, path, input_name, output_name, metadata, settings) -> None:
        write_torchscript(model, example, path, metadata)

    def verify(self, path, reference, x, input_name, settings) -> tuple[float, str]:
        return verify_torchscript(path, reference, x)

    def load(self, path: Path, spec: ModelSpec, device: torch.device) -> nn.Module:
        return load_torchscript(path, spec, device)

    def model_name(self, path: Path) -> str | None:
        return read_torchscript(path, torch.device("cpu"))[1].get("model")
