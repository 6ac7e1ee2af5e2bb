"""Reading any image Pillow can open into one well-defined form, and asking what Pillow can write.

Everything here is Pillow and NumPy; the only logic of our own is the mapping of Pillow's many modes onto
"sRGB float in [0, 1] plus an optional alpha", which no library does in one call. Beside it: carrying an input's
EXIF and ICC profile to its output (:mod:`unetcli.metadata`), atomic writes and ``predict``'s output log
(:mod:`unetcli.files`), finding the input files (:mod:`unetcli.inputs`).
"""

from __future__ import annotations

import errno
import io
import os
import re
import stat
import struct
import unicodedata
import warnings
import zlib
from pathlib import Path
from typing import BinaryIO, Callable

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from unetcli.errors import InputError, UsageError

#: Pillow modes whose pixels carry no colour.
_GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}
#: Output formats that keep an alpha channel.
ALPHA_FORMATS = {"PNG", "WEBP", "TIFF"}


class Photo:
    """One decoded input image.

    Attributes:
        rgb: (H, W, 3) float32 sRGB in [0, 1], EXIF orientation applied. Gray inputs are replicated to 3
            channels; 16-bit inputs keep their full precision (divided by 65535). For 8-bit inputs it is
            ``rgb8 / 255``, computed on first use (the batch runner's DataLoader workers often need only ``rgb8``).
        rgb8: (H, W, 3) uint8 sRGB, the decoded values themselves, for inputs of 8 bits per channel (modes 1, L,
            P, RGB, CMYK, YCbCr ... and their alpha variants); None for 16-bit and float inputs.
        alpha: (H, W) uint8 alpha channel in [0, 255] if the input had one (LA, RGBA, PA, P with
            transparency), else None.
        mode: the Pillow mode of the file as stored (``"L"``, ``"I;16"``, ``"CMYK"`` ...).
        is_gray: True when the file holds no colour (modes 1, L, LA, I, I;16, F).
        notes: things the user should know about how the file was read (e.g. animated GIF: first frame).
        full_size: (width, height) of the image as shown when its pixels were decoded at a reduced scale
            (:func:`read_photo` with ``reduce_to``: ``rgb`` is then smaller); None when they are full size.
        path: the file it was read from (None for an in-memory image).

    Raises:
        ValueError: neither ``rgb`` nor ``rgb8`` given.
    """

    def __init__(self, rgb: np.ndarray | None = None, alpha: np.ndarray | None = None, mode: str = "RGB",
                 is_gray: bool = False, notes: list[str] | None = None, rgb8: np.ndarray | None = None,
                 full_size: tuple[int, int] | None = None, path: Path | None = None) -> None:
        if rgb is None and rgb8 is None:
            raise ValueError("Photo needs rgb (float32) or rgb8 (uint8) pixels")
        self._rgb, self.rgb8, self.alpha, self.mode, self.is_gray = rgb, rgb8, alpha, mode, is_gray
        self.notes = [] if notes is None else notes
        self.full_size, self.path = full_size, path

    @property
    def rgb(self) -> np.ndarray:
        if self._rgb is None:  # one float32 array, no float64 temporary (a 6000x4000 photo is 288 MB as float32)
            self._rgb = np.divide(self.rgb8, np.float32(255.0), dtype=np.float32)
        return self._rgb

    @property
    def pixels_size(self) -> tuple[int, int]:
        """(width, height) of the decoded pixels (``rgb`` / ``rgb8``), Pillow's order."""
        arr = self.rgb8 if self.rgb8 is not None else self._rgb
        return arr.shape[1], arr.shape[0]

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the image as shown, in pixels, Pillow's order (the full size also when the pixels
        were decoded at a reduced scale)."""
        return self.full_size or self.pixels_size

    def at_full_size(self) -> Photo:
        """This photo with its pixels at full size: itself, or, if it was decoded at a reduced scale, its file
        decoded again in full (:func:`read_photo`).

        Raises:
            InputError: the file can no longer be read.
        """
        return self if self.full_size is None else read_photo(self.path)

    def as_uint8(self) -> np.ndarray:
        """(H, W, 3) uint8 sRGB: ``rgb8``, or ``rgb`` rounded to 8 bits (16-bit and float inputs)."""
        return self.rgb8 if self.rgb8 is not None else to_uint8(self.rgb)

    def __repr__(self) -> str:
        return (f"Photo(size={self.size}, pixels={self.pixels_size}, mode={self.mode!r}, is_gray={self.is_gray}, "
                f"alpha={self.alpha is not None}, notes={self.notes!r})")


def printable(text: str) -> str:
    """``text`` with every character a terminal would act on escaped, for one message line.

    Control characters (``\\n``, ``\\r``, ESC ...), Unicode line/paragraph separators, format characters (bidi
    overrides) and the surrogates that stand for undecodable bytes in file names (``os.fsdecode``) become ``\\n``,
    ``\\x1b``, ``\\u202e`` ...: a file name can neither forge a ``failed:`` line nor fail to print.
    """
    def escape(ch: str) -> str:
        if ch in "\n\r\t":
            return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}[ch]
        if 0xDC80 <= ord(ch) <= 0xDCFF:  # os.fsdecode's stand-in for the undecodable byte ord(ch) - 0xDC00
            return f"\\x{ord(ch) - 0xDC00:02x}"
        return f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"

    if text.isprintable():
        return text
    return "".join(escape(ch) if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp") else ch for ch in text)


def _bomb_reason(exc: BaseException) -> str:
    """One limit for every decompression bomb: Pillow's ``Image.MAX_IMAGE_PIXELS`` (its error quotes twice that)."""
    found = re.search(r"\((\d+) pixels\)", str(exc))
    size = f"{int(found.group(1)):,} pixels, " if found else ""
    return (f"image too large for safe decoding ({size}above the limit of {Image.MAX_IMAGE_PIXELS:,} pixels, "
            f"Pillow's Image.MAX_IMAGE_PIXELS)")


