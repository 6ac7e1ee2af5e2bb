"""Reading any image Pillow can open into one well-defined form, finding input files, and atomic writing.

Everything here is Pillow and NumPy; the only logic of our own is the mapping of Pillow's many modes onto
"sRGB float in [0, 1] plus an optional alpha", which no library does in one call.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import io
import json
import os
import re
import stat
import struct
import unicodedata
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

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


def _plain(exc: BaseException) -> str:
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


def _special_file(mode: int) -> str | None:
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
    kind = _special_file(os.stat(path).st_mode)
    if kind is not None:
        raise InputError(kind)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        kind = _special_file(os.fstat(fd).st_mode)
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
        return _plain(exc)
    if isinstance(exc, SyntaxError | OSError | ValueError | EOFError | struct.error | zlib.error):
        return f"corrupt or truncated image ({_plain(exc)})"
    return f"cannot decode image ({type(exc).__name__}: {_plain(exc)})"


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
                    return f"{fmt}: {_plain(exc)}"
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
#: Output formats whose Pillow writer stores EXIF and an ICC profile (``exif=``, ``icc_profile=``).
METADATA_FORMATS = {"JPEG", "PNG", "WEBP", "TIFF", "AVIF"}
#: The largest EXIF block a JPEG APP1 marker holds (Pillow refuses a longer one).
_JPEG_MAX_EXIF = 65533
#: EXIF tags: Orientation (IFD0); the Exif sub-IFD and its PixelXDimension / PixelYDimension.
_ORIENTATION, _EXIF_IFD, _GPS_IFD, _PIXEL_X, _PIXEL_Y = 0x0112, 0x8769, 0x8825, 0xA002, 0xA003


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


@dataclass
class InputMetadata:
    """What an input carries besides its pixels, to be carried to its output (:func:`carried_metadata`).

    Attributes:
        exif: the parsed EXIF block, or None.
        icc: the ICC profile as stored, or None.
        notes: why something was not taken (a corrupt EXIF block).
    """

    exif: Image.Exif | None = None
    icc: bytes | None = None
    notes: list[str] = field(default_factory=list)


def read_metadata(path: str | os.PathLike) -> InputMetadata:
    """The EXIF block and the ICC profile of an image file (no pixel is decoded).

    EXIF is the block that JPEG (APP1), PNG (an ``eXIf`` chunk before the image data), WebP and AVIF files carry;
    a TIFF's own tags describe its pixels, not the capture, and are not taken. An EXIF block Pillow finds corrupt
    (it warns) is not taken, with a note; a file that cannot be opened gives nothing (it was decoded before).

    Not thread-safe against other code that catches warnings (``warnings.catch_warnings``): ``predict`` calls
    it from the main thread, as :func:`read_photo`.
    """
    meta = InputMetadata()
    try:
        with warnings.catch_warnings(record=True) as caught, open_regular(path) as f, Image.open(f) as im:
            warnings.simplefilter("always")
            raw, icc = im.info.get("exif"), im.info.get("icc_profile")
            meta.icc = icc if isinstance(icc, bytes) and icc else None
            if isinstance(raw, bytes) and raw:
                meta.exif = Image.Exif()
                meta.exif.load(raw)
                meta.exif.get_ifd(_EXIF_IFD)  # parsed now, under the warnings catcher
                meta.exif.get_ifd(_GPS_IFD)
    except Exception as exc:  # noqa: BLE001 - metadata is carried on a best-effort basis
        if meta.exif is not None:
            meta.exif, meta.notes = None, [f"EXIF not carried over: it could not be read ({_plain(exc)})"]
        return meta
    if caught and meta.exif is not None:
        meta.exif, meta.notes = None, ["EXIF not carried over: Pillow found it corrupt"]
    return meta


def icc_colour_space(icc: bytes) -> str:
    """The data colour space an ICC profile's header declares (bytes 16-19): ``"RGB"``, ``"GRAY"``, ``"CMYK"``,
    ``"Lab"`` ... (empty for a header cut short)."""
    return icc[16:20].decode("latin-1").strip() if len(icc) >= 20 else ""


def carried_metadata(meta: InputMetadata | None, im: Image.Image, fmt: str,
                     colours: bool = True) -> tuple[dict, list[str]]:
    """The Pillow ``save`` keywords that carry an input's EXIF and ICC profile to its output ``im``.

    * EXIF (camera, date, GPS ...) goes to every format that stores it (:data:`METADATA_FORMATS`), without the
      Orientation tag (the pixels were turned upright when read) and with the Exif sub-IFD's pixel dimensions set
      to the output's size; the thumbnail (IFD1, a copy of the original) is not kept. An EXIF block a JPEG cannot
      hold (over 64 KB) is dropped with a note.
    * The ICC profile says how pixel values map to colours. It goes to outputs whose pixels are the photo's
      colours (``colours``: gray and colorized photos, overlays, cutouts; not masks, whose values are classes) and
      whose mode its colour space fits: an RGB profile to RGB/RGBA outputs, a gray profile to L/LA outputs. A gray
      output of an RGB photo gets none (an RGB profile is invalid in a one-channel file), nor does an RGB output of
      a CMYK photo (its pixels were converted without it).

    Args:
        meta: what :func:`read_metadata` found in the input (None: nothing). Its EXIF is changed in place.
        im: the output image about to be written (its mode and size).
        fmt: its Pillow format.
        colours: the output's pixels are colours of the photo.

    Returns:
        (keywords for ``Image.save``, notes): both empty when the input has neither, so such outputs stay byte for
        byte what they were without this step.
    """
    params: dict = {}
    notes: list[str] = []
    if meta is None or fmt not in METADATA_FORMATS:
        return params, notes
    if meta.exif is not None:
        data = meta.exif
        try:
            data.pop(_ORIENTATION, None)
            if _EXIF_IFD in data:
                sub = data.get_ifd(_EXIF_IFD)
                for tag, value in ((_PIXEL_X, im.width), (_PIXEL_Y, im.height)):
                    if tag in sub:
                        sub[tag] = value
            raw = data.tobytes()
        except Exception as exc:  # noqa: BLE001 - malformed EXIF: the output is written without it
            raw = None
            notes.append(f"EXIF not carried over: it could not be written ({_plain(exc)})")
        if raw is not None and fmt == "JPEG" and len(raw) > _JPEG_MAX_EXIF:
            notes.append(f"EXIF not carried over: {len(raw):,} bytes, more than a JPEG holds ({_JPEG_MAX_EXIF:,})")
        elif raw is not None and len(data):  # an EXIF that held only the orientation is left out
            params["exif"] = raw
    if meta.icc and colours:
        space = icc_colour_space(meta.icc)
        if (space == "RGB" and im.mode in ("RGB", "RGBA")) or (space == "GRAY" and im.mode in ("L", "LA")):
            params["icc_profile"] = meta.icc
    return params, notes


#: Encoder settings per output format. PNG: zlib level 1, OpenCV's ``imwrite`` default (Pillow's is 6): measured on
#: 1024-px photos, 4x faster to encode (44 vs 177 ms) for files about 11 % larger; still lossless.
SAVE_OPTIONS = {"PNG": {"compress_level": 1}}


def temporary_name(path: Path) -> Path:
    """The hidden temporary name beside ``path`` that :func:`atomic_write` writes first: ``.<name>.<pid>.tmp``."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


