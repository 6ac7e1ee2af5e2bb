"""Export a registry model to ONNX or TorchScript, then prove that the file gives PyTorch's answers.

ONNX goes through ``torch.onnx.export(..., dynamo=True)``: the graph is captured by ``torch.export`` with
symbolic batch, height and width, so every shape computation (the pad to a multiple of 16 inside
:class:`~unetcli.models.blocks.PaddedUNet` and the crop back) is recorded as graph arithmetic, and
``torch.export`` raises instead of silently baking in a size if anything would specialise it. It is the exporter
PyTorch maintains (the default since 2.9); the TorchScript-based one (``dynamo=False``) is deprecated. Its
runtime dependency is ``onnxscript`` (part of the ``unetcli[export]`` extra).

TorchScript goes through ``torch.jit.trace``: the models have no data-dependent control flow, and the tracer
records the shape arithmetic of the padding, so the traced module runs at any N x H x W (checked below).

After writing, the file is verified: ONNX with ``onnx.checker`` (full check) and onnxruntime's CPU provider,
TorchScript with ``torch.jit.load``, both on an input of another batch size and H x W than the export example,
against the PyTorch model in fp32. The file is written under a temporary name and only renamed to its final
name once verified; a failed export or check leaves nothing at the output path.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import time
import warnings
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from unetcli import __version__
from unetcli.engine.backends import TORCHSCRIPT_METADATA, TORCHSCRIPT_SUFFIXES, import_optional
from unetcli.engine.model import load_model
from unetcli.errors import ExportError, UsageError
from unetcli.models.registry import REGISTRY_VERSION, ModelSpec, get_spec
from unetcli.weights import WeightsInfo


class ExportFormat(str, Enum):
    """``--format`` choices."""

    onnx = "onnx"
    torchscript = "torchscript"


#: Default file suffix per format (TorchScript avoids ``.pt``, which ``--weights`` reads as a training checkpoint).
DEFAULT_SUFFIX = {ExportFormat.onnx: ".onnx", ExportFormat.torchscript: ".torchscript"}
#: Suffixes ``unetcli predict --weights`` recognises for each format.
ALLOWED_SUFFIXES = {ExportFormat.onnx: (".onnx",), ExportFormat.torchscript: (*TORCHSCRIPT_SUFFIXES, ".pt")}
#: The opset the dynamo exporter's op library (torchlib) is written in: no version conversion needed, and the
#: widest runtime support among the opsets it writes natively. Lower opsets fail: ONNX's version converter has no
#: adapter that takes ``Pad`` (the in-graph padding) below 18.
DEFAULT_OPSET = 18
MIN_OPSET = 18
#: Largest max-abs difference accepted between an export and the PyTorch model (fp32, outputs of order 1).
#: Measured on the four registry models with calibrated BatchNorm statistics: at most 7e-6 (ONNX, 31M-parameter
#: nets) and 0 (TorchScript), so 1e-4 holds for all four with more than 10x margin.
ATOL = 1e-4
#: Names of the dynamic axes of the input and output.
DYNAMIC_AXES = {0: "batch", 2: "height", 3: "width"}

_RGB_IN = ("sRGB in [0, 1]: 8-bit values / 255 (16-bit / 65535), channels R, G, B; "
           "no mean/std normalisation")
_GRAY_IN = ("luminance in [0, 1]: skimage.color.rgb2gray of the sRGB photo "
            "(0.2125 R + 0.7154 G + 0.0721 B), or a gray file's value / 255; no mean/std normalisation")
#: task -> (input name, output name, input normalisation, output range and meaning).
TASK_IO: dict[str, tuple[str, str, str, str]] = {
    "colorize": ("gray", "rgb", _GRAY_IN,
                 "sRGB, about [0, 1] but not clamped (clamp to [0, 1] before use)"),
    "decolorize": ("rgb", "gray", _RGB_IN, "luminance in [0, 1]"),
    "segment": ("rgb", "logits", _RGB_IN,
                "logits (unbounded); probabilities = sigmoid for 1 class, softmax over C for several"),
}


@dataclass
class ExportOptions:
    """What ``unetcli export`` was asked to do (see ``unetcli export --help``)."""

    model: str
    format: ExportFormat | str = ExportFormat.onnx
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
    """(input name, output name) of the exported graph: ``gray``/``rgb`` in, ``rgb``/``gray``/``logits`` out.

    Raises:
        UsageError: the model's task has no export description (a new task needs a line in :data:`TASK_IO`).
    """
    if spec.task not in TASK_IO:
        raise UsageError(f"{spec.name}: export does not know the inputs and outputs of task {spec.task!r}")
    return TASK_IO[spec.task][0], TASK_IO[spec.task][1]


def export_metadata(spec: ModelSpec, model: nn.Module, info: WeightsInfo, exporter: str) -> dict[str, str]:
    """Key/value strings stored in the export: model, registry version, normalisation, ranges, weights sha256."""
    in_name, out_name, in_desc, out_desc = TASK_IO[spec.task]
    out_channels = int(getattr(model, "num_classes", spec.out_channels))
    divisor = int(getattr(model, "size_divisor", 1))
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
    if spec.task == "segment":
        meta["num_classes"] = str(out_channels)
    return meta


def output_path(spec: ModelSpec, fmt: ExportFormat, output: Path | None) -> Path:
    """``--output``, or ``<model>.onnx`` / ``<model>.torchscript`` in the current folder.

    Raises:
        UsageError: a suffix ``unetcli predict --weights`` would not recognise as this format.
    """
    if output is None:
        return Path(spec.name + DEFAULT_SUFFIX[fmt])
    output = Path(output)
    if output.suffix.lower() not in ALLOWED_SUFFIXES[fmt]:
        raise UsageError(f"--output {output}: --format {fmt.value} files must end in "
                         f"{' or '.join(ALLOWED_SUFFIXES[fmt])} (that is how `predict --weights` recognises it)")
    return output


def other_side(n: int, step: int) -> int:
    """A side length that differs from ``n`` and is not a multiple of 16, for the verification input."""
    m = n + step
    return m + 1 if m % 16 == 0 else m


def _reason(exc: BaseException) -> str:
    """One line for an exporter's exception: its root cause (the first line that says something), no ANSI colours."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    lines = [ln.strip() for ln in re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).splitlines() if ln.strip()]
    text = " ".join(lines[:2]) if lines and lines[0].endswith(":") else (lines[0] if lines else "")
    return f"{type(exc).__name__}: {text[:400]}"


