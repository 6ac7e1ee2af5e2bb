"""Full-resolution CIE Lab recombination: a network's colours (a/b at its working size) joined with a photo's own
lightness at the photo's size, converted to 8-bit sRGB in strips of rows.

Zhang, Isola & Efros, "Colorful Image Colorization" (ECCV 2016), and DeOldify: the network sees the luminance
at a working size; its colours (the a/b channels of CIE Lab) are upsampled to the photo's size and joined with
the photo's own full-resolution L, so every detail of the input's luminance is kept. The recombination runs in
float32 numpy with the formulas of kornia's ``lab_to_rgb`` and scikit-image's ``lab2rgb`` (D65 white, sRGB
transfer curve), fused into a few passes per strip of rows (:func:`recombine`), L* looked up per gray level
(:func:`gray_tables`) and the sRGB curve per cell of linear light (:func:`encode_srgb8`); tests hold its 8-bit
output to scikit-image's float64 one. Our own code, not a library call, because of speed and memory: issue 18
measured it on one core at 8-15 ns per pixel, where kornia's conversion took 50-70 (float64 scikit-image before
it: 2-3 times that), and a 6000 x 4000 photo needs the photo's own buffers plus one strip.
"""

from __future__ import annotations

import functools
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from skimage.color import rgb2gray

from unetcli.imageio import Photo

#: Largest change of L* (0..100) that the gamut handling of :func:`lab_to_rgb_keeping_lightness` accepts.
LIGHTNESS_TOLERANCE = 0.05

# The constants of kornia's lab_to_rgb / rgb_to_xyz (scikit-image's lab2rgb uses the same): D65 white, the CIE XYZ
# -> linear sRGB matrix, the Y row of linear sRGB -> XYZ, and the CIE f^-1 knee (its cube above, the line of slope
# 1 / 7.787 below).
_WHITE = np.array([0.95047, 1.0, 1.08883])
_XYZ_TO_LINEAR = np.array([[3.2404813432005266, -1.5371515162713185, -0.4985363261688878],
                           [-0.9692549499965682, 1.8759900014898907, 0.0415559265582928],
                           [0.0556466391351772, -0.2040413383665112, 1.0573110696453443]])
_Y_OF_LINEAR = np.array([0.212671, 0.715160, 0.072169])
_KNEE = 0.2068966
_HUGE = 3e38
#: Linear light is carried in units of 1 / CELLS (0..CELLS), the cells of the 8-bit sRGB encoding
#: (:func:`encode_srgb8`); the scaling is part of the conversion matrix.
CELLS = 4096


def _conversion_matrix() -> np.ndarray:
    """(3, 6) float32: :class:`_LabConverter`'s rows (X cube, Z cube, Y, X line, Z line, 1) -> CELLS x linear sRGB.

    X = f^-1(fx) = max(fx, k)^3 + (min(fx, k) - k) / 7.787 (and Z alike), so X, Y, Z -> linear sRGB (the XYZ ->
    linear matrix, its columns scaled by the D65 white) is one product with the cube and line parts as separate rows
    and the constant -k / 7.787 on a row of ones.
    """
    m = _XYZ_TO_LINEAR * _WHITE
    x, y, z = m[:, 0], m[:, 1], m[:, 2]
    return (np.stack([x, z, y, x / 7.787, z / 7.787, -_KNEE / 7.787 * (x + z)], axis=1) * CELLS).astype(np.float32)


_MATRIX = _conversion_matrix()
#: Y of CELLS x linear sRGB.
_Y_OF_CELLS = (_Y_OF_LINEAR / CELLS).astype(np.float32)


