"""Option aliases shared by the commands (``Annotated`` types, as huggingface_hub's CLI does), so that each
option is spelled and documented once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from unetcli.devices import Precision
from unetcli.errors import UsageError

ModelOpt = Annotated[str, typer.Option("--model", "-m", metavar="MODEL", show_default=False,
                                       help="Registry model name or alias (see `unetcli models`).")]
ModelArg = Annotated[str, typer.Argument(metavar="MODEL", show_default=False,
                                         help="Registry model name or alias (see `unetcli models`).")]
WeightsOpt = Annotated[Optional[Path], typer.Option(
    "--weights", "-w", metavar="FILE",
    help="Weights file (.safetensors, or a training checkpoint .pt) instead of the shipped ones.")]
PredictWeightsOpt = Annotated[Optional[Path], typer.Option(
    "--weights", "-w", metavar="FILE",
    help="Weights file (.safetensors, or a training checkpoint .pt) instead of the shipped ones, or a file written "
         "by `unetcli export`: .onnx runs on onnxruntime, .torchscript on torch.jit (both in fp32).")]
DeviceOpt = Annotated[str, typer.Option(
    "--device", "-d", metavar="DEVICE",
    help="auto (CUDA if available, else CPU), cpu, cuda or cuda:N. Asking for CUDA where there is none is an error, "
         "never a silent fallback. `unetcli env` shows what auto picks here.")]
PrecisionOpt = Annotated[Precision, typer.Option(
    "--precision", metavar="PRECISION",
    help=f"{', '.join(p.value for p in Precision)}. auto: bf16 autocast on CPUs with AMX/AVX512-BF16 and on CUDA "
         "where the model stays faithful in it, else fp32 (`unetcli env` shows what it picks here).")]
BatchSizeOpt = Annotated[int, typer.Option("--batch-size", "-b", min=1, metavar="N", help="Images per batch.")]
WorkersOpt = Annotated[int, typer.Option("--workers", "-j", min=0, metavar="N",
                                         help="DataLoader worker processes that decode images while the model runs.")]
SizeOpt = Annotated[Optional[int], typer.Option(
    "--size", min=16, metavar="PX",
    help="Working size in pixels (square) for models that do not run at full resolution. "
         "[default: the size the weights were trained at]")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts) instead of tables.")]
OutDirArg = Annotated[Path, typer.Argument(metavar="OUTPUT", show_default=False,
                                           help="Output folder (created if needed).")]


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"2/8"`` -> (2, 8) for ``--shard K/N`` (K counts from 1); None stays None.

    Raises:
        UsageError: not K/N with 1 <= K <= N.
    """
    if text is None:
        return None
    k, sep, n = text.partition("/")
    try:
        shard = (int(k), int(n))
    except ValueError:
        shard = None
    if not sep or shard is None or not 1 <= shard[0] <= shard[1]:
        raise UsageError(f"--shard {text!r}: expected K/N with 1 <= K <= N, e.g. --shard 1/4 ... --shard 4/4")
    return shard


def parse_size(text: str | None, option: str = "--input-size") -> tuple[int, int] | None:
    """``"128"`` -> (128, 128), ``"96x128"`` -> (96, 128) (H x W); None stays None.

    Raises:
        UsageError: not N or HxW, or a side below 1.
    """
    if text is None:
        return None
    h, _, w = text.lower().partition("x")
    try:
        size = (int(h), int(w or h))
    except ValueError:
        raise UsageError(f"{option} {text!r}: expected N or HxW, e.g. 128 or 96x128") from None
    if min(size) < 1:
        raise UsageError(f"{option} {text!r}: sides must be positive")
    return size