def plain_reason(exc: BaseException) -> str:
    """A decoder's exception in words: the internals of ``struct``/``zlib`` (``unpack_from requires a buffer of at
    least 4 bytes ...``, also when Pillow re-raises them as ``SyntaxError``) become what they mean for the file."""
    if isinstance(exc.__cause__, struct.error | zlib.error):
        exc = exc.__cause__
    if isinstance(exc, struct.error):
        return "a header is cut short or malformed"
    if isinstance(exc, zlib.error):
        return "its compressed data is corrupt"
    if isinstance(exc, MemoryError):
        return "not enough memory to decode it"
    return str(exc) or type(exc).__name__


def special_file_kind(mode: int) -> str | None:
    """What a non-regular file is ("a named pipe (FIFO)" ...), or None for a regular file."""
    for test, kind in ((stat.S_ISDIR, "is a directory"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return kind if kind.startswith("is ") else f"{kind}, not a regular file: not opened"
    return None if stat.S_ISREG(mode) else "not a regular file: not opened"


def open_regular(path: str | os.PathLike) -> BinaryIO:
    """Open ``path`` for binary reading if it is a regular file (symbolic links followed).

    A FIFO, socket or device is never opened (opening a FIFO blocks until a writer appears, opening a device can
    act on it): it is recognised by ``stat`` first, and the file is opened non-blocking and checked again, so a
    special file swapped in between is not read either.

    Raises:
        InputError: a FIFO, socket, device or directory; the message says which.
        OSError: the file cannot be opened (missing, permission denied, symbolic link loop ...).
    """
    kind = special_file_kind(os.stat(path).st_mode)
    if kind is not None:
        raise InputError(kind)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        kind = special_file_kind(os.fstat(fd).st_mode)
        if kind is not None:
            raise InputError(kind)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _describe_open_error(path: Path, exc: BaseException) -> str:
    if isinstance(exc, Image.DecompressionBombError | Image.DecompressionBombWarning):
        return _bomb_reason(exc)
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    if isinstance(exc, IsADirectoryError):
        return "is a directory"
    if isinstance(exc, OSError) and exc.errno == errno.ELOOP:
        return "symbolic link loop"
    if isinstance(exc, UnidentifiedImageError):
        try:
            if path.stat().st_size == 0:
                return "empty file (0 bytes)"
        except OSError:
            pass
        header = _header_error(path)
        return f"corrupt image header ({header})" if header else "not an image file Pillow can read"
    if isinstance(exc, MemoryError):
        return plain_reason(exc)
    if isinstance(exc, SyntaxError | OSError | ValueError | EOFError | struct.error | zlib.error):
        return f"corrupt or truncated image ({plain_reason(exc)})"
    return f"cannot decode image ({type(exc).__name__}: {plain_reason(exc)})"


def _header_error(path: Path) -> str | None:
    """Why the Pillow plugin whose signature the file carries rejected it, or None if no signature matches.

    ``Image.open`` reports every failure as "cannot identify image file"; for a file that starts like a PNG,
    JPEG, GIF ... the plugin's own error is the useful reason (e.g. "broken PNG file (bad header checksum in
    b'IHDR')").
    """
    try:
        with open(path, "rb") as f:
            prefix = f.read(16)
            Image.init()
            for fmt in Image.ID:
                factory, accept = Image.OPEN[fmt]
                try:
                    if accept is None or not accept(prefix):
                        continue
                    f.seek(0)
                    factory(f, str(path)).close()
                except Exception as exc:  # noqa: BLE001 - the plugin's reason is all we want
                    return f"{fmt}: {plain_reason(exc)}"
    except OSError:
        pass
    return None


def read_photo(path: str | os.PathLike,
               reduce_to: Callable[[tuple[int, int]], tuple[int, int] | None] | None = None) -> Photo:
    """Decode any image Pillow reads (L, LA, P, PA, RGB, RGBA, CMYK, YCbCr, 1-bit, 16-bit, float) into a :class:`Photo`.

    EXIF orientation is applied (``ImageOps.exif_transpose``); animated files give their first frame (a note
    says so); images above Pillow's ``Image.MAX_IMAGE_PIXELS`` are refused rather than decoded (a
    decompression-bomb warning is treated as an error); PNG chunk checksums are verified (``Image.verify``).

    Args:
        path: the image file.
        reduce_to: for callers that need the photo smaller than it is: a function of its (width, height) as shown
            giving the smallest (width, height) they need (None: full size). A JPEG is then decoded at 1/2, 1/4
            or 1/8 scale where both sides stay at least that large (libjpeg's DCT scaling, Pillow's ``draft``:
            the decoder skips most of its work), and ``Photo.full_size`` keeps the size as shown; other formats
            are decoded at full size.

    Raises:
        InputError: the file cannot be read or decoded; the message says why (empty, truncated, not an image,
            permission denied, too large ...).
    """
    path = Path(path)
    notes: list[str] = []
    full_size = None
    try:
        with warnings.catch_warnings(record=True) as caught, open_regular(path) as f:
            warnings.simplefilter("always")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(f) as im:
                if im.format == "PNG":
                    # load() does not check the CRC of every chunk (a bit flip in IDAT decodes silently);
                    # Pillow's verify() does. It leaves the image unusable, hence the second open.
                    im.verify()
            f.seek(0)
            with Image.open(f) as im:
                n_frames = getattr(im, "n_frames", 1)
                if n_frames > 1:
                    notes.append(f"{n_frames} frames: the first frame was used")
                    im.seek(0)
                if reduce_to is not None and im.format == "JPEG":
                    full_size = _draft(im, reduce_to)
                im.load()
                mode = im.mode
                im, rotated = _upright(im)
                notes += rotated
                rgb, rgb8, alpha = _to_rgb(im)
        # Pillow's warnings (corrupt EXIF, odd metadata ...) are about this file: notes, not stray stderr lines.
        for message in dict.fromkeys(str(w.message) for w in caught):
            notes.append(f"Pillow warned: {' '.join(message.split())}")
    except InputError:
        raise
    except (Exception, Image.DecompressionBombWarning) as exc:  # noqa: BLE001 - every decoder failure is reported
        raise InputError(_describe_open_error(path, exc)) from exc
    return Photo(rgb=rgb, rgb8=rgb8, alpha=alpha, mode=mode, is_gray=mode in _GRAY_MODES, notes=notes,
                 full_size=full_size, path=path)


#: EXIF orientations that swap width and height (the pixels are stored turned by 90 degrees).
_SWAPPED_ORIENTATIONS = {5, 6, 7, 8}


def _draft(im: Image.Image, reduce_to: Callable[[tuple[int, int]], tuple[int, int] | None]) -> tuple[int, int] | None:
    """Configure a JPEG's decoder to decode at the smallest DCT scale (1/2, 1/4, 1/8) that keeps both sides at least
    ``reduce_to(shown size)``; returns the shown (width, height) if the scale was reduced, else None."""
    w, h = im.size
    swapped = im.getexif().get(0x0112, 1) in _SWAPPED_ORIENTATIONS
    shown = (h, w) if swapped else (w, h)
    wanted = reduce_to(shown)
    if wanted is None:
        return None
    im.draft(None, (max(1, wanted[1]), max(1, wanted[0])) if swapped else (max(1, wanted[0]), max(1, wanted[1])))
    return shown if im.size != (w, h) else None


def _upright(im: Image.Image) -> tuple[Image.Image, list[str]]:
    """Apply the EXIF orientation (``ImageOps.exif_transpose``); the note only when the pixels were really turned
    or flipped (orientations 2-8), not for orientation 1 or a missing or invalid tag."""
    if im.getexif().get(0x0112, 1) not in range(2, 9):
        return im, []  # nothing to turn: ``exif_transpose`` would return a copy (72 MB for 6000 x 4000 RGB)
    return ImageOps.exif_transpose(im), ["EXIF orientation applied"]


def photo_from_image(image: Image.Image | np.ndarray) -> Photo:
    """An in-memory image -> :class:`Photo`, by the rules :func:`read_photo` applies to files.

    Args:
        image: a Pillow image in any mode (EXIF orientation applied), or a uint8 numpy array (H, W) gray,
            (H, W, 3) RGB or (H, W, 4) RGBA.

    Raises:
        InputError: an array of another dtype or shape, or an object that is neither.
    """
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3, 4))):
            raise InputError(f"expected a uint8 array of shape (H, W), (H, W, 3) or (H, W, 4), got {image.dtype} "
                             f"{image.shape}")
        image = Image.fromarray(image[:, :, 0] if image.ndim == 3 and image.shape[2] == 1 else image)
    elif not isinstance(image, Image.Image):
        raise InputError(f"expected a PIL image or a uint8 numpy array, got {type(image).__name__}")
    mode = image.mode
    transposed, notes = _upright(image)
    rgb, rgb8, alpha = _to_rgb(transposed)
    return Photo(rgb=rgb, rgb8=rgb8, alpha=alpha, mode=mode, is_gray=mode in _GRAY_MODES, notes=notes)


