"""Option aliases shared by the commands (``Annotated`` types, as huggingface_hub's CLI does), so that each
option is spelled and documented once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from unetcli.devices import Precision

ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Registry model name or alias (see `unetcli models`).",
                                       show_default=False)]
ModelArg = Annotated[str, typer.Argument(help="Registry model name or alias (see `unetcli models`).",
                                         show_default=False)]
WeightsOpt = Annotated[Optional[Path], typer.Option(
    "--weights", "-w", help="Weights file (.safetensors, or a training checkpoint .pt) instead of the shipped ones.")]
DeviceOpt = Annotated[str, typer.Option(
    "--device", "-d", help="auto (CUDA if available, else CPU), cpu, cuda or cuda:N. Asking for CUDA where there "
                           "is none is an error, never a silent fallback.")]
PrecisionOpt = Annotated[Precision, typer.Option(
    "--precision", help="auto: bf16 autocast on CPUs with AMX/AVX512-BF16 and on CUDA where the model stays "
                        "faithful in it, else fp32.")]
BatchSizeOpt = Annotated[int, typer.Option("--batch-size", "-b", min=1, help="Images per batch.")]
WorkersOpt = Annotated[int, typer.Option("--workers", "-j", min=0,
                                         help="DataLoader worker processes that decode images while the model runs.")]
SizeOpt = Annotated[Optional[int], typer.Option(
    "--size", min=16, help="Working size in pixels (square) for models that do not run at full resolution; "
                           "default: the size the weights were trained at.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts) instead of tables.")]
OutDirArg = Annotated[Path, typer.Argument(help="Output folder (created if needed).", show_default=False)]
