"""``unetcli predict``: run a model over a file, folder or glob of photos."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Callable, Optional

import typer
from rich.markup import escape

from unetcli import console
from unetcli.cli.options import (BatchSizeOpt, DeviceOpt, ModelOpt, OutDirArg, PrecisionOpt, PredictWeightsOpt,
                                 SizeOpt, WorkersOpt, parse_shard)
from unetcli.devices import Precision
from unetcli.engine.predict import FileResult, PredictOptions, PredictSummary
from unetcli.engine.predict import predict as run_predict
from unetcli.errors import EXIT_INTERRUPTED, EXIT_SOME_FAILED, UsageError


def read_file_list(source: str) -> list[str]:
    """The paths of ``--files-from``: one per line, or NUL-separated (``find -print0``); ``-`` reads stdin.

    Blank lines are skipped; names are decoded with the file-system encoding (``os.fsdecode``), so any name
    round-trips.

    Raises:
        UsageError: the list file cannot be read.
    """
    try:
        data = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    except OSError as exc:
        raise UsageError(f"--files-from {source}: cannot read the list ({exc.strerror or exc})") from exc
    parts = data.split(b"\0") if b"\0" in data else data.splitlines()
    return [os.fsdecode(p) for p in parts if p.strip()]


def report_line(r: FileResult) -> str:
    """One file's outcome as a JSON object on one line (ASCII; non-ASCII names are \\u-escaped)."""
    return json.dumps(dataclasses.asdict(r) | {"seconds": round(r.seconds, 3)})


def predict(
    source: Annotated[str, typer.Argument(metavar="INPUT", show_default=False,
                                          help="An image file, a folder of images, or a glob such as 'photos/*.jpg'. "
                                               "With --files-from: the folder the outputs mirror the listed paths "
                                               "relative to (e.g. .).")],
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
    output_type: Annotated[str, typer.Option(
        "--output-type", "-t", help="unet-seg: mask (8-bit, 0/255 or class indices), overlay (the photo with the "
                                    "mask tinted over it) or cutout (RGBA, alpha = the mask).")] = "mask",
    palette: Annotated[bool, typer.Option(
        "--palette", help="unet-seg masks: write a palette PNG that viewers show in colour (pixel values stay "
                          "class indices).")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only errors and the final count.")] = False,
    files_from: Annotated[Optional[str], typer.Option(
        "--files-from", metavar="LIST", show_default=False,
        help="Take the input files from LIST, one path per line (or NUL-separated, as `find -print0` writes); "
             "- reads stdin: `find photos -name '*.jpg' | unetcli predict -m MODEL --files-from - photos out`.")] = None,
    shard: Annotated[Optional[str], typer.Option(
        "--shard", metavar="K/N", show_default=False,
        help="Process only part K of N (K = 1..N) of the sorted inputs: every N-th file from the K-th. The N "
             "parts cover every file exactly once: one per machine or job-array task.")] = None,
    fail_fast: Annotated[bool, typer.Option("--fail-fast", help="Stop at the first file that fails (exit 1); "
                                                                "the files before it are finished.")] = False,
    report: Annotated[Optional[Path], typer.Option(
        "--report", metavar="FILE.jsonl", show_default=False,
        help="Append one JSON line per input file (input, output, status, error, notes, seconds) to FILE as each "
             "file finishes.")] = None,
    json_lines: Annotated[bool, typer.Option("--json", help="Print the same JSON lines on stdout, for scripts "
                                                            "(messages stay on stderr).")] = False,
    compile_model: Annotated[bool, typer.Option(
        "--compile", help="Compile the model with torch.compile first (7-15 s per input shape, then about "
                          "1.3x faster): for long runs of same-size inputs (colorize, seg, tiles).")] = False,
    tile: Annotated[int, typer.Option(
        "--tile", min=0, help="Full-resolution models (decolorize, simple-black): photos larger than this many "
                              "pixels on a side run on overlapping tiles of this side (a multiple of 16), so memory "
                              "stays bounded; 0 never tiles.")] = 512,
) -> None:
    """Run MODEL over INPUT and write one image per input into OUTPUT, mirroring relative paths.

    Outputs keep the input's width and height; gray models write 8-bit gray, colorize writes RGB, seg writes
    masks. Existing outputs are skipped unless --overwrite; files are written under a temporary name and
    renamed, so an interrupted run leaves no half-written file. A file that cannot be read is reported and the
    rest of the batch goes on; the exit code is then 1. Ctrl-C finishes the files being written and exits
    with 130.
    """
    opts = PredictOptions(model=model, source=source, output=Path(output), weights=str(weights) if weights else None,
                          device=device, precision=precision.value, batch_size=batch_size, workers=workers,
                          size=size, ext=ext, recursive=recursive, overwrite=overwrite, threshold=threshold,
                          output_type=output_type, palette=palette,
                          files_from=read_file_list(files_from) if files_from is not None else None,
                          shard=parse_shard(shard), fail_fast=fail_fast, tile=tile, compile=compile_model)
    try:
        report_file = open(report, "a", encoding="ascii") if report is not None else None
    except OSError as exc:
        raise UsageError(f"--report {report}: cannot open it for writing ({exc.strerror or exc})") from exc
    try:
        s = run_predict(opts, on_result=_reporter(report_file, json_lines, quiet),
                        show_progress=None if not quiet else False)
    except KeyboardInterrupt:  # during set-up (loading weights ...): nothing was written yet
        console.err.print("interrupted before any file was processed")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    finally:
        if report_file is not None:
            report_file.close()
    _finish(s, output, quiet)


def _reporter(report_file, json_lines: bool, quiet: bool) -> Callable[[FileResult], None]:
    """The per-file callback of ``predict``: JSON lines to ``--report`` / stdout (``--json``), failures and notes
    on stderr."""

    def on_result(r: FileResult) -> None:
        if report_file is not None or json_lines:
            line = report_line(r) + "\n"
            if report_file is not None:
                report_file.write(line)
                report_file.flush()  # a killed run keeps the lines of the files it finished
            if json_lines:
                sys.stdout.write(line)
                sys.stdout.flush()
        if r.status == "failed":
            console.err.print(f"[red]failed:[/] {escape(r.input)}: {escape(r.error or '')}")
        elif r.notes and not quiet and r.status == "done":
            console.err.print(f"note: {escape(r.input)}: {escape('; '.join(r.notes))}")

    return on_result


def _finish(s: PredictSummary, output: Path, quiet: bool) -> None:
    """Print the final count line and exit with the run's code (130 interrupted, 1 some failed)."""
    line = f"done {s.done}, skipped {s.skipped}, failed {s.failed}"
    if s.not_started:
        line += f", not started {s.not_started}"
    line += f" -> {output}"
    if not quiet:
        line += f"  [{s.device}, {s.precision}]"
    if s.interrupted:
        console.err.print(f"interrupted: {escape(line)}")
        raise typer.Exit(EXIT_INTERRUPTED)
    if s.stopped:
        line += "  (stopped at the first failure: --fail-fast)"
    console.err.print(escape(line))
    if s.failed:
        raise typer.Exit(EXIT_SOME_FAILED)
