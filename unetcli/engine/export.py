"""Export a registry model in one of the export formats (:data:`unetcli.formats.FORMATS`: ONNX, TorchScript ...),
then prove that the file gives PyTorch's answers.

Each format lives in its own file under :mod:`unetcli.formats` (writer, verifier, loader, suffixes); this module is
the part they share: options, the example and check inputs, the metadata stored in the file (the model's task
describes its inputs and outputs, :attr:`unetcli.tasks.Task.export_io`), the comparison against PyTorch in fp32 on
another batch size and H x W than the example, and the atomic move into place: the file is written under a
temporary name and only renamed to its final name once verified; a failed export or check leaves nothing at the
output path.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import time
import warnings
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from unetcli import __version__
from unetcli.engine.model import load_model
from unetcli.errors import ExportError, UsageError
from unetcli.formats import Format, get_format, import_optional
from unetcli.formats.onnx import DEFAULT_OPSET  # noqa: F401 - re-exported for the CLI
from unetcli.files import atomic_write, temporary_name
from unetcli.models.registry import REGISTRY_VERSION, ModelSpec, get_spec
from unetcli.tasks import task_class
from unetcli.weights import WeightsInfo


class ExportFormat(str, Enum):
    """The built-in ``--format`` choices (any name in :data:`unetcli.formats.FORMATS` is accepted)."""

    onnx = "onnx"
    torchscript = "torchscript"


#: Largest max-abs difference accepted between an export and the PyTorch model, per unit of output scale (fp32):
#: the limit is ``ATOL x max(1, max |PyTorch output|)``, i.e. 1e-4 absolute for outputs within [-1, 1] (gray, RGB)
#: and 1e-4 relative for unbounded logits. Measured with calibrated BatchNorm statistics: at most 7e-6 (ONNX,
#: 31M-parameter seed nets), about 1e-4 absolute on logits of magnitude > 1 (unet-seg-mobilenetv2's 17
#: depthwise blocks), 0 (TorchScript).
ATOL = 1e-4


@dataclass
class ExportOptions:
    """What ``unetcli export`` was asked to do (see ``unetcli export --help``)."""

    model: str
    format: ExportFormat | str = "onnx"
    weights: str | Path | None = None
    output: Path | None = None
    opset: int | None = None
    batch_size: int = 1
    input_size: tuple[int, int] | None = None


@dataclass
class ExportResult:
    """A verified export: where it is, what it holds, and how closely it matches PyTorch.

    Attributes:
        path: the written file.
        format: ``"onnx"`` or ``"torchscript"``.
        model: registry name.
        input_name / output_name: graph input and output names (``rgb``, ``gray``, ``logits``).
        opset: ONNX opset of the file (None for TorchScript).
        example_shape: (N, C, H, W) of the example the export was made with.
        check_shape: (N, C, H, W) of the verification input (another N, H and W).
        checker: True when ``onnx.checker.check_model(full_check=True)`` passed (False for TorchScript: n/a).
        runtime: what ran the file for the check (``"onnxruntime 1.31.1 (CPUExecutionProvider)"``).
        max_abs_diff: max |export - PyTorch| over the check output, fp32.
        atol: the accepted maximum.
        weights / weights_sha256: the source weights file and its sha256.
        size_bytes: file size.
        seconds: wall time of export plus verification.
        metadata: what was stored in the file (ONNX ``metadata_props``; TorchScript ``unetcli.json``).
    """

    path: Path
    format: str
    model: str
    input_name: str
    output_name: str
    opset: int | None
    example_shape: list[int]
    check_shape: list[int]
    checker: bool
    runtime: str
    max_abs_diff: float
    atol: float
    weights: str
    weights_sha256: str
    size_bytes: int = 0
    seconds: float = 0.0
    metadata: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict:
        """The result as JSON-serialisable dict."""
        return {**asdict(self), "path": str(self.path)}


def io_names(spec: ModelSpec) -> tuple[str, str]:
    """(input name, output name) of the exported graph, from the model's task (:attr:`Task.export_io`):
    ``gray``/``rgb`` in, ``rgb``/``gray``/``logits`` out."""
    return task_class(spec).export_io[:2]


def export_metadata(spec: ModelSpec, model: nn.Module, info: WeightsInfo, exporter: str) -> dict[str, str]:
    """Key/value strings stored in the export: model, registry version, normalisation, ranges, weights sha256."""
    task = task_class(spec)
    in_name, out_name, in_desc, out_desc = task.export_io
    out_channels = int(getattr(model, "num_classes", spec.out_channels))
    divisor = spec.size_divisor
    meta = {
        "model": spec.name,
        "task": spec.task,
        "registry_version": str(REGISTRY_VERSION),
        "unetcli_version": __version__,
        "weights_file": info.path.name,
        "weights_sha256": info.sha256,
        "input": f"{in_name}: float32 (batch, {spec.in_channels}, height, width)",
        "input_range": "[0, 1]",
        "input_normalization": in_desc,
        "output": f"{out_name}: float32 (batch, {out_channels}, height, width)",
        "output_range": out_desc,
        "spatial_size": (f"any height x width; padded to a multiple of {divisor} inside the graph (edge "
                         "replication) and cropped back, so the output has the input's height x width"
                         if divisor > 1 else "any height x width (per-pixel model); output has the input's size"),
        "working_size": ("full resolution: the photo as it is" if spec.full_resolution else
                         f"{spec.train_size}x{spec.train_size}: the photo resized to it; unetcli upsamples the "
                         "result to the photo's size"),
        "exporter": exporter,
    }
    meta.update(task.export_metadata(out_channels))
    return meta


def output_path(spec: ModelSpec, fmt: Format, output: Path | None) -> Path:
    """``--output``, or ``<model><default suffix>`` (``.onnx``, ``.torchscript`` ...) in the current folder.

    Raises:
        UsageError: a suffix ``unetcli predict --weights`` would not recognise as this format.
    """
    if output is None:
        return Path(spec.name + fmt.default_suffix)
    output = Path(output)
    if output.suffix.lower() not in fmt.suffixes:
        raise UsageError(f"--output {output}: --format {fmt.name} files must end in "
                         f"{' or '.join(fmt.suffixes)} (that is how `predict --weights` recognises it)")
    return output


def other_side(n: int, step: int) -> int:
    """A side length that differs from ``n`` and is not a multiple of 16, for the verification input."""
    m = n + step
    return m + 1 if m % 16 == 0 else m


def exporter_failure(exc: BaseException) -> str:
    """One line for an exporter's exception: its root cause (the first line that says something), no ANSI colours."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    lines = [ln.strip() for ln in re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).splitlines() if ln.strip()]
    text = " ".join(lines[:2]) if lines and lines[0].endswith(":") else (lines[0] if lines else "")
    return f"{type(exc).__name__}: {text[:400]}"


