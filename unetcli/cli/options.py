"""Option aliases shared by the commands (``Annotated`` types, as huggingface_hub's CLI does), so that each
option is spelled and documented once.

Options with a fixed set of values list them in ``--help`` and complete them in the shell: ``str`` Enums where the
set is fixed (``--precision``); for the registries (models, output types) the list is read from the registry, in
the help when the CLI is built, and live for completion and for the check (:func:`unetcli.models.get_spec`,
:func:`unetcli.outputs.get_renderer` reject other values with one line naming the valid ones, exit 2), so a model
or output type registered at run time is accepted too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from unetcli.devices import Precision
from unetcli.errors import UsageError
from unetcli.models.registry import get_spec, list_models
from unetcli.outputs import RENDERERS


def model_choices() -> list[tuple[str, str]]:
    """Every registry name and alias with its task, in registry order (read live, for shell completion)."""
    return [(key, get_spec(name).task) for name in list_models() for key in (name, *get_spec(name).aliases)]


def complete_from(choices):
    """A Typer ``autocompletion`` function offering those of ``choices()`` (values, or (value, help) pairs) that
    start with what was typed."""

    def complete(incomplete: str) -> list:
        return [c for c in choices() if (c[0] if isinstance(c, tuple) else c).startswith(incomplete)]

    return complete


def _model_names() -> str:
    """The registry's names with their aliases for the help: ``unet-colorize (colorize), ...``."""
    return ", ".join(name + (f" ({', '.join(get_spec(name).aliases)})" if get_spec(name).aliases else "")
                     for name in list_models())


def _output_type_help() -> str:
    """``--output-type``'s help: every renderer of :data:`unetcli.outputs.RENDERERS` with its description."""
    kinds = "; ".join(f"{r.name} ({r.description})" if r.description else r.name for r in RENDERERS.values())
    return f"unet-seg: {kinds}."


#: ``--device`` completions (``cuda:N`` is accepted too).
DEVICES = ("auto", "cpu", "cuda")
MODEL_HELP = f"Registry model name or alias: {_model_names()} (see `unetcli models`)."

ModelOpt = Annotated[Optional[str], typer.Option(
    "--model", "-m", metavar="MODEL", show_default=False, autocompletion=complete_from(model_choices),
    help=MODEL_HELP[:-1] + "; may be left out when --weights FILE records its "
         "model (model card, ONNX metadata, training checkpoint), and must agree with it when given.")]
ModelArg = Annotated[str, typer.Argument(metavar="MODEL", show_default=False, help=MODEL_HELP,
                                         autocompletion=complete_from(model_choices))]
OutputTypeOpt = Annotated[str, typer.Option("--output-type", "-t", metavar="TYPE", help=_output_type_help(),
                                            autocompletion=complete_from(lambda: list(RENDERERS)))]
WeightsOpt = Annotated[Optional[Path], typer.Option(
    "--weights", "-w", metavar="FILE",
    help="Weights file (.safetensors, or a training checkpoint .pt) instead of the shipped ones.")]
PredictWeightsOpt = Annotated[Optional[Path], typer.Option(
    "--weights", "-w", metavar="FILE",
    help="Weights file (.safetensors, or a training checkpoint .pt) instead of the shipped ones, or a file written "
         "by `unetcli export`: .onnx runs on onnxruntime, .torchscript on torch.jit (both in fp32).")]
DeviceOpt = Annotated[str, typer.Option(
    "--device", "-d", metavar="DEVICE", autocompletion=complete_from(lambda: DEVICES),
    help="auto (CUDA if available, else CPU), cpu, cuda or cuda:N. Asking for CUDA where there is none is an error, "
         "never a silent fallback. `unetcli env` shows what auto picks here.")]
PrecisionOpt = Annotated[Precision, typer.Option(
    "--precision", metavar="PRECISION",
    help=f"{', '.join(p.value for p in Precision)}. auto: bf16 autocast on CPUs with AMX/AVX512-BF16 and on CUDA "
         "where the model stays faithful in it, else fp32 (`unetcli env` shows what it picks here).")]
BatchSizeOpt = Annotated[int, typer.Option("--batch-size", "-b", min=1, metavar="N", help="Images per batch.")]
WorkersOpt = Annotated[int, typer.Option("--workers", "-j", min=0, metavar="N",
                                         help="DataLoader worker processes that decode images while the model runs.")]
PredictWorkersOpt = Annotated[Optional[int], typer.Option(
    "--workers", "-j", min=0, metavar="N", show_default=False,
    help="Worker processes that decode images while the model runs (a decoder crash then costs one file, not the "
         "run); 0 decodes in the main process. [default: 1 where this process may use one CPU core (taskset, "
         "cpuset), else 2]")]
SizeOpt = Annotated[Optional[int], typer.Option(
    "--size", min=16, metavar="PX",
    help="Working size in pixels (square) for models that do not run at full resolution. "
         "[default: the size the weights were trained at]")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts) instead of tables.")]
OutDirArg = Annotated[Path, typer.Argument(
    metavar="OUTPUT", show_default=False,
    help="Output folder (created if needed); or, when INPUT is one file, the output file if OUTPUT has an image "
         "extension (photo_gray.png: written in that format).")]


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