@contextlib.contextmanager
def _quiet_exporter():
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


def write_onnx(model: nn.Module, example: torch.Tensor, path: Path, input_name: str, output_name: str,
               metadata: dict[str, str], opset: int) -> None:
    """Export ``model`` to ONNX at ``path`` (one file, weights inside) with dynamic batch, height and width.

    Args:
        model: the model in eval mode, on the CPU.
        example: (N, C_in, H, W) float32 example input; N, H and W become the symbolic ``batch``, ``height``
            and ``width``.
        path: file to write.
        input_name / output_name: graph input and output names.
        metadata: stored as the model's ``metadata_props``.
        opset: ONNX opset (>= 18).

    Raises:
        ExportError: the exporter failed.
    """
    try:
        with _quiet_exporter():
            program = torch.onnx.export(model, (example,), dynamo=True, opset_version=opset, verbose=False,
                                        input_names=[input_name], output_names=[output_name],
                                        dynamic_shapes=(dict(DYNAMIC_AXES),), optimize=True)
    except Exception as exc:  # noqa: BLE001 - torch.export / torch.onnx raise many exception types
        raise ExportError(f"torch.onnx.export failed: {_reason(exc)}") from exc
    # The output's H and W are the input's (PaddedUNet crops back), which torch.export cannot prove symbolically
    # (it keeps Min(height, 16*ceil(height/16))); name them plainly. The verification checks the shape.
    out = program.model.graph.outputs[0]
    out.shape = type(out.shape)([DYNAMIC_AXES[0], out.shape[1], DYNAMIC_AXES[2], DYNAMIC_AXES[3]])
    program.model.metadata_props.update(metadata)
    program.model.doc_string = f"unetcli {metadata['model']}: {metadata['input']} -> {metadata['output']}"
    program.model.model_version = REGISTRY_VERSION
    program.save(str(path), external_data=False)