class _LabConverter:
    """CIE Lab -> linear sRGB for up to ``n`` colours at a time, fused into 7 numpy passes over preallocated buffers
    (kornia's ``lab_to_rgb`` written out; the reason, measured on one core: kornia's conversion is some 60 torch
    calls with three ``pow`` per pixel, 36 ns per pixel; this, the 8-bit encoding included (:func:`encode_srgb8`),
    a few ns, and at 64 k pixels a strip the cost of Python calls counts: numpy's are half of torch's).

    Use: write ``fy = (L + 16) / 116`` into :meth:`fy` and ``Y = f^-1(fy)`` into :meth:`y` (:func:`lightness_terms`
    gives both), then :meth:`linear` with ``fa = a / 500``, ``fb = -b / 200``.
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self._fy = np.empty(n, np.float32)
        self._rows = np.empty(6 * n, np.float32)
        self._linear = np.empty(3 * n, np.float32)
        self._square = np.empty(2 * n, np.float32)
        self._cell, self._codes = np.empty(3 * n, np.int32), np.empty(3 * n, np.float32)
        self._m = -1

    def encode_scratch(self, m: int) -> tuple[np.ndarray, np.ndarray]:
        """(3, m) int32 and float32 buffers for :func:`encode_srgb8`."""
        return self._cell[: 3 * m].reshape(3, m), self._codes[: 3 * m].reshape(3, m)

    def rows(self, m: int) -> np.ndarray:
        """(6, m) view: X cube, Z cube, Y, X line, Z line, ones (the ones written when ``m`` changes)."""
        rows = self._rows[: 6 * m].reshape(6, m)
        if m != self._m:
            rows[5] = 1.0
            self._m = m
        return rows

    def fy(self, m: int) -> np.ndarray:
        """(m,) float32 buffer for fy = (L + 16) / 116."""
        return self._fy[:m]

    def y(self, m: int) -> np.ndarray:
        """(m,) float32 buffer (a row of :meth:`rows`) for the relative luminance Y."""
        return self.rows(m)[2]

    def linear(self, m: int, fab: np.ndarray, chroma: np.ndarray | None = None) -> np.ndarray:
        """(fa, fb) (2, m) float32, scaled by ``chroma`` (m,) if given, with :meth:`fy` and :meth:`y` -> CELLS x
        linear sRGB (3, m) float32, not clipped (a view of a buffer that the next call overwrites).

        fx = fy + fa, fz = max(fy + fb, 0); X and Z by the CIE f^-1 (cube above the knee k, line below: kornia's
        and scikit-image's; the line is written through (k, k^3) where theirs goes through (4/29, 0): 4e-8 apart
        in X or Z), then one product (:func:`_conversion_matrix`).
        """
        rows, fy = self.rows(m), self._fy[:m]
        line = rows[3:5]
        if chroma is None:
            np.add(fy, fab, out=line)
        else:
            np.multiply(fab, chroma, out=line)
            line += fy
        # np.clip with two finite bounds: 3x faster than np.maximum / np.minimum with one (measured)
        np.clip(line, _KNEE, _HUGE, out=rows[0:2])  # max(max(fz, 0), k) = max(fz, k)
        np.clip(line[0], -_HUGE, _KNEE, out=line[0])
        np.clip(line[1], 0.0, _KNEE, out=line[1])
        square = self._square[: 2 * m].reshape(2, m)
        np.multiply(rows[0:2], rows[0:2], out=square)
        rows[0:2] *= square
        return np.matmul(_MATRIX, rows, out=self._linear[: 3 * m].reshape(3, m))


def lightness_terms(lightness: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """CIE L* (K,) float32 -> what the recombination needs of it, each (K,) float32: fy = (L + 16) / 116, the
    relative luminance Y = f^-1(fy) (kornia's and scikit-image's formula), and the Y of L -/+
    :data:`LIGHTNESS_TOLERANCE` (the luminances between which a colour keeps its L within the tolerance:
    :func:`lightness_of_luminance` is increasing, so the gamut check compares Y, no cube root per colour)."""
    lightness = np.asarray(lightness, np.float32)
    fy = (lightness + np.float32(16.0)) / np.float32(116.0)
    y = np.where(fy > np.float32(_KNEE), fy * fy * fy, (fy - np.float32(4.0 / 29.0)) / np.float32(7.787))

    def luminance(lig: np.ndarray) -> np.ndarray:  # the inverse of lightness_of_luminance
        f = (lig + np.float32(16.0)) / np.float32(116.0)
        return np.where(f > np.float32(0.008856 ** (1.0 / 3.0)), f * f * f,
                        (f - np.float32(16.0 / 116.0)) / np.float32(7.787))

    tol = np.float32(LIGHTNESS_TOLERANCE)
    return fy, y.astype(np.float32), luminance(lightness - tol), luminance(lightness + tol)


def out_of_gamut(cells: np.ndarray, bounds: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Indices (K,) int64 of the colours of ``cells`` (3, N) float32, CELLS x linear sRGB, not clipped, that
    clipping to the gamut would move in L* by more than :data:`LIGHTNESS_TOLERANCE`: whose clipped Y leaves the
    bounds ``bounds(indices)`` gives for them ((K,) float32 each: :func:`lightness_terms`' last two).

    Only a colour with a channel outside [0, CELLS] is moved by the clip (usually a few percent of a photo; often
    none in a strip, which two reductions tell), so the check runs on those alone. Clipping linear RGB is the same
    clip as clipping sRGB, whose curve maps [0, 1] onto itself.
    """
    if cells.min() >= 0.0 and cells.max() <= CELLS:
        return np.empty(0, dtype=np.int64)
    suspect = np.flatnonzero((cells.max(axis=0) > CELLS) | (cells.min(axis=0) < 0.0))
    luminance = _Y_OF_CELLS @ np.clip(cells[:, suspect], 0.0, CELLS)
    y_low, y_high = bounds(suspect)
    return suspect[(luminance < y_low) | (luminance > y_high)]


