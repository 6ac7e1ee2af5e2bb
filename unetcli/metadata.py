"""Carrying what an input carries besides its pixels (EXIF, the ICC profile) to its output, with Pillow.

Pillow reads and writes both; what is ours is the choice of what to carry where (no Orientation tag once the
pixels are upright, pixel dimensions set to the output's, a profile only where its colour space fits the output).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field

from PIL import Image

from unetcli.imageio import open_regular, plain_reason

#: Output formats whose Pillow writer stores EXIF and an ICC profile (``exif=``, ``icc_profile=``).
METADATA_FORMATS = {"JPEG", "PNG", "WEBP", "TIFF", "AVIF"}
#: The largest EXIF block a JPEG APP1 marker holds (Pillow refuses a longer one).
_JPEG_MAX_EXIF = 65533
#: EXIF tags: Orientation (IFD0); the Exif sub-IFD and its PixelXDimension / PixelYDimension.
_ORIENTATION, _EXIF_IFD, _GPS_IFD, _PIXEL_X, _PIXEL_Y = 0x0112, 0x8769, 0x8825, 0xA002, 0xA003


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
    it from the main thread, as :func:`~unetcli.imageio.read_photo`.
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
            meta.exif, meta.notes = None, [f"EXIF not carried over: it could not be read ({plain_reason(exc)})"]
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
            notes.append(f"EXIF not carried over: it could not be written ({plain_reason(exc)})")
        if raw is not None and fmt == "JPEG" and len(raw) > _JPEG_MAX_EXIF:
            notes.append(f"EXIF not carried over: {len(raw):,} bytes, more than a JPEG holds ({_JPEG_MAX_EXIF:,})")
        elif raw is not None and len(data):  # an EXIF that held only the orientation is left out
            params["exif"] = raw
    if meta.icc and colours:
        space = icc_colour_space(meta.icc)
        if (space == "RGB" and im.mode in ("RGB", "RGBA")) or (space == "GRAY" and im.mode in ("L", "LA")):
            params["icc_profile"] = meta.icc
    return params, notes
