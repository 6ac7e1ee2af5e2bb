"""``unetcli compare INPUT OUTPUT``: before/after contact sheets of what ``unetcli predict`` made."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from unetcli import console
from unetcli.errors import EXIT_SOME_FAILED, UsageError
from unetcli.files import ensure_writable_folder
from unetcli.imageio import printable
from unetcli.sheets import pair_files, write_sheets


def compare(
    source: Annotated[str, typer.Argument(metavar="INPUT", show_default=False,
                                          help="The INPUT given to `unetcli predict`: an image file, a folder or a "
                                               "glob such as 'photos/*.jpg'.")],
    output: Annotated[Path, typer.Argument(metavar="OUTPUT", show_default=False,
                                           help="The OUTPUT folder `unetcli predict` wrote (or its output file).")],
    sheet: Annotated[Path, typer.Option(
        "--output", "-o", metavar="SHEET",
        help="The contact sheet to write (.jpg, .png, .webp ...). More than --rows photos: SHEET-1.jpg, "
             "SHEET-2.jpg ...")] = Path("contact_sheet.jpg"),
    reference: Annotated[Optional[Path], typer.Option(
        "--reference", metavar="REF", show_default=False,
        help="A third column: a folder mirroring INPUT (same names, any image extension), e.g. the originals of "
             "gray scans, or one file when INPUT is one file.")] = None,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Include sub-folders of INPUT.")] = False,
    suffix: Annotated[str, typer.Option("--suffix", metavar="TEXT",
                                        help="The --suffix predict was given (--suffix _out: outputs named "
                                             "photo_out.png).")] = "",
    labels: Annotated[Optional[str], typer.Option(
        "--labels", metavar="A,B[,C]", show_default=False,
        help="Captions of the columns, comma-separated [default: input,output(,reference)].")] = None,
    row_height: Annotated[int, typer.Option("--row-height", min=16, metavar="PX",
                                            help="Height of each photo's row in pixels.")] = 200,
    rows: Annotated[int, typer.Option("--rows", min=1, metavar="N", help="Photos per sheet.")] = 25,
) -> None:
    """Write contact sheets: one row per input photo, input | output | reference side by side.

    Outputs are found as `unetcli predict` names them (same relative path and stem, any image extension); every
    cell of a row is scaled to the row's height; images with alpha (cut-outs) are shown over a checkerboard.
    Inputs without an output, or files that cannot be read, get a `failed:` line and exit code 1; the sheets
    hold the rest.
    """
    pairs = pair_files(source, output, reference, recursive=recursive, suffix=suffix)
    if labels is not None:
        captions = [part.strip() for part in labels.split(",")]
    else:
        captions = ["input", "output"] + (["reference"] if reference is not None else [])
    if reference is not None and not any(p.reference for p in pairs):
        raise UsageError(f"--reference {printable(str(reference))}: no reference found for any input")
    ensure_writable_folder(sheet.parent, "sheet folder")  # found before any photo is read (exit 2)
    try:
        result = write_sheets(pairs, sheet, labels=captions, row_height=row_height, rows_per_sheet=rows)
    except OSError as exc:
        console.err.print(f"[bold red]error:[/] could not write {escape(printable(str(exc.filename)))}: "
                          f"{escape((exc.strerror or str(exc)).lower())}")
        raise typer.Exit(EXIT_SOME_FAILED) from None
    for path, why in result.failed:
        console.err.print(f"[red]failed:[/] {escape(printable(str(path)))}: {escape(printable(why))}")
    shown = ", ".join(printable(str(p)) for p in result.written)
    console.err.print(escape(f"{result.rows} photo(s) on {len(result.written)} sheet(s): {shown}"))
    for path in result.written:
        console.out.print(escape(printable(str(path))), soft_wrap=True)
    if result.failed:
        raise typer.Exit(EXIT_SOME_FAILED)