def reduce_chroma(terms: tuple[np.ndarray, ...], fab: np.ndarray, iterations: int = 8) -> np.ndarray:
    """Out-of-gamut CIE Lab colours -> CELLS x linear sRGB (3, K) float32 in [0, CELLS], of the same L and hue.

    The colours are given by :func:`lightness_terms` of their L and by ``fab`` = (a / 500, -b / 200) (2, K)
    float32; (a, b) are scaled down by the largest factor in [0, 1] (bisection, ``iterations`` steps) whose colour,
    clipped to the gamut, still has its L within :data:`LIGHTNESS_TOLERANCE`: its Y within the bounds.
    """
    fy, y, y_low, y_high = terms
    k = len(fy)
    convert = _LabConverter(k)
    convert.fy(k)[:] = fy
    convert.y(k)[:] = y
    chroma, trial, ok = np.zeros(k, np.float32), np.empty(k, np.float32), np.empty(k, bool)
    step = np.float32(0.5)
    for _ in range(iterations):  # the factor is chroma or more, below chroma + 2 step: try chroma + step
        np.add(chroma, step, out=trial)
        cells = np.clip(convert.linear(k, fab, trial), 0.0, CELLS)
        luminance = _Y_OF_CELLS @ cells
        np.greater_equal(luminance, y_low, out=ok)
        ok &= luminance <= y_high
        chroma += ok * step
        step /= 2
    return np.clip(convert.linear(k, fab, chroma), 0.0, CELLS)


def lab_to_rgb_keeping_lightness(lab: torch.Tensor, iterations: int = 8) -> torch.Tensor:
    """CIE Lab (3, N) float32 (L 0..100, a/b about -128..127) -> sRGB (3, N) float32 in [0, 1], L preserved.

    The formulas of ``kornia.color.lab_to_rgb`` (D65 white, those of ``skimage.color.lab2rgb``), except for the
    colours outside the sRGB gamut: clipping them channel by channel, as kornia does, changes their lightness;
    here such pixels keep their L and hue and lose chroma (:func:`reduce_chroma`). The same rule, and the same
    pixels and factors up to float32 rounding, as the float64 scikit-image version this replaces (``lab2rgb`` then
    ``rgb2lab``, kept as the reference in tests/test_colorize.py). :func:`recombine` applies the same rule in
    strips of a photo and encodes 8 bits; this float form is the reference API.
    """
    from kornia.color import linear_rgb_to_rgb  # 0.25 s of import: only where this is called

    lab = lab.float().numpy()
    n = lab.shape[1]
    terms = lightness_terms(lab[0])
    fab = np.stack([lab[1] / np.float32(500.0), lab[2] / np.float32(-200.0)])
    convert = _LabConverter(n)
    convert.fy(n)[:] = terms[0]
    convert.y(n)[:] = terms[1]
    cells = convert.linear(n, fab)
    bad = out_of_gamut(cells, lambda i: (terms[2][i], terms[3][i]))
    np.clip(cells, 0.0, CELLS, out=cells)
    if len(bad):
        cells[:, bad] = reduce_chroma(tuple(t[bad] for t in terms), fab[:, bad], iterations)
    return linear_rgb_to_rgb(torch.from_numpy(cells / np.float32(CELLS))[:, None])[:, 0]


