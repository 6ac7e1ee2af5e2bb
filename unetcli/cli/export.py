"""``unetcli export MODEL``: write an ONNX or TorchScript file and verify it against PyTorch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from unetcli import console
from unetcli.cli.options import JsonOpt, ModelArg, WeightsOpt, complete_from, parse_size
from unetcli.engine.export import DEFAULT_OPSET, ExportOptions, export_model
from unetcli.formats import FORMATS

#: What the built-in formats are for; a format a plugin registers is listed by its name.
_FORMAT_USES = {"onnx": "onnxruntime, OpenVINO, TensorRT ...; needs `pip install 'unetcli[export]'`",
                "torchscript": "LibTorch / C++"}


def export(
    model: ModelArg,
    export_format: Annotated[str, typer.Option(
        "--format", "-f", metavar="FORMAT", autocompletion=complete_from(lambda: list(FORMATS)),
        help="; ".join(f"{name} ({_FORMAT_USES[name]})" if name in _FORMAT_USES else name for name in FORMATS)
             + ".")
    ] = "onnx",
    weights: WeightsOpt = None,
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", help="File to write; default MODEL.onnx or MODEL.torchscript in the current folder.",
        show_default=False)] = None,
    opset: Annotated[Optional[int], typer.Option(
        "--opset", help=f"ONNX opset, {DEFAULT_OPSET} or newer [default: {DEFAULT_OPSET}].",
        show_default=False)] = None,
    batch_size: Annotated[int, typer.Option(
        "--batch-size", "-b", min=1, help="N of the example input. The file accepts any N regardless.")] = 1,
    input_size: Annotated[Optional[str], typer.Option(
        "--input-size", help="N or HxW of the example input; default: the model's training size. The file "
                             "accepts any height x width regardless.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Export MODEL with its weights to ONNX or TorchScript, then verify the file against PyTorch.

    The file takes float32 (batch, C, height, width) with any batch, height and width: ONNX input `rgb` (`gray`
    for unet-colorize), output `gray`, `rgb` or `logits`. Model name, registry version, input normalisation and
    value ranges, and the sha256 of the source weights are stored in the file. After writing, onnx.checker and
    onnxruntime (or torch.jit.load) run it on another batch size and height x width than the example and compare
    with PyTorch in fp32; a failed check exits with 1 and leaves no file. `unetcli predict --weights FILE` runs an
    export through the usual pipeline.
    """
    result = export_model(ExportOptions(model=model, format=export_format, weights=weights, output=output, opset=opset,
                                        batch_size=batch_size, input_size=parse_size(input_size)),
                          log=lambda line: console.err.print(escape(line)))
    if json_out:
        console.out.print_json(json.dumps(result.to_json()))
        return
    r = result
    kind = f"ONNX opset {r.opset}" if r.format == "onnx" else "TorchScript"
    size = f"{r.size_bytes / 1e6:.1f} MB" if r.size_bytes >= 100_000 else f"{r.size_bytes / 1e3:.1f} kB"
    console.err.print(escape(f"wrote {r.path} ({kind}, {size}) from {r.weights} "
                             f"(sha256 {r.weights_sha256[:12]}...)"))
    console.err.print(escape(f"  input  {r.metadata['input']}, {r.metadata['input_normalization']}"))
    console.err.print(escape(f"  output {r.metadata['output']}, {r.metadata['output_range']}"))
    checks = ("onnx.checker passed; " if r.checker else "") + r.runtime
    console.err.print(escape(f"verified: {checks} at {tuple(r.check_shape)} (example was {tuple(r.example_shape)}) "
                             f"matches PyTorch fp32: max abs diff {r.max_abs_diff:.2g} <= {r.atol:g}"))
    console.out.print(escape(str(r.path)))