@contextlib.contextmanager
def atomic_write(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write to; when the block ends normally it is renamed to ``path``
    with ``os.replace`` (atomic on POSIX and Windows), so ``path`` is either its old self or complete, never
    half-written. On any error (or ``KeyboardInterrupt``) the temporary file is removed and the error re-raised.

    The one way every writer of unetcli (outputs, weights, model cards, checkpoints, metrics, exports) writes a file;
    :func:`remove_stale_temporaries` clears what a killed (``kill -9``) process left.

    Example:
        >>> with atomic_write(Path("out.json")) as tmp:  # doctest: +SKIP
        ...     tmp.write_text("{}")
    """
    tmp = temporary_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def ensure_writable_folder(folder: Path, what: str) -> None:
    """Create ``folder`` (and its parents) and prove a file can be written there, before any work: a read-only
    file system, missing permissions or a file in the way are found at once, not after the first hour.

    Args:
        folder: the output or run folder.
        what: how the message names it (``"output folder"``, ``"run folder"``).

    Raises:
        UsageError: ``{what} {folder} is not writable ({reason})``.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".unetcli-write-test.{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"{what} {printable(str(folder))} is not writable ({exc.strerror or exc})") from None


def save_atomic(im: Image.Image, path: Path, fmt: str, before_replace: Callable[[Path], None] | None = None,
                params: dict | None = None) -> None:
    """Write ``im`` to ``path`` so that ``path`` is either absent or complete, never half-written
    (:func:`atomic_write`); the parent folder is created. Encoder settings come from :data:`SAVE_OPTIONS`, then
    ``params`` (Pillow ``save`` keywords: ``quality``, ``exif``, ``icc_profile`` ...).

    ``before_replace(tmp)`` runs once the file is encoded, before it takes its name (``predict`` records the
    output in its :class:`OutputLog` there); if it raises, nothing is renamed and the temporary file is removed.

    Raises:
        OSError: the folder or file cannot be written (full disk, read-only file system, permission denied, a
            file where a folder should be); no file is left at ``path`` or beside it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as tmp:
        im.save(tmp, format=fmt, **SAVE_OPTIONS.get(fmt, {}), **(params or {}))
        if before_replace is not None:
            before_replace(tmp)


def append_line(fd: int, line: str) -> None:
    """Append one ASCII ``line`` (ending in a newline) to the file open on ``fd`` (``O_APPEND``) in one ``write``.

    Lines of concurrent writers (threads, processes sharing a file) never interleave (``O_APPEND``: each write
    lands whole at the end). A line that could not be written whole (full disk) is cut off again, so the file
    never holds a partial line.

    Raises:
        OSError: the line could not be written (nothing of it is left in the file when it could be removed).
    """
    data = line.encode("ascii")
    start = os.fstat(fd).st_size
    written = 0
    try:
        written = os.write(fd, data)
        if written != len(data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    except OSError:
        with contextlib.suppress(OSError):
            if written and os.fstat(fd).st_size == start + written:  # no other writer appended meanwhile
                os.ftruncate(fd, start)
        raise


def open_append(path: Path) -> int:
    """An ``O_APPEND`` file descriptor for :func:`append_line` (the file is created if needed).

    Raises:
        OSError: the file cannot be opened for writing.
    """
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)


#: The record of what ``predict`` wrote into an OUTPUT folder: one JSON line per output written, at OUTPUT's root.
OUTPUT_LOG = ".unetcli-outputs.jsonl"


class OutputLog:
    """What made each output in an OUTPUT folder: ``OUTPUT/.unetcli-outputs.jsonl``, one JSON line per output
    written: its path (relative to OUTPUT), size and modification time (ns), and the ``made_by`` record (model,
    weights sha256, the options that change pixels).

    Why a log in OUTPUT rather than metadata inside each image: the images stay byte for byte what they were (and
    what every other tool writes); every format is covered, also those without metadata (BMP, GIF); checking an
    output is one ``stat``, not a decode; and a file that another program wrote or replaced has no matching record
    (size and mtime differ), so ``--overwrite`` can tell unetcli's own outputs from everything else. Lines are
    appended whole (:func:`append_line`), so threads, shards and concurrent runs sharing OUTPUT all add to one log,
    and a record is written before its output takes its name, so a ``kill -9`` never leaves an output without one.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / OUTPUT_LOG
        self.records: dict[str, list[dict]] = {}
        self._fd: int | None = None
        with contextlib.suppress(OSError):
            with open(self.path, "rb") as f:
                for raw in f:
                    with contextlib.suppress(ValueError, AttributeError, KeyError, TypeError):
                        rec = json.loads(raw)
                        self.records.setdefault(rec["output"], []).append(rec)

    def _key(self, output: Path) -> str:
        return os.path.relpath(output, self.folder)

    def made_by(self, output: Path) -> dict | None:
        """The ``made_by`` record of the file now at ``output`` if unetcli wrote it (a record whose size and mtime
        match the file), else None (no file, or a file unetcli has no record of writing)."""
        try:
            st = os.stat(output)
        except OSError:
            return None
        for rec in reversed(self.records.get(self._key(output), [])):
            if rec.get("size") == st.st_size and rec.get("mtime_ns") == st.st_mtime_ns:
                return rec.get("made_by")
        return None

    def record(self, output: Path, written: Path, made_by: dict) -> None:
        """Append the record of ``written`` (the encoded temporary file about to be renamed to ``output``).

        Raises:
            OSError: the log cannot be written (the caller then does not rename the output).
        """
        if self._fd is None:
            self._fd = open_append(self.path)
        st = os.stat(written)
        append_line(self._fd, json.dumps({"output": self._key(output), "size": st.st_size,
                                          "mtime_ns": st.st_mtime_ns, "made_by": made_by}) + "\n")

    def close(self) -> None:
        """Close the log file (it is opened on the first :meth:`record`)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _is_temporary_of(name: str, targets: set[str] | None) -> int | None:
    """The writer's PID if ``name`` is ``.<target>.<pid>.tmp`` (:func:`temporary_name`) for one of ``targets``
    (None: any), else None."""
    stem, _, suffix = name.rpartition(".")
    base, _, pid = stem.rpartition(".")
    if (name.startswith(".") and suffix == "tmp" and pid.isdigit() and len(base) > 1
            and (targets is None or base[1:] in targets)):
        return int(pid)
    return None


def _process_alive(pid: int) -> bool:
    """True if a process with this PID exists on this machine (signal 0 checks without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # someone else's process (or an unknowable PID): keep its file
    return True


def remove_stale_temporaries(targets: list[Path] | None = None, *, folder: Path | None = None) -> int:
    """Delete the temporary files :func:`atomic_write` left when a process was killed (``kill -9``).

    Only files whose writer (the PID in the name) is gone are removed: another process writing into the same folder
    keeps its live temporary files (two runs sharing OUTPUT never break each other's writes). Call it before this
    process writes there: a file named with this process's own PID is then a dead predecessor's (PIDs repeat, e.g.
    in containers) and is removed.

    Args:
        targets: remove only ``.<target name>.<pid>.tmp`` next to one of these files, so nothing but a run's own
            would-be outputs is touched (``predict``).
        folder: remove every such temporary file in this folder (a training run's own folder).

    Returns:
        How many files were removed.
    """
    by_folder: dict[Path, set[str] | None] = {}
    for t in targets or []:
        names = by_folder.setdefault(t.parent, set())
        if names is not None:
            names.add(t.name)
    if folder is not None:
        by_folder[Path(folder)] = None
    removed = 0
    for where, names in by_folder.items():
        try:
            entries = list(os.scandir(where))
        except OSError:
            continue
        for entry in entries:
            pid = _is_temporary_of(entry.name, names)
            if pid is not None and (pid == os.getpid() or not _process_alive(pid)) \
                    and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed += 1
    return removed


def is_image_name(path: Path) -> bool:
    """True if the extension is one Pillow opens (``.jpg``, ``.png``, ``.tif``, ``.webp``, ``.gif`` ...)."""
    return path.suffix.lower() in _readable_extensions()


_READABLE: set[str] | None = None


def _readable_extensions() -> set[str]:
    global _READABLE
    if _READABLE is None:
        _READABLE = {ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}
    return _READABLE


def collect_inputs(source: str, recursive: bool = False,
                   unreadable: list[tuple[Path, str]] | None = None) -> list[tuple[Path, Path]]:
    """Expand an INPUT argument into sorted ``(file, relative path)`` pairs.

    Args:
        source: a file (taken whatever its extension), a folder (its image files; sub-folders with
            ``recursive``), or a glob pattern (``photos/*.jpg``, ``**`` allowed). Hidden files are skipped.
            Special files (FIFOs, sockets, devices) with an image name are taken like files: reading them
            (:func:`read_photo`) reports them without opening them.
        recursive: descend into sub-folders. Symlinked folders are followed once; a symlink loop is detected
            by real path and not entered twice.
        unreadable: if given, each sub-folder that cannot be listed (permission denied ...) is appended as
            ``(folder, reason)``; otherwise such folders are skipped.

    Returns:
        Pairs sorted by relative path; the relative path is what the output mirrors (for a folder, the path
        below it; for a glob, the path below its fixed leading part; for a file, its name).

    Raises:
        UsageError: nothing matched, INPUT is a special file, or the INPUT folder itself cannot be listed.
    """
    p = Path(source)
    items: list[tuple[Path, Path]] = []
    if p.is_file():
        items = [(p, Path(p.name))]
    elif p.is_dir():
        seen: set[str] = set()
        failed: list[OSError] = []
        for root, dirs, files in os.walk(p, followlinks=recursive, onerror=failed.append):
            real = os.path.realpath(root)
            if real in seen:
                dirs[:] = []
                continue
            seen.add(real)
            dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if recursive else []
            for name in files:
                f = Path(root) / name
                if not name.startswith(".") and is_image_name(f):
                    items.append((f, f.relative_to(p)))
        for exc in failed:
            if os.path.abspath(exc.filename or p) == os.path.abspath(p):
                raise UsageError(f"input {source!r}: cannot list the folder "
                                 f"({(exc.strerror or str(exc)).lower()})")
            if unreadable is not None:
                reason = (exc.strerror or str(exc)).lower()
                unreadable.append((Path(exc.filename), f"cannot list the folder ({reason}): its files were not read"))
        if unreadable:
            return sorted(items, key=lambda pair: str(pair[1]))
    elif p.exists():
        raise UsageError(f"input {source!r}: {_special_file(p.stat().st_mode)}; expected an image file, "
                         f"a folder or a glob")
    elif _has_magic(source):
        fixed = _leading_fixed_parts(source)
        base = Path(*fixed) if fixed else Path(".")
        for match in glob.glob(source, recursive=True):
            f = Path(match)
            if f.exists() and not f.is_dir() and not f.name.startswith("."):
                items.append((f, f.relative_to(base) if f.is_relative_to(base) else Path(f.name)))
    else:
        raise UsageError(f"input {source!r}: no such file or folder")
    if not items:
        raise UsageError(f"input {source!r}: no image files found"
                         + ("" if recursive or not p.is_dir() else " (add --recursive for sub-folders)"))
    return sorted(items, key=lambda pair: str(pair[1]))


def collect_listed(paths: list[str], base: str) -> list[tuple[Path, Path]]:
    """Files named in a list (``--files-from``) -> sorted ``(file, relative path)`` pairs, like :func:`collect_inputs`.

    Args:
        paths: file paths as listed (relative ones are relative to the current folder, as ``find`` prints
            them). Every listed path is taken whatever its extension, hidden or not; duplicates are dropped. A
            path that does not exist is kept: it fails as its own file ("file not found"), the batch goes on.
        base: the folder the outputs mirror the listed paths relative to (``find photos ...`` -> ``photos``).

    Returns:
        Pairs sorted by relative path.

    Raises:
        UsageError: ``base`` is not a folder, the list is empty, or a listed path is not inside ``base``.
    """
    root = Path(base)
    if not root.is_dir():
        raise UsageError(f"input {base!r}: with --files-from, INPUT is the folder that the outputs mirror the "
                         f"listed paths relative to, and must be an existing folder (e.g. .)")
    root_abs = os.path.abspath(root)
    items: list[tuple[Path, Path]] = []
    seen: set[str] = set()
    outside: list[str] = []
    for listed in paths:
        absolute = os.path.abspath(listed)
        if absolute in seen:
            continue
        seen.add(absolute)
        rel = os.path.relpath(absolute, root_abs)
        if rel == os.curdir or rel == os.pardir or rel.startswith(os.pardir + os.sep):
            outside.append(listed)
            continue
        items.append((Path(listed), Path(rel)))
    if outside:
        raise UsageError(f"--files-from: {len(outside)} listed path(s) are not inside INPUT folder "
                         f"{printable(base)}, e.g. "
                         f"{outside[0]!r}; pass a folder that holds them all (e.g. / for absolute paths)")
    if not items:
        raise UsageError("--files-from: the list names no files")
    return sorted(items, key=lambda pair: str(pair[1]))


def _has_magic(s: str) -> bool:
    return any(c in s for c in "*?[")


def _leading_fixed_parts(pattern: str) -> list[str]:
    parts = []
    for part in Path(pattern).parts:
        if _has_magic(part):
            break
        parts.append(part)
    return parts
