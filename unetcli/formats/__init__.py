"""Export formats as units: one file per format (writer, verifier, loader, suffixes) behind one table.

``unetcli export --format NAME`` writes with :meth:`Format.write` and checks with :meth:`Format.verify`;
``unetcli predict --weights FILE`` and :func:`unetcli.load` pick the format whose :meth:`Format.recognises` accepts
the file and run it with :meth:`Format.load`. Adding a format is one file defining a :class:`Format` and one line in
:data:`FORMATS` (or :func:`register_format` from a plugin or a test).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from unetcli.errors import ExportError, UsageError, WeightsError
from unetcli.models.spec import ModelSpec

#: ``pip install`` line for the optional ONNX packages (the ``export`` extra in pyproject.toml).
EXPORT_EXTRA = "pip install 'unetcli[export]'"

#: What every loaded format returns: (N, C_in, H, W) float32 tensor -> (N, C_out, H, W) float32 tensor.
Backend = Callable[[torch.Tensor], torch.Tensor]


def import_optional(name: str, purpose: str):
    """Import one of the optional ``unetcli[export]`` packages.

    Args:
        name: module name (``"onnx"``, ``"onnxruntime"``, ``"onnxscript"``).
        purpose: what needs it, for the message (``"--format onnx"``).

    Raises:
        UsageError: the package is not installed; the message names it and the ``pip install`` line.
    """
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        missing = isinstance(exc, ModuleNotFoundError) and exc.name == name
        state = "which is not installed" if missing else f"which could not be imported ({exc})"
        raise UsageError(f"{purpose} needs the optional package {name!r}, {state}; "
                         f"install the export extra with: {EXPORT_EXTRA}") from None


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message, at most 300 characters."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:300]


def check_metadata(meta: dict, path: Path, spec: ModelSpec) -> None:
    """An export's own record of which model it holds must name ``spec`` (files without one are accepted).

    Raises:
        WeightsError: the file names another model, or one that is not in the registry.
    """
    from unetcli.models.registry import get_spec

    name = meta.get("model")
    if not name:
        return
    try:
        exported = get_spec(name).name
    except UsageError:
        raise WeightsError(f"{path}: exported from {name!r}, which is not a registry model") from None
    if exported != spec.name:
        raise WeightsError(f"{path}: this export is of {exported}, not {spec.name}; use --model {exported}")


def compare(out, ref: torch.Tensor, runtime: str) -> float:
    """max |out - ref| in float64 (``out`` a numpy array or tensor of ``ref``'s shape).

    Raises:
        ExportError: the shapes differ.
    """
    import numpy as np

    out = out.numpy() if isinstance(out, torch.Tensor) else out
    if tuple(out.shape) != tuple(ref.shape):
        raise ExportError(f"{runtime} returned shape {tuple(out.shape)}, PyTorch {tuple(ref.shape)}")
    return float(np.abs(out.astype(np.float64) - ref.numpy().astype(np.float64)).max())


class Format:
    """One export format. Subclasses set the attributes and implement the four methods.

    Attributes:
        name: the ``--format`` value.
        backend: what runs the file, as ``predict`` reports it (``"onnxruntime"``, ``"torchscript"``).
        default_suffix: suffix of ``unetcli export``'s default output ``MODEL<suffix>``.
        suffixes: suffixes ``--output`` may have (those :meth:`recognises` accepts).
        has_checker: the format has a structural checker (``ExportResult.checker``).
        requires: optional packages the export needs (checked before anything is loaded).
    """

    name = ""
    backend = ""
    default_suffix = ""
    suffixes: tuple[str, ...] = ()
    has_checker = False
    requires: tuple[str, ...] = ()

    def settings(self, opset: int | None) -> dict:
        """Validated format options of ``unetcli export`` (``{"opset": 18}`` for ONNX); default: none.

        Raises:
            UsageError: an option this format does not take, or a bad value.
        """
        if opset is not None:
            raise UsageError("--opset applies to --format onnx only")
        return {}

    def exporter(self, settings: dict) -> str:
        """One line naming the exporter and its version, stored in the file's metadata."""
        return f"torch {torch.__version__}"

    def recognises(self, path: Path) -> bool:
        """True if ``path`` (given to ``--weights``) is a file of this format (by suffix, or by content)."""
        return path.suffix.lower() in self.suffixes

    def write(self, model: nn.Module, example: torch.Tensor, path: Path, input_name: str, output_name: str,
              metadata: dict[str, str], settings: dict) -> None:
        """Export ``model`` (eval, CPU, fp32) traced on ``example`` (N, C_in, H, W) to ``path``, storing ``metadata``.

        Raises:
            ExportError: the exporter failed.
        """
        raise NotImplementedError

    def verify(self, path: Path, reference: torch.Tensor, x: torch.Tensor, input_name: str,
               settings: dict) -> tuple[float, str]:
        """Run the written file on ``x`` (N, C_in, H, W) float32 -> (max |out - reference|, runtime description).

        Raises:
            ExportError: the file fails a check or cannot be run.
        """
        raise NotImplementedError

    def load(self, path: Path, spec: ModelSpec, device: torch.device) -> Backend:
        """The file as a :data:`Backend` on ``device``, checked to hold ``spec``.

        Raises:
            UsageError: a runtime package missing, or the device unsupported by the runtime.
            WeightsError: missing or unreadable file, or one that holds another model.
        """
        raise NotImplementedError

    def model_name(self, path: Path) -> str | None:
        """The registry name the file records (None if it records none)."""
        return None


def _builtin() -> dict[str, Format]:
    from unetcli.formats.onnx import OnnxFormat
    from unetcli.formats.torchscript import TorchScriptFormat

    return {f.name: f for f in (OnnxFormat(), TorchScriptFormat())}


#: Every export format by ``--format`` name.
FORMATS: dict[str, Format] = _builtin()


def register_format(fmt: Format) -> Format:
    """Add an export format (a plugin's or a test's); ``export --format``, ``predict --weights`` and
    :func:`unetcli.load` then accept it. Returns ``fmt``.

    Raises:
        UsageError: the name is taken.
    """
    if fmt.name in FORMATS:
        raise UsageError(f"export format {fmt.name!r} already exists")
    FORMATS[fmt.name] = fmt
    return fmt


def unregister_format(name: str) -> None:
    """Remove a format added with :func:`register_format` (unknown names are ignored)."""
    FORMATS.pop(name, None)


def get_format(name: str) -> Format:
    """The format called ``name``.

    Raises:
        UsageError: no such format; the message lists them.
    """
    try:
        return FORMATS[str(getattr(name, "value", name))]
    except KeyError:
        raise UsageError(f"--format {str(getattr(name, 'value', name))!r}: expected "
                         f"{' or '.join(FORMATS)}") from None


def format_of(weights: str | Path | None) -> Format | None:
    """The format of a ``--weights`` file, or None for PyTorch weights (``.safetensors``, checkpoint ``.pt``)."""
    if weights is None:
        return None
    path = Path(weights)
    return next((f for f in FORMATS.values() if f.recognises(path)), None)