@contextlib.contextmanager
def quiet_exporter():
    """Silence the exporters' progress logging and PyTorch's own deprecation/future warnings (not errors)."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        logger.setLevel(level)


def export_model(opts: ExportOptions, log: Callable[[str], None] | None = None) -> ExportResult:
    """Export a registry model with its weights, verify the file, and move it into place.

    Args:
        opts: the export's options. ``input_size`` (H, W) and ``batch_size`` give the example input
            (default: 1 x C x train_size x train_size); the file accepts any N, H and W regardless.
        log: called with progress lines (the export of a 31M-parameter net takes a few seconds).

    Returns:
        The :class:`ExportResult` of the verified file.

    Raises:
        UsageError: bad option, optional packages missing, output folder not writable.
        WeightsError: no weights (none shipped and no ``--weights``), or unreadable / mismatched weights.
        ExportError: the exporter failed or the file failed its verification; nothing is left at the output.
    """
    started = time.perf_counter()
    log = log or (lambda line: None)
    spec = get_spec(opts.model)
    fmt = get_format(opts.format)
    input_name, output_name = io_names(spec)
    settings = fmt.settings(opts.opset)
    for package in fmt.requires:
        import_optional(package, f"--format {fmt.name}")
    if opts.batch_size < 1:
        raise UsageError(f"--batch-size {opts.batch_size}: must be at least 1")
    h, w = opts.input_size or (spec.train_size, spec.train_size)
    if min(h, w) < 1:
        raise UsageError(f"--input-size {h}x{w}: sides must be positive")
    dst = output_path(spec, fmt, opts.output)

    model, info = load_model(spec, opts.weights)
    model = model.to(memory_format=torch.contiguous_format).eval()
    metadata = export_metadata(spec, model, info, fmt.exporter(settings))
    generator = torch.Generator().manual_seed(0)
    example = torch.rand(opts.batch_size, spec.in_channels, h, w, generator=generator)
    check = torch.rand(opts.batch_size + 1, spec.in_channels, other_side(h, 11), other_side(w, 5),
                       generator=generator)
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--output {dst}: cannot create its folder ({exc.strerror or exc})") from exc
    _check_writable(dst)
    try:
        with atomic_write(dst) as tmp:
            log(f"exporting {spec.name} to {fmt.name} ({fmt.exporter(settings)}), example {tuple(example.shape)} ...")
            fmt.write(model, example, tmp, input_name, output_name, metadata, settings)
            diff, runtime, limit = _verify(fmt, tmp, model, check, input_name, settings, log)
    except ExportError as exc:
        raise ExportError(f"{exc.message}; {dst} was not written") from exc
    except OSError as exc:
        raise UsageError(f"--output {dst}: cannot write ({exc.strerror or exc})") from exc
    return ExportResult(path=dst, format=fmt.name, model=spec.name, input_name=input_name, output_name=output_name,
                        opset=settings.get("opset"), example_shape=list(example.shape), check_shape=list(check.shape),
                        checker=fmt.has_checker, runtime=runtime, max_abs_diff=diff, atol=limit,
                        weights=str(info.path), weights_sha256=info.sha256, size_bytes=dst.stat().st_size,
                        seconds=round(time.perf_counter() - started, 2), metadata=metadata)


def _check_writable(dst: Path) -> None:
    """Prove a file can be created beside ``dst`` before the export runs (it takes seconds to a minute), so a
    read-only folder is found at once. A disk that fills up is found when the file is written.

    Raises:
        UsageError: the folder is not writable; the message names ``dst`` and the reason.
    """
    probe = temporary_name(dst)
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"--output {dst}: cannot write ({exc.strerror or exc})") from None


def _verify(fmt: Format, path: Path, model: nn.Module, check: torch.Tensor, input_name: str, settings: dict,
            log: Callable[[str], None]) -> tuple[float, str, float]:
    """Run the written file on ``check`` (N, C_in, H, W) against PyTorch fp32.

    Returns:
        (max abs difference, runtime, the accepted limit ``ATOL x max(1, max |reference|)``).

    Raises:
        ExportError: the format's check failed, or the difference is above the limit (or not finite).
    """
    log(f"verifying at {tuple(check.shape)} against PyTorch fp32 ...")
    with torch.inference_mode():
        reference = model(check).float()
    diff, runtime = fmt.verify(path, reference, check, input_name, settings)
    limit = ATOL * max(1.0, float(reference.abs().max()))
    if not (math.isfinite(diff) and diff <= limit):
        raise ExportError(f"verification failed: {runtime} at {tuple(check.shape)} differs from PyTorch by "
                          f"max abs {diff:.3g} > {limit:.3g}")
    return diff, runtime, limit
