"""``unetcli predict``: run a model over a file, folder or glob of photos."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from unetcli import console
from unetcli.cli.options import (BatchSizeOpt, DeviceOpt, ModelOpt, OutDirArg, PrecisionOpt, PredictWeightsOpt,
                                 SizeOpt, WorkersOpt)
from unetcli.devices import Precision
from unetcli.engine.predict import FileResult, PredictOptions
from unetcli.engine.predict import predict as run_predict
from unetcli.errors import EXIT_INTERRUPTED, EXIT_SOME_FAILED


def predict(
    source: Annotated[str, typer.Argument(metavar="INPUT", show_default=False,
                                          help="An image file, a folder of images, or a glob such as 'photos/*.jpg'.")],
    output: OutDirArg,
    model: ModelOpt,
    weights: PredictWeightsOpt = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = Precision.auto,
    batch_size: BatchSizeOpt = 8,
    workers: WorkersOpt = 2,
    size: SizeOpt = None,
    ext: Annotated[str, typer.Option("--ext", help="Output file extension (format).")] = ".png",
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Include sub-folders of INPUT.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace outputs that already exist "
                                                                "(default: skip them, so a rerun resumes).")] = False,
    threshold: Annotated[float, typer.Option("--threshold", help="unet-seg: probability above which a pixel "
                                                                  "is foreground.")] = 0.5,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only errors and the final count.")] = False,
) -> None:
    """Run MODEL over INPUT and write one image per input into OUTPUT, mirroring relative paths.

    Outputs keep the input's width and height; gray models write 8-bit gray, colorize writes RGB, seg writes
    masks. Existing outputs are skipped unless --overwrite; files are written under a temporary name and
    renamed, so an interrupted run leaves no half-written file. A file that cannot be read is reported and the
    rest of the batch goes on; the exit code is then 1.
    """

    def on_result(r: FileResult) -> None:
        if r.status == "failed":
            console.err.print(f"[red]failed:[/] {escape(r.input)}: {escape(r.error or '')}")
        elif r.notes and not quiet and r.status == "done":
            console.err.print(f"note: {escape(r.input)}: {escape('; '.join(r.notes))}")

    opts = PredictOptions(model=model, source=source, output=Path(output), weights=str(weights) if weights else None,
                          device=device, precision=precision.value, batch_size=batch_size, workers=workers,
                          size=size, ext=ext, recursive=recursive, overwrite=overwrite, threshold=threshold)
    s = run_predict(opts, on_result=on_result, show_progress=None if not quiet else False)
    line = f"done {s.done}, skipped {s.skipped}, failed {s.failed} -> {output}"
    if not quiet:
        line += f"  [{s.device}, {s.precision}]"
    if s.interrupted:
        console.err.print(f"interrupted: {escape(line)}")
        raise typer.Exit(EXIT_INTERRUPTED)
    console.err.print(escape(line))
    if s.failed:
        raise typer.Exit(EXIT_SOME_FAILED)