def write_torchscript(model: nn.Module, example: torch.Tensor, path: Path, metadata: dict[str, str]) -> None:
    """Trace ``model`` with ``example`` and save it with ``metadata`` as the archive's ``unetcli.json``.

    Raises:
        ExportError: tracing or saving failed.
    """
    try:
        with _quiet_exporter(), torch.no_grad():
            # check_trace re-runs the same input; the verification below is stronger (another N, H and W).
            traced = torch.jit.trace(model, example, check_trace=False)
        torch.jit.save(traced, str(path), _extra_files={TORCHSCRIPT_METADATA: json.dumps(metadata, indent=1)})
    except (RuntimeError, ValueError, TypeError) as exc:
        raise ExportError(f"torch.jit.trace failed: {_reason(exc)}") from exc


def _compare(out: np.ndarray, ref: torch.Tensor, runtime: str) -> float:
    """max |out - ref|; raises ExportError if the shapes differ."""
    if tuple(out.shape) != tuple(ref.shape):
        raise ExportError(f"{runtime} returned shape {tuple(out.shape)}, PyTorch {tuple(ref.shape)}")
    return float(np.abs(out.astype(np.float64) - ref.numpy().astype(np.float64)).max())


def verify_onnx(path: Path, reference: torch.Tensor, x: torch.Tensor, input_name: str,
                opset: int) -> tuple[float, str]:
    """``onnx.checker`` (full check), the file's opset, then onnxruntime (CPU) on ``x`` against ``reference``.

    Args:
        path: the ONNX file.
        reference: PyTorch's fp32 output for ``x``, (N, C_out, H, W).
        x: (N, C_in, H, W) float32 input.
        input_name: the graph's input name.
        opset: the opset the file must declare.

    Returns:
        (max abs difference, description of the runtime).

    Raises:
        ExportError: the checker rejects the file, the opset differs, or onnxruntime cannot load or run it.
    """
    onnx = import_optional("onnx", "--format onnx")
    ort = import_optional("onnxruntime", "--format onnx")
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:  # noqa: BLE001 - ValidationError, InferenceError, DecodeError, OSError ...
        raise ExportError(f"onnx.checker rejected the export: {_reason(exc)}") from exc
    declared = {o.domain: o.version for o in onnx.load(str(path), load_external_data=False).opset_import}
    if declared.get("", declared.get("ai.onnx")) != opset:
        raise ExportError(f"the exporter wrote opset {declared.get('', declared.get('ai.onnx'))}, not the "
                          f"requested {opset}")
    runtime = f"onnxruntime {ort.__version__} (CPUExecutionProvider)"
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        out = session.run(None, {input_name: x.numpy()})[0]
    except Exception as exc:  # noqa: BLE001 - onnxruntime's own exception types
        raise ExportError(f"{runtime} could not run the export: {_reason(exc)}") from exc
    return _compare(out, reference, runtime), runtime


