"""Pictures to look at: previews of photos and outputs, and before/after contact sheets (``unetcli compare``).

No model runs here: these functions read image files that exist (inputs, the outputs of ``unetcli predict``,
references) and lay them out. :mod:`unetcli.gallery` builds its thumbnails with :func:`open_preview`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

from unetcli.errors import InputError, UsageError
from unetcli.files import atomic_write
from unetcli.imageio import image_format_for, open_regular, printable, read_photo, to_uint8
from unetcli.inputs import collect_inputs, is_image_name

#: Modes that Pillow's ``convert("RGB")`` would clip or misread (16-bit, 32-bit, float): decoded by read_photo.
_WIDE_MODES = {"I", "I;16", "I;16L", "I;16B", "I;16N", "F"}
#: Gap in pixels between the cells and rows of a contact sheet (white).
GAP = 4
#: Encoder settings of written sheets and thumbnails.
JPEG_OPTIONS = {"quality": 90}


def open_preview(path: str | os.PathLike, max_side: int | None = None) -> Image.Image:
    """Read an image file for looking at: upright (EXIF orientation applied), first frame, 8 bits per channel.

    Args:
        path: any file Pillow reads (every mode: 1, L, LA, P, RGB, RGBA, CMYK, 16-bit gray, float ...).
        max_side: if given, the image is shrunk (Pillow's ``thumbnail``, LANCZOS, aspect kept) so that neither side
            exceeds it; JPEGs are then decoded at a reduced scale (``Image.draft``), which makes previews of large
            photos fast. None keeps the full size.

    Returns:
        An ``"RGB"`` image, or ``"RGBA"`` when the file has an alpha channel or palette transparency.

    Raises:
        InputError: the file cannot be read (the message says why: empty, corrupt, a FIFO ...), as
            :func:`unetcli.imageio.read_photo` raises it.
    """
    try:
        with open_regular(path) as f, Image.open(f) as im:
            if max_side and im.format == "JPEG":
                im.draft(None, (max_side, max_side))  # decodes at 1/2, 1/4 or 1/8 scale, never below max_side
            im.seek(0)
            im.load()
            if im.mode in _WIDE_MODES:
                raise ValueError("wide mode")  # read_photo scales 16-bit and float values properly
            im = ImageOps.exif_transpose(im)
            has_alpha = im.mode in ("LA", "La", "PA", "RGBA", "RGBa") or "transparency" in im.info
            out = im.convert("RGBA" if has_alpha else "RGB")
    except Exception:  # noqa: BLE001 - the project's reader decodes the odd modes and names every failure
        photo = read_photo(path)  # raises InputError with the reason
        out = Image.fromarray(to_uint8(photo.rgb), "RGB")
        if photo.alpha is not None:
            out.putalpha(Image.fromarray(photo.alpha, "L"))
    if max_side:
        out.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return out


def checkerboard(size: tuple[int, int], square: int = 12) -> Image.Image:
    """An ``"RGB"`` light-gray checkerboard of ``size`` (width, height) with ``square``-pixel squares: the
    background that shows transparency."""
    board = (np.indices((size[1], size[0])) // square).sum(axis=0) % 2
    return Image.fromarray(np.where(board, 205, 245).astype(np.uint8), "L").convert("RGB")


def flatten(im: Image.Image) -> Image.Image:
    """``im`` as ``"RGB"``; an alpha channel is shown over a :func:`checkerboard` (as image editors show it)."""
    if im.mode in ("LA", "PA", "RGBA") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        return Image.alpha_composite(checkerboard(rgba.size).convert("RGBA"), rgba).convert("RGB")
    return im.convert("RGB")


def contact_sheet(rows: Sequence[Sequence[Image.Image | None]], labels: Sequence[str] | None = None,
                  row_height: int = 200) -> Image.Image:
    """Lay out rows of images side by side: one row per photo, one column per version (input | output | ...).

    Every cell of a row is resized (LANCZOS) to the size the row's first image has at ``row_height`` pixels high
    (the versions of one photo share its aspect ratio); cells and rows are separated by :data:`GAP` white pixels.
    Images with alpha are shown over a checkerboard; a ``None`` cell stays white. ``labels`` are written over the
    first row's cells (white text, black outline).

    Args:
        rows: images in any Pillow mode; the first image of each row must not be None.
        labels: one caption per column, or None.
        row_height: the height of every row in pixels (>= 1).

    Returns:
        An ``"RGB"`` image, ``max(row widths)`` wide, ``len(rows) * (row_height + GAP)`` high.

    Raises:
        ValueError: no rows, a row without a first image, or ``row_height < 1``.
    """
    if not rows or row_height < 1 or any(not row or row[0] is None for row in rows):
        raise ValueError("contact_sheet needs rows whose first image is set and a row_height >= 1")
    font = ImageFont.load_default(size=max(11, row_height // 16))  # scalable where Pillow has FreeType
    strips = []
    for i, row in enumerate(rows):
        first = row[0]
        size = (max(1, round(first.width * row_height / first.height)), row_height)
        strip = Image.new("RGB", (len(row) * size[0] + (len(row) - 1) * GAP, row_height), "white")
        draw = ImageDraw.Draw(strip)
        for j, cell in enumerate(row):
            if cell is not None:
                strip.paste(flatten(cell).resize(size, Image.Resampling.LANCZOS), (j * (size[0] + GAP), 0))
            if i == 0 and labels is not None and j < len(labels):
                draw.text((j * (size[0] + GAP) + 4, 4), labels[j], fill="white", font=font, stroke_width=2,
                          stroke_fill="black")
        strips.append(strip)
    sheet = Image.new("RGB", (max(s.width for s in strips), len(strips) * (row_height + GAP)), "white")
    for i, strip in enumerate(strips):
        sheet.paste(strip, (0, i * (row_height + GAP)))
    return sheet


def save_sheet(sheet: Image.Image, path: Path) -> None:
    """Write a sheet atomically (:func:`unetcli.files.atomic_write`; JPEG at quality 90), format by extension.

    Raises:
        UsageError: Pillow cannot write the extension.
        OSError: the file cannot be written (nothing is left at ``path`` or beside it).
    """
    fmt = image_format_for(path.suffix or ".jpg")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as tmp:
        sheet.save(tmp, format=fmt, **(JPEG_OPTIONS if fmt in ("JPEG", "WEBP") else {}))


@dataclass
class Pair:
    """One row of a comparison: an input, the output ``unetcli predict`` made of it and an optional reference.

    ``output`` / ``reference`` are None when no such file was found.
    """

    input: Path
    output: Path | None
    reference: Path | None = None


def find_version(folder: Path, rel: Path, suffix: str = "", exclude: Path | None = None) -> Path | None:
    """The file in ``folder`` that stands for input ``rel`` (its path relative to INPUT), as ``predict`` names
    outputs: the same relative folder and stem plus ``suffix``, any image extension (``a.jpg`` -> ``a.png``), or
    the collision name (``a_jpg.png``). The first match in sorted order is taken; hidden files and ``exclude``
    (the input itself, when OUTPUT is the INPUT folder under ``--suffix``) are ignored.

    Returns:
        The file, or None when there is none.
    """
    where = folder / rel.parent
    wanted = [rel.stem + suffix, f"{rel.stem}_{rel.suffix[1:]}{suffix}"]
    try:
        names = sorted(n for n in os.listdir(where) if not n.startswith("."))
    except OSError:
        return None
    for stem in wanted:
        for name in names:
            p = where / name
            if Path(name).stem == stem and is_image_name(p) and p.is_file() and not (
                    exclude is not None and os.path.samefile(p, exclude)):
                return p
    return None


def pair_files(source: str, output: Path, reference: Path | None = None, *, recursive: bool = False,
               suffix: str = "") -> list[Pair]:
    """Match every input of ``source`` with its output under ``output`` (and its reference under ``reference``).

    Args:
        source: INPUT as ``unetcli predict`` takes it: a file, a folder (``recursive`` for sub-folders) or a glob.
        output: predict's OUTPUT folder, or one output file when ``source`` is one file.
        reference: a folder mirroring INPUT (same relative paths and stems, any image extension), a single file
            when ``source`` is one file, or None.
        suffix: predict's ``--suffix`` (outputs named ``photo<suffix>.png``).

    Returns:
        One :class:`Pair` per input, sorted by relative path (outputs or references not found are None).

    Raises:
        UsageError: INPUT has no image files, or OUTPUT does not exist.
    """
    if not output.exists():
        raise UsageError(f"output {output}: no such file or folder (the OUTPUT folder of `unetcli predict`)")
    pairs = []
    for src, rel in collect_inputs(source, recursive):
        out = output if output.is_file() else find_version(output, rel, suffix, exclude=src)
        ref = None
        if reference is not None:
            ref = reference if reference.is_file() else find_version(reference, rel, exclude=src)
        pairs.append(Pair(src, out, ref))
    return pairs


@dataclass
class SheetsResult:
    """What :func:`write_sheets` did: the sheets written, the rows on them, and the inputs left out (with why)."""

    written: list[Path]
    rows: int
    failed: list[tuple[Path, str]]


def sheet_paths(path: Path, count: int) -> list[Path]:
    """The names of ``count`` sheets: ``path`` itself for one, else ``STEM-1.EXT``, ``STEM-2.EXT`` ..."""
    if count == 1:
        return [path]
    return [path.with_name(f"{path.stem}-{k}{path.suffix}") for k in range(1, count + 1)]


def write_sheets(pairs: Sequence[Pair], path: Path, *, labels: Sequence[str] | None = None, row_height: int = 200,
                 rows_per_sheet: int = 25) -> SheetsResult:
    """Write contact sheets of ``pairs`` (input | output | reference when any pair has one) to ``path``.

    Pairs without an output, and files that cannot be read, are left out (listed in the result); a pair without a
    reference gets a white cell. ``rows_per_sheet`` rows go on each sheet (:func:`sheet_paths` names them); one
    sheet is in memory at a time.

    Raises:
        UsageError: the extension of ``path`` is not one Pillow writes, or no pair has an output.
        OSError: a sheet cannot be written (``filename`` is the sheet; the sheets before it are complete,
            nothing partial is left).
    """
    image_format_for(path.suffix or ".jpg")
    failed = [(p.input, "no output found in OUTPUT") for p in pairs if p.output is None]
    usable = [p for p in pairs if p.output is not None]
    if not usable:
        raise UsageError(f"no outputs found in OUTPUT for any of the {len(pairs)} input(s): is OUTPUT the folder "
                         f"`unetcli predict` wrote (and --suffix the one it used)?")
    with_reference = any(p.reference is not None for p in usable)
    chunks = [usable[i:i + rows_per_sheet] for i in range(0, len(usable), max(1, rows_per_sheet))]
    written, rows = [], 0
    for chunk, target in zip(chunks, sheet_paths(path, len(chunks))):
        cells = []
        for p in chunk:
            try:
                row = [open_preview(p.input), _read_version("output", p.output)]
                if with_reference:
                    row.append(_read_version("reference", p.reference) if p.reference is not None else None)
            except InputError as exc:
                failed.append((p.input, str(exc)))
                continue
            cells.append(row)
        if cells:
            try:
                save_sheet(contact_sheet(cells, labels, row_height), target)
            except OSError as exc:  # name the sheet, not the temporary file
                raise OSError(exc.errno, exc.strerror or str(exc), str(target)) from exc
            written.append(target)
            rows += len(cells)
    return SheetsResult(written, rows, failed)


def _read_version(kind: str, path: Path) -> Image.Image:
    """:func:`open_preview` of an output or reference; its error names the file (the row is named by its input)."""
    try:
        return open_preview(path)
    except InputError as exc:
        raise InputError(f"{kind} {printable(str(path))}: {exc}") from None
