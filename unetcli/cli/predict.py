"""``unetcli predict``: run a model over a file, folder or glob of photos."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Callable, Optional

import typer
from rich.markup import escape

from unetcli import console
from unetcli.cli import skip_teardown
from unetcli.cli.options import (BatchSizeOpt, DeviceOpt, ModelOpt, OutDirArg, OutputTypeOpt, PrecisionOpt,
                                 PredictWeightsOpt, PredictWorkersOpt, SizeOpt, parse_shard)
from unetcli.devices import Precision
from unetcli.engine.predict import FileResult, PredictOptions, PredictSummary, StopRun, output_file
from unetcli.engine.predict import predict as run_predict
from unetcli.errors import EXIT_INTERRUPTED, EXIT_SOME_FAILED, UsageError
from unetcli.gallery import Gallery
from unetcli.files import append_line, open_append
from unetcli.imageio import printable


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
    model: ModelOpt = None,
    weights: PredictWeightsOpt = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = Precision.auto,
    batch_size: BatchSizeOpt = 8,
    workers: PredictWorkersOpt = None,
    size: SizeOpt = None,
    ext: Annotated[Optional[str], typer.Option(
        "--ext", show_default=False, help="Output file extension (format): .png, .jpg, .webp, .tif ...; auto: each "
                                          "output in its input's format (PNG where that format cannot store the "
                                          "output). [default: .png; one output file: its own extension]")] = None,
    quality: Annotated[Optional[int], typer.Option(
        "--quality", min=1, max=100, metavar="N", show_default=False,
        help="JPEG/WebP/AVIF encoder quality, 1-100; refused for formats without one (PNG, TIFF ...). "
             "[default: Pillow's, JPEG 75, WebP 80]")] = None,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Include sub-folders of INPUT.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace outputs that already exist "
                                                                "(default: skip them, so a rerun resumes).")] = False,
    threshold: Annotated[float, typer.Option("--threshold", help="unet-seg: probability above which a pixel "
                                                                  "is foreground.")] = 0.5,
    output_type: OutputTypeOpt = "mask",
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
    gallery: Annotated[bool, typer.Option(
        "--gallery", help="Also write OUTPUT/index.html: every input beside its output (thumbnails, click for full "
                          "size, failures with their reason), to review the batch in a browser; no network needed. "
                          "With --shard K/N: OUTPUT/index-K-of-N.html.")] = False,
    compile_model: Annotated[bool, typer.Option(
        "--compile", help="Compile the model with torch.compile first (7-15 s per input shape, then about "
                          "1.3x faster): for long runs of same-size inputs (colorize, seg, tiles).")] = False,
    suffix: Annotated[str, typer.Option(
        "--suffix", metavar="TEXT", help="Add TEXT to every output's name (photo.jpg -> photo_out.png with --suffix "
                                         "_out); lets OUTPUT be the INPUT folder, as outputs then never replace "
                                         "photos.")] = "",
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
                          size=size, ext=ext, quality=quality, recursive=recursive, overwrite=overwrite,
                          threshold=threshold, output_type=output_type, palette=palette,
                          files_from=read_file_list(files_from) if files_from is not None else None,
                          shard=parse_shard(shard), fail_fast=fail_fast, tile=tile, compile=compile_model,
                          suffix=suffix)
    try:
        report_fd = open_append(report) if report is not None else None
    except OSError as exc:
        raise UsageError(f"--report {printable(str(report))}: cannot open it for writing "
                         f"({exc.strerror or exc})") from exc
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM (kill, job schedulers) is Ctrl-C, also while setting up
    on_result = _reporter(report, report_fd, json_lines, quiet)
    page = _gallery(opts, model) if gallery else None
    if page is not None:
        on_result = _also(page.add, on_result)
    try:
        s = run_predict(opts, on_result=on_result, show_progress=None if not quiet else False)
    except KeyboardInterrupt:  # during set-up (loading weights ...): nothing was written yet
        console.err.print("interrupted before any file was processed")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    finally:
        if report_fd is not None:
            os.close(report_fd)
    if s.interrupted:  # an impatient second Ctrl-C must not cut the count line or the exit short
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
    gallery_written = _write_gallery(page, quiet) if page is not None and not s.interrupted else True
    skip_teardown()  # outputs, output log, --report and gallery are closed: nothing is left for the teardown to do
    _finish(s, output, quiet)
    if not gallery_written:
        raise typer.Exit(EXIT_SOME_FAILED)


def _gallery(opts: PredictOptions, model: str) -> Gallery:
    """The ``--gallery`` page of this run: OUTPUT/index.html (OUTPUT an output file: beside it), one per shard."""
    out = Path(opts.output)
    folder = out.parent if output_file(opts) is not None else out  # one output file: the page beside it
    name = f"index-{opts.shard[0]}-of-{opts.shard[1]}.html" if opts.shard else "index.html"
    what = model or Path(opts.weights or "").name
    return Gallery(folder, f"unetcli predict {what}: {printable(opts.source)} -> {printable(str(out))}", name)


def _also(first: Callable[[FileResult], None], then: Callable[[FileResult], None]) -> Callable[[FileResult], None]:
    """A callback that calls ``first`` and then ``then`` (which may raise ``StopRun``)."""
    def both(r: FileResult) -> None:
        first(r)
        then(r)
    return both


def _write_gallery(page: Gallery, quiet: bool) -> bool:
    """Write the ``--gallery`` page once the run is over (not after an interrupt: a rerun writes it). A failure is
    one ``error:`` line; the outputs are untouched. Returns whether the page was written."""
    try:
        path = page.write()
    except OSError as exc:
        console.err.print(f"[bold red]error:[/] gallery {escape(printable(str(page.page)))} could not be written: "
                          f"{escape((exc.strerror or str(exc)).lower())} (the outputs are complete)")
        return False
    if not quiet:
        console.err.print(f"gallery: {escape(printable(str(path)))}")
    return True


def _interrupt(signum, frame) -> None:
    """Signal handler: SIGTERM raises ``KeyboardInterrupt``, as Ctrl-C does."""
    raise KeyboardInterrupt


def _reporter(report: Path | None, report_fd: int | None, json_lines: bool,
              quiet: bool) -> Callable[[FileResult], None]:
    """The per-file callback of ``predict``: JSON lines to ``--report`` / stdout (``--json``), failures and notes
    on stderr (file names and reasons with control characters escaped, so no name can forge a line).

    A ``--report`` line that cannot be written (full disk ...) stops the run (``StopRun``: files in flight are
    finished, the report keeps only whole lines); a closed stdout (``--json | head``) stops it as an interrupt,
    quietly: the JSON lines are dropped from then on and nothing more is written to the closed pipe.
    """
    state = {"stdout": json_lines, "report": report_fd is not None}

    def on_result(r: FileResult) -> None:
        line = report_line(r) + "\n"
        if state["report"]:
            try:
                append_line(report_fd, line)  # whole lines, flushed: a killed run keeps those of its finished files
            except OSError as exc:
                state["report"] = False  # stop once: the files in flight are still finished and counted
                raise StopRun(f"--report {printable(str(report))} cannot be written: "
                              f"{(exc.strerror or str(exc)).lower()}") from None
        if r.status == "failed":
            console.err.print(f"[red]failed:[/] {escape(printable(r.input))}: {escape(printable(r.error or ''))}")
        elif r.notes and not quiet and r.status == "done":
            console.err.print(f"note: {escape(printable(r.input))}: {escape(printable('; '.join(r.notes)))}")
        if state["stdout"]:
            try:
                sys.stdout.write(line)
                sys.stdout.flush()
            except BrokenPipeError:
                state["stdout"] = False
                # Nothing more may reach the closed pipe, not even the interpreter's flush at exit.
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                raise StopRun("stdout was closed", interrupted=True) from None

    return on_result


def _finish(s: PredictSummary, output: Path, quiet: bool) -> None:
    """Print the final count line and exit with the run's code (130 interrupted, 1 some failed or stopped)."""
    line = f"done {s.done}, skipped {s.skipped}, failed {s.failed}"
    if s.not_started:
        line += f", not started {s.not_started}"
    line += f" -> {printable(str(output))}"
    if not quiet:
        line += f"  [{s.device}, {s.precision}]"
    if s.interrupted:
        reason = f" ({s.stop_reason})" if s.stop_reason else ""
        console.err.print(f"interrupted: {escape(line)}{escape(reason)}")
        raise typer.Exit(EXIT_INTERRUPTED)
    if s.stopped:
        line += f"  ({s.stop_reason})"
    console.err.print(escape(line))
    if s.failed or s.stopped:
        raise typer.Exit(EXIT_SOME_FAILED)