def verify_torchscript(path: Path, reference: torch.Tensor, x: torch.Tensor) -> tuple[float, str]:
    """``torch.jit.load`` the saved file and run it on ``x`` against ``reference`` (see :func:`verify_onnx`)."""
    runtime = f"torch.jit.load (torch {torch.__version__})"
    try:
        loaded = torch.jit.load(str(path), map_location="cpu")
        with torch.inference_mode():
            out = loaded(x)
    except Exception as exc:  # noqa: BLE001 - TorchScript raises RuntimeError subclasses and more
        raise ExportError(f"{runtime} could not run the export: {_reason(exc)}") from exc
    return _compare(out.numpy(), reference, runtime), runtime


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
    try:
        fmt = ExportFormat(opts.format)
    except ValueError:
        raise UsageError(f"--format {opts.format!r}: expected onnx or torchscript") from None
    input_name, output_name = io_names(spec)
    opset = None
    if fmt is ExportFormat.onnx:
        opset = DEFAULT_OPSET if opts.opset is None else int(opts.opset)
        if opset < MIN_OPSET:
            raise UsageError(f"--opset {opset}: the ONNX export needs opset {MIN_OPSET} or newer (the exporter's "
                             f"operators are written for {DEFAULT_OPSET}; ONNX cannot convert its Pad lower)")
        for package in ("onnx", "onnxruntime", "onnxscript"):
            import_optional(package, "--format onnx")
    elif opts.opset is not None:
        raise UsageError("--opset applies to --format onnx only")
    if opts.batch_size < 1:
        raise UsageError(f"--batch-size {opts.batch_size}: must be at least 1")
    h, w = opts.input_size or (spec.train_size, spec.train_size)
    if min(h, w) < 1:
        raise UsageError(f"--input-size {h}x{w}: sides must be positive")
    dst = output_path(spec, fmt, opts.output)

    model, info = load_model(spec, opts.weights)
    model = model.to(memory_format=torch.contiguous_format).eval()
    exporter = (f"torch {torch.__version__} torch.onnx.export(dynamo=True), opset {opset}"
                if fmt is ExportFormat.onnx else f"torch {torch.__version__} torch.jit.trace")
    metadata = export_metadata(spec, model, info, exporter)
    generator = torch.Generator().manual_seed(0)
    example = torch.rand(opts.batch_size, spec.in_channels, h, w, generator=generator)
    check = torch.rand(opts.batch_size + 1, spec.in_channels, other_side(h, 11), other_side(w, 5),
                       generator=generator)

    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--output {dst}: cannot create its folder ({exc.strerror or exc})") from exc
    tmp = dst.with_name(f".{dst.stem}.{os.getpid()}.tmp{dst.suffix}")
    try:
        if fmt is ExportFormat.onnx:
            log(f"exporting {spec.name} to ONNX (opset {opset}, torch.onnx dynamo exporter), "
                f"example {tuple(example.shape)} ...")
            write_onnx(model, example, tmp, input_name, output_name, metadata, opset)
        else:
            log(f"exporting {spec.name} to TorchScript (torch.jit.trace), example {tuple(example.shape)} ...")
            write_torchscript(model, example, tmp, metadata)
        log(f"verifying at {tuple(check.shape)} against PyTorch fp32 ...")
        with torch.inference_mode():
            reference = model(check).float()
        if fmt is ExportFormat.onnx:
            diff, runtime = verify_onnx(tmp, reference, check, input_name, opset)
        else:
            diff, runtime = verify_torchscript(tmp, reference, check)
        if not (math.isfinite(diff) and diff <= ATOL):
            raise ExportError(f"verification failed: {runtime} at {tuple(check.shape)} differs from PyTorch by "
                              f"max abs {diff:.3g} > {ATOL:g}")
        os.replace(tmp, dst)
    except ExportError as exc:
        raise ExportError(f"{exc.message}; {dst} was not written") from exc
    except OSError as exc:
        raise UsageError(f"--output {dst}: cannot write ({exc.strerror or exc})") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return ExportResult(path=dst, format=fmt.value, model=spec.name, input_name=input_name, output_name=output_name,
                        opset=opset, example_shape=list(example.shape), check_shape=list(check.shape),
                        checker=fmt is ExportFormat.onnx, runtime=runtime, max_abs_diff=diff, atol=ATOL,
                        weights=str(info.path), weights_sha256=info.sha256, size_bytes=dst.stat().st_size,
                        seconds=round(time.perf_counter() - started, 2), metadata=metadata)