def lightness_of_luminance(y: torch.Tensor) -> torch.Tensor:
    """CIE L* (0..100) of relative luminance Y (Y_n = 1, any shape, float32): ``116 f(Y) - 16`` with the CIE f
    (threshold 0.008856, slope 7.787) as scikit-image's ``xyz2lab`` and kornia's ``rgb_to_lab`` apply it."""
    f = torch.where(y > 0.008856, y.clamp(min=0.008856).pow(1.0 / 3.0), y * 7.787 + 16.0 / 116.0)
    return f.mul_(116.0).sub_(16.0)


def lightness_of_gray(gray: torch.Tensor) -> torch.Tensor:
    """CIE L* (same shape, float32, 0..100) of a gray sRGB image (any shape, float) in [0, 1]: what
    ``rgb2lab(gray2rgb(gray))[..., 0]`` (scikit-image) or ``kornia.color.rgb_to_lab`` give for R = G = B.

    Written out because neither library has a luminance-only path: both convert three identical channels through
    XYZ (three times the work; in scikit-image's float64 it was 13 % of ``unetcli predict --model colorize``,
    benchmarks/README.md). For R = G = B the sRGB -> XYZ matrix gives Y = the linearised value (its Y row sums to
    1), so L* = :func:`lightness_of_luminance` of the value through the sRGB transfer curve (tests check it
    against scikit-image within 1e-4).
    """
    v = gray.float()
    return lightness_of_luminance(torch.where(v > 0.04045, ((v.clamp(min=0.04045) + 0.055) / 1.055).pow_(2.4),
                                              v / 12.92))