def _to_rgb(im: Image.Image) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """Pillow image in any mode -> ((H, W, 3) float32 in [0, 1] or None, (H, W, 3) uint8 or None, (H, W) uint8
    alpha or None): 8-bit images give their uint8 values (the float32 form is ``Photo.rgb``'s, on demand), 16-bit
    and float images the float32 form."""
    alpha = None
    mode = im.mode
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode == "PA":
        im = im.convert("RGBA")
    elif mode in ("La", "RGBa"):
        im = im.convert(mode.upper())
    mode = im.mode
    if mode in ("LA", "RGBA"):
        alpha = np.asarray(im.getchannel("A"), dtype=np.uint8).copy()
        im = im.convert(mode[:-1])
        mode = im.mode
    if mode.startswith("I;16") or mode == "I":
        # 16-bit PNG/TIFF: Pillow gives "I;16*" or 32-bit "I" holding 0..65535.
        gray = np.asarray(im, dtype=np.float32) / 65535.0
        return np.repeat(np.clip(gray, 0.0, 1.0)[:, :, None], 3, axis=2), None, alpha
    if mode == "F":
        return np.repeat(np.clip(np.asarray(im, dtype=np.float32), 0.0, 1.0)[:, :, None], 3, axis=2), None, alpha
    if mode in ("1", "L"):
        return None, np.repeat(np.asarray(im.convert("L"))[:, :, None], 3, axis=2), alpha
    if mode != "RGB":
        im = im.convert("RGB")  # CMYK, YCbCr, LAB, HSV: Pillow's own conversions
    return None, np.asarray(im), alpha


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Float array in [0, 1] (any shape) -> uint8 in [0, 255], rounded to nearest; values outside are clipped.

    ``(clip(x, 0, 1) * 255 + 0.5)`` truncated, in ``x``'s float type; one temporary (the clip), the rest in place.
    """
    y = np.clip(x, 0.0, 1.0)
    y *= 255.0
    y += 0.5
    return y.astype(np.uint8)


def image_format_for(ext: str) -> str:
    """Pillow format name for an output extension such as ``".png"`` or ``"jpg"``.

    Raises:
        UsageError: Pillow cannot write that extension.
    """
    ext = ext if ext.startswith(".") else "." + ext
    fmt = writable_format(ext)
    if fmt is None:
        raise UsageError(f"--ext {ext}: Pillow cannot write this format; use .png, .jpg, .webp or .tif")
    return fmt


def check_output_format(fmt: str, mode: str, ext: str, what: str | None = None) -> None:
    """Prove that Pillow can encode a ``mode`` image (``"L"``, ``"RGB"`` ...) as ``fmt``, before any photo is
    decoded: some formats are registered without a writer (GRIB, BUFR, HDF5, WMF) or write 1-bit images only
    (XBM, MSP, Palm), which would fail every file after its work was done.

    Raises:
        UsageError: the format cannot store such an image; the message names ``what`` (default ``--ext EXT``).
    """
    why = cannot_write(fmt, mode)
    if why is not None:
        raise UsageError(f"{what or '--ext ' + ext}: Pillow cannot write {mode} images as {fmt} ({why}); use .png, "
                         f".jpg, .webp or .tif")


def fit_for_format(im: Image.Image, fmt: str) -> tuple[Image.Image, list[str]]:
    """Drop an alpha channel the output format cannot store (JPEG, BMP ...); returns the image and notes."""
    if im.mode in ("LA", "RGBA") and fmt not in ALPHA_FORMATS:
        return im.convert(im.mode[:-1]), [f"{fmt} cannot store alpha: alpha channel dropped"]
    return im, []


#: Output formats whose Pillow writer takes ``quality`` (1-100; Pillow's defaults: JPEG 75, WebP 80, AVIF 75).
QUALITY_FORMATS = {"JPEG", "WEBP", "AVIF"}


def writable_format(ext: str) -> str | None:
    """The Pillow format that writes files with extension ``ext`` (``".jpg"`` -> ``"JPEG"``, case-insensitive),
    or None if Pillow has no writer for it (or it is no image extension)."""
    fmt = Image.registered_extensions().get(ext.lower()) if ext else None
    return fmt if fmt is not None and fmt in Image.SAVE else None


_MODE_WRITABLE: dict[tuple[str, str], str | None] = {}


def cannot_write(fmt: str, mode: str) -> str | None:
    """Why Pillow cannot encode a ``mode`` image (``"L"``, ``"RGBA"`` ...) as ``fmt``, or None if it can (a 2x2
    probe image, encoded in memory once per pair and remembered)."""
    key = (fmt, mode)
    if key not in _MODE_WRITABLE:
        try:
            Image.new(mode, (2, 2)).save(io.BytesIO(), format=fmt)
            _MODE_WRITABLE[key] = None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            _MODE_WRITABLE[key] = str(exc) or type(exc).__name__
    return _MODE_WRITABLE[key]


def auto_output_ext(path: Path, mode: str) -> tuple[str, str | None]:
    """``--ext auto``: the extension of the output of input ``path`` for an output of Pillow ``mode``.

    The input's own extension (as spelled: ``a.JPG`` -> ``.JPG``) when Pillow can write ``mode`` images in that
    format; else ``.png`` (lossless, every mode), with a note saying why.

    Returns:
        (extension, note or None).
    """
    fmt = writable_format(path.suffix)
    if fmt is None:
        kind = f"{path.suffix} files" if path.suffix else "files without an extension"
        return ".png", f"--ext auto: Pillow cannot write {kind}: written as PNG"
    if cannot_write(fmt, mode) is not None:
        return ".png", f"--ext auto: {fmt} cannot store {mode} images: written as PNG"
    return path.suffix, None