@functools.cache
def gray_tables(levels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For gray values stored as integers 0..``levels`` - 1 (256: 8 bits, 65536: 16 bits), each meaning
    value / (``levels`` - 1): :func:`lightness_terms` of their L* (:func:`lightness_of_gray`), each (levels,)
    float32.

    :func:`recombine` looks a photo's terms up in these instead of computing them per pixel (two ``pow`` per
    pixel); the entries are computed for the float32 value / (levels - 1), which is exactly
    :class:`~unetcli.imageio.Photo`'s ``rgb`` of 8- and 16-bit files, so the lookup changes nothing.
    """
    return lightness_terms(lightness_of_gray(torch.arange(levels, dtype=torch.float32) / (levels - 1)).numpy())


@functools.cache
def _srgb8_table() -> np.ndarray:
    """The lookup behind :func:`encode_srgb8`: (CELLS + 1,) float32, entry i = n_i + 1 - (t - i) for cell
    [i, i + 1) of CELLS x linear light, where n_i is the 8-bit code at the cell's start and t the one threshold of
    the next code inside the cell (t = i + 1 if none).

    The thresholds are exact (float64): the linear value at which the sRGB curve (kornia's ``linear_rgb_to_rgb``:
    12.92 x up to 0.0031308, 1.055 x^(1/2.4) - 0.055 above) reaches (k - 0.5) / 255, k = 1..255. They are at
    least 1.24 cells apart (near black, where the curve is steepest), so no cell holds two.
    """
    s = (np.arange(1, 256) - 0.5) / 255.0
    thresholds = np.where(s <= 12.92 * 0.0031308, s / 12.92, ((s + 0.055) / 1.055) ** 2.4) * CELLS
    start = np.arange(CELLS + 1, dtype=np.float64)
    code = np.searchsorted(thresholds, start, side="right")  # codes whose threshold is <= the cell's start
    nxt = np.append(thresholds, np.inf)[code]  # the next threshold
    return (code + 1.0 - np.where(nxt < start + 1, nxt - start, 1.0)).astype(np.float32)


def encode_srgb8(cells: np.ndarray, out: np.ndarray, scratch: tuple[np.ndarray, np.ndarray] | None = None) -> None:
    """CELLS x linear sRGB (3, N) float32 in [0, CELLS] -> the 8-bit sRGB codes, rounded to nearest, written into
    ``out`` ((N, 3) uint8, e.g. rows of the output image). ``cells`` is overwritten; ``scratch``: (3, N) int32 and
    float32 buffers for the cells and the codes (allocated if not given).

    The code of the exact curve (ties aside, within float32 rounding), where computing the curve takes a ``pow``
    per value (1.6 ns each, measured on one core) and rounding it can land a level off next to a half level, and a
    search of the 255 thresholds (``torch.bucketize``) measured 34-66 ns per value. Here: a lookup in the cell of
    the value (:func:`_srgb8_table`), which holds at most one threshold, and the position within the cell decides
    it: code = floor(table[cell] + position), about 1 ns per value.
    """
    cell, codes = scratch or (np.empty(cells.shape, np.int32), np.empty(cells.shape, np.float32))
    np.copyto(cell, cells, casting="unsafe")  # truncation: the cell, as cells >= 0
    torch.from_numpy(cells).frac_()  # the position in the cell, [0, 1) (torch's frac: a third of numpy's time)
    np.take(_srgb8_table(), cell, out=codes, mode="wrap")  # cell <= CELLS: wrap never wraps
    codes += cells
    for c in range(3):  # float32 -> uint8 truncates; a strided copy per channel is 3x faster than one transposed
        out[:, c] = codes[c]


#: Pixels converted at a time by :func:`recombine`: its float32 buffers take about 70 bytes per pixel of a strip;
#: 64 k pixels keep them (4.5 MB) near the core's caches whatever the photo's size, and the Python calls (some 40 a
#: strip) cheap. Measured on one core, 64 real photos of up to 1024 px / two of 6000 x 4000: 17 / 10 ns per pixel
#: at 16 k, 14 / 8 at 32 k and 64 k, 19 / 11 at 256 k (out of the caches).
STRIP_PIXELS = 1 << 16


class _RowsOfAB:
    """The a/b of a photo's rows, upsampled from the working size on demand: ``rows(top, bottom, out)`` -> (fa, fb)
    = (a / 500, -b / 200) of those rows into ``out`` (2, (bottom - top) x W) float32.

    The values of :func:`upsample_ab` of the whole photo (bilinear, pixel centres aligned, edge pixels repeated),
    without its full-size (2, H, W) array: the a/b are resized along the rows to the photo's width (2, h, W) once
    (:func:`upsample_ab`), then each strip's rows are interpolated between the two nearest of those rows
    (``torch.lerp``; the weights of ``F.interpolate`` along an axis that grows). A photo with fewer rows than the
    working size is resized at once (it is small).
    """

    def __init__(self, ab: torch.Tensor, size: tuple[int, int]) -> None:
        (height, width), h = size, ab.shape[1]
        scale = torch.tensor([1.0 / 500.0, -1.0 / 200.0])[:, None, None]
        self.ab = upsample_ab(ab, (min(h, height), width)).mul_(scale)
        self.width, self.whole = width, height < h
        if not self.whole:
            src = np.maximum((np.arange(height) + 0.5) * (h / height) - 0.5, 0.0)
            lo = np.minimum(src.astype(np.int64), h - 1)
            self.lo, self.hi = torch.from_numpy(lo), torch.from_numpy(np.minimum(lo + 1, h - 1))
            self.weight = torch.from_numpy((src - lo).astype(np.float32))[:, None]

    def rows(self, top: int, bottom: int, out: np.ndarray) -> np.ndarray:
        view = torch.from_numpy(out).view(2, bottom - top, self.width)
        if self.whole:
            view.copy_(self.ab[:, top:bottom])
        else:
            torch.lerp(self.ab.index_select(1, self.lo[top:bottom]), self.ab.index_select(1, self.hi[top:bottom]),
                       self.weight[top:bottom], out=view)
        return out


def upsample_ab(ab: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """a/b (2, h, w) float32 at the working size -> (2, H, W) float32 at ``size`` = (H, W), bilinear.

    ``F.interpolate(mode="bilinear", align_corners=False)``: pixel centres aligned, edge pixels repeated, and when
    an axis shrinks (a photo smaller than the working size; ``antialias=True``) the filter widens with the scale:
    the weights of Pillow's bilinear resize (mode "F") that this replaces (measured: within 3e-3 a/b units of it,
    float32 rounding, up and down). Where no axis shrinks, the antialiased filter has the plain bilinear weights,
    and the plain kernel is 3.4x faster (measured, 256 -> 6000 pixels on one core).
    """
    shrinks = size[0] < ab.shape[1] or size[1] < ab.shape[2]
    return F.interpolate(ab.float()[None], size=size, mode="bilinear", align_corners=False, antialias=shrinks)[0]


def _bounds_of_levels(tables: tuple[np.ndarray, ...], values: np.ndarray, at: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    """The luminance bounds (:func:`lightness_terms`) of the gray levels ``values[at]``, from :func:`gray_tables`."""
    levels = values[at]
    return tables[2].take(levels), tables[3].take(levels)


def recombine(gray: torch.Tensor | np.ndarray, ab: torch.Tensor) -> np.ndarray:
    """Full-resolution CIE Lab recombination: the L of the gray photo (H, W) with the colours ``ab`` (2, h, w)
    float32 at any size (the working size; upsampled to H x W, :class:`_RowsOfAB`) -> (H, W, 3) uint8 sRGB
    (:func:`lab_to_rgb_keeping_lightness`'s rule, rounded to nearest: :func:`encode_srgb8`), in strips of about
    :data:`STRIP_PIXELS` pixels.

    ``gray``: uint8 (value / 255), uint16 (value / 65535), or float in [0, 1] (torch or numpy); L* is looked up
    (:func:`gray_tables`) for the integer forms and computed (:func:`lightness_of_gray`) for floats.

    The out-of-gamut pixels of several strips are gathered and their chroma reduced together, at most about
    :data:`STRIP_PIXELS` at a time (each bisection step costs some calls whatever its size, and real photos have a
    few percent of such pixels). Every step is per pixel, so the strips give the 8-bit values of converting the
    whole photo at once (tested), with memory of the photo's own buffers (the uint8 result) plus one strip.
    """
    gray = gray.numpy() if isinstance(gray, torch.Tensor) else np.asarray(gray)
    h, w = gray.shape
    out = np.empty((h, w, 3), dtype=np.uint8)
    pixels = out.reshape(h * w, 3)
    rows = max(1, STRIP_PIXELS // max(w, 1))
    tables = gray_tables(256 if gray.dtype == np.uint8 else 65536) if gray.dtype in (np.uint8, np.uint16) else None
    source = _RowsOfAB(ab, (h, w))
    convert = _LabConverter(rows * w)
    fab_buffer = np.empty(2 * rows * w, np.float32)
    # out-of-gamut pixels not yet fixed: flat indices (K,); their gray levels (K,), or their L* for a float photo;
    # their (fa, fb) (2, K)
    where, keys, colours = [], [], []

    def terms_of(key: np.ndarray) -> tuple[np.ndarray, ...]:
        return lightness_terms(key) if tables is None else tuple(t.take(key) for t in tables)

    def fix_gathered() -> None:
        if where:
            fab = np.concatenate(colours, axis=1)
            codes = np.empty((fab.shape[1], 3), dtype=np.uint8)
            encode_srgb8(reduce_chroma(terms_of(np.concatenate(keys)), fab), codes)
            pixels[np.concatenate(where)] = codes
            where.clear()
            keys.clear()
            colours.clear()

    for top in range(0, h, rows):
        bottom = min(top + rows, h)
        m = (bottom - top) * w
        values = gray[top:bottom].reshape(m)
        if tables is not None:
            values = values.astype(np.intp)  # np.take converts other index types on each call
            np.take(tables[0], values, out=convert.fy(m), mode="wrap")  # values < len(table): wrap never wraps
            np.take(tables[1], values, out=convert.y(m), mode="wrap")
            key = values
            bounds = functools.partial(_bounds_of_levels, tables, values)
        else:
            key = lightness_of_gray(torch.from_numpy(values)).numpy()
            terms = lightness_terms(key)
            convert.fy(m)[:] = terms[0]
            convert.y(m)[:] = terms[1]
            bounds = lambda i: (terms[2][i], terms[3][i])  # noqa: E731
        fab = source.rows(top, bottom, fab_buffer[: 2 * m])
        cells = convert.linear(m, fab.reshape(2, m))
        bad = out_of_gamut(cells, bounds)
        if len(bad):
            where.append(bad + top * w)
            keys.append(key[bad])
            colours.append(fab.reshape(2, m)[:, bad])
        encode_srgb8(np.clip(cells, 0.0, CELLS, out=cells), pixels[top * w: bottom * w], convert.encode_scratch(m))
        if sum(len(i) for i in where) >= STRIP_PIXELS:
            fix_gathered()
    fix_gathered()
    return out


def luminance(photo: Photo, chunk: int = 1 << 16) -> tuple[np.ndarray, np.ndarray]:
    """The photo's luminance: ((H, W) float32 in [0, 1], the same as integer levels (H, W) uint8 or uint16).

    The float32 luminance is the stored gray for gray files and ``rgb2gray`` (scikit-image) for colour ones, as
    the network has always seen it (``rgb2gray`` of ``Photo.rgb``, bit for bit: here computed ``chunk`` pixels'
    worth of rows at a time, without the full-size float32 copy of the photo, 12 bytes per pixel).

    The levels are what :func:`recombine` needs, a half or a quarter of the float32 bytes handed from a DataLoader
    worker to the main process, and what it looks L* up for (:func:`gray_tables`): uint8 (value / 255) for 8-bit
    gray files, their own values; uint16 (value / 65535) for the rest: 16-bit gray files exactly, colour photos
    their luminance rounded to 16 bits (within 7.8e-6 of it; measured on 66 real photos: 0.1 % of the 8-bit output
    values move by a level, none by more).
    """
    if photo.rgb8 is None:  # 16-bit and float files
        gray = photo.rgb[:, :, 0] if photo.is_gray else rgb2gray(photo.rgb).astype(np.float32)
        return gray, _levels16(gray)
    if photo.is_gray:
        levels = np.ascontiguousarray(photo.rgb8[:, :, 0])
        return np.divide(levels, np.float32(255.0), dtype=np.float32), levels
    h, w = photo.rgb8.shape[:2]
    gray, levels = np.empty((h, w), np.float32), np.empty((h, w), np.uint16)
    rows = max(1, chunk // w)
    for top in range(0, h, rows):
        part = rgb2gray(np.divide(photo.rgb8[top:top + rows], np.float32(255.0), dtype=np.float32))
        gray[top:top + rows] = part
        levels[top:top + rows] = _levels16(part, out=part)
    return gray, levels


def _levels16(gray: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Float luminance in [0, 1] -> uint16 levels (value / 65535), rounded to nearest (``out``: a float32 scratch
    of its shape, overwritten)."""
    scaled = np.clip(gray, 0.0, 1.0, out=out)
    scaled *= 65535.0
    scaled += 0.5
    return scaled.astype(np.uint16)
