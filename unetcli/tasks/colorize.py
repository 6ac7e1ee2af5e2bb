"""Gray -> colour (unet-colorize) with full-resolution CIE Lab recombination.

Zhang, Isola & Efros, "Colorful Image Colorization" (ECCV 2016), and DeOldify: the network sees the luminance
at a working size; its colours (the a/b channels of CIE Lab) are upsampled to the photo's size and joined with
the photo's own full-resolution L, so every detail of the input's luminance is kept. The recombination runs in
float32 torch with kornia's Lab -> sRGB conversion (the formulas of scikit-image's ``lab2rgb``: D65 white,
sRGB transfer curve; tests hold its 8-bit output to scikit-image's float64 one).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from skimage.color import gray2rgb, rgb2gray

from unetcli.imageio import Photo, to_uint8
from unetcli.metrics import colorfulness, psnr
from unetcli.tasks.base import GRAY_INPUT, Task, chw, resize_float, with_alpha

#: Largest change of L* (0..100) that the gamut handling of :func:`lab_to_rgb_keeping_lightness` accepts.
LIGHTNESS_TOLERANCE = 0.05


def lab_to_rgb_keeping_lightness(lab: torch.Tensor, iterations: int = 8) -> torch.Tensor:
    """CIE Lab (3, N) float32 (L 0..100, a/b about -128..127) -> sRGB (3, N) float32 in [0, 1], L preserved.

    The conversion is ``kornia.color.lab_to_rgb`` (D65 white, the formulas of ``skimage.color.lab2rgb``), which
    clips colours outside the sRGB gamut channel by channel and so changes their lightness. Here such pixels
    (:func:`lab_to_rgb_clipped`) instead keep their L and hue and lose chroma (:func:`reduce_chroma`). The same
    rule, and the same pixels and factors up to float32 rounding, as the float64 scikit-image version this
    replaces (``lab2rgb`` then ``rgb2lab``, kept as the reference in tests/test_colorize.py).
    """
    rgb, bad = lab_to_rgb_clipped(lab)
    if len(bad):
        rgb[:, bad] = reduce_chroma(lab[:, bad], iterations)
    return rgb


def lab_to_rgb_clipped(lab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """CIE Lab (3, N) float32 -> (sRGB (3, N) float32 clipped to [0, 1] by ``kornia.color.lab_to_rgb``, indices
    (K,) int64 of the pixels whose clipping changed their L by more than :data:`LIGHTNESS_TOLERANCE`)."""
    from kornia.color import lab_to_rgb  # 0.25 s of import: only when a photo is recombined

    rgb = lab_to_rgb(lab[:, None], clip=False)[:, 0]
    # Only a pixel whose unclipped sRGB leaves [0, 1] is moved by the clip, so the lightness check runs on those
    # alone (usually a few percent of the photo): max |rgb - 0.5| > 0.5 is one pass and one reduction.
    suspect = ((rgb - 0.5).abs_().amax(dim=0) > 0.5).nonzero()[:, 0]
    rgb.clamp_(0.0, 1.0)
    sub = lab[:, suspect]
    return rgb, suspect[(clipped_lightness(sub) - sub[0]).abs() > LIGHTNESS_TOLERANCE]


def reduce_chroma(lab: torch.Tensor, iterations: int = 8) -> torch.Tensor:
    """Out-of-gamut CIE Lab colours (3, K) float32 -> sRGB (3, K) float32 in [0, 1] of the same L and hue: (a, b)
    scaled down by the largest factor in [0, 1] (bisection, ``iterations`` steps) whose colour, clipped to the
    gamut, still has its L within :data:`LIGHTNESS_TOLERANCE` (:func:`clipped_lightness`)."""
    from kornia.color import lab_to_rgb

    lo, hi = torch.zeros(lab.shape[1]), torch.ones(lab.shape[1])
    for _ in range(iterations):
        mid = (lo + hi) / 2
        ok = (clipped_lightness(lab, mid) - lab[0]).abs() <= LIGHTNESS_TOLERANCE
        lo, hi = torch.where(ok, mid, lo), torch.where(ok, hi, mid)
    return lab_to_rgb(torch.cat([lab[:1], lab[1:] * lo], dim=0)[:, None], clip=True)[:, 0]


def clipped_lightness(lab: torch.Tensor, chroma: torch.Tensor | float = 1.0) -> torch.Tensor:
    """L* (K,) float32 of the colours (L, ``chroma`` a, ``chroma`` b) of ``lab`` (3, K) float32 after
    ``kornia.color.lab_to_rgb`` clips them to the sRGB gamut: what ``rgb_to_lab(lab_to_rgb(...))[0]`` gives.

    Lab -> XYZ is written out (CIE f^-1, D65 white, z clamped at 0: kornia's and scikit-image's steps, which kornia
    does not expose on their own) and the clip is taken on linear RGB, where it is the same clip (the sRGB curve
    maps [0, 1] onto itself): the round trip through sRGB would cost two gamma curves per bisection step.
    """
    from kornia.color import rgb_to_xyz, xyz_to_rgb

    fy = (lab[0] + 16.0) / 116.0
    fxyz = torch.stack([fy + lab[1] * (chroma / 500.0), fy, (fy - lab[2] * (chroma / 200.0)).clamp(min=0.0)])
    xyz = torch.where(fxyz > 0.2068966, fxyz * fxyz * fxyz, (fxyz - 4.0 / 29.0) / 7.787)
    xyz *= torch.tensor([0.95047, 1.0, 1.08883])[:, None]
    linear = xyz_to_rgb(xyz[:, None]).clamp_(0.0, 1.0)
    return lightness_of_luminance(rgb_to_xyz(linear)[1, 0])


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


def upsample_ab(ab: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """a/b (2, h, w) float32 at the working size -> (2, H, W) float32 at ``size`` = (H, W), bilinear.

    ``F.interpolate(mode="bilinear", align_corners=False, antialias=True)``: pixel centres aligned, edge pixels
    repeated, and when an axis shrinks (a photo smaller than the working size) the filter widens with the scale:
    the weights of Pillow's bilinear resize (mode "F") that this replaces (measured: within 3e-3 a/b units of it,
    float32 rounding, up and down; 2.5x faster at 6000 x 4000 on one core).
    """
    return F.interpolate(ab.float()[None], size=size, mode="bilinear", align_corners=False, antialias=True)[0]


#: Pixels converted at a time by :func:`recombine`: kornia's Lab -> sRGB conversion and the gamut check make
#: float32 temporaries of about 140 bytes per pixel converted (3.9 GB at 6000 x 4000 on the whole photo at once);
#: a strip of 256 k pixels keeps them near 40 MB whatever the photo's size. Much smaller strips cost time: each
#: strip is some 60 torch calls of Python overhead (measured on one core: 49 ns per pixel at 256 k pixels, 61 at
#: 64 k, 120 at 16 k).
STRIP_PIXELS = 1 << 18


def recombine(gray: torch.Tensor, ab: torch.Tensor) -> np.ndarray:
    """Full-resolution CIE Lab recombination: L of the gray photo (H, W) float in [0, 1]
    (:func:`lightness_of_gray`) with colours ``ab`` (2, H, W) float32 -> (H, W, 3) uint8 sRGB
    (:func:`lab_to_rgb_keeping_lightness`, rounded to nearest), in strips of about :data:`STRIP_PIXELS` pixels.

    The out-of-gamut pixels of several strips are gathered and their chroma reduced together, at most about
    :data:`STRIP_PIXELS` at a time (each bisection costs about 1.5 ms of torch calls whatever its size, and real
    photos have a few percent of such pixels). Every step is per pixel, so the strips give the 8-bit values of
    converting the whole photo at once (tested), with memory of the photo's own buffers (the uint8 result) plus
    one strip.
    """
    h, w = gray.shape
    out = torch.empty((h, w, 3), dtype=torch.uint8)
    pixels = out.view(h * w, 3)
    rows = max(1, STRIP_PIXELS // max(w, 1))
    where, colours = [], []  # out-of-gamut pixels not yet fixed: flat indices (K,), Lab (3, K)

    def fix_gathered() -> None:
        if where:
            pixels[torch.cat(where)] = _to_uint8(reduce_chroma(torch.cat(colours, dim=1))).T
            where.clear()
            colours.clear()

    for top in range(0, h, rows):
        part = slice(top, top + rows)
        n = gray[part].numel()
        lab = torch.cat([lightness_of_gray(gray[part]).reshape(1, n), ab[:, part].reshape(2, n)], dim=0)
        rgb, bad = lab_to_rgb_clipped(lab)
        out[part] = _to_uint8(rgb).reshape(3, -1, w).permute(1, 2, 0)
        if len(bad):
            where.append(bad + top * w)
            colours.append(lab[:, bad])
            if sum(len(i) for i in where) >= STRIP_PIXELS:
                fix_gathered()
    fix_gathered()
    return out.numpy()


def _to_uint8(rgb: torch.Tensor) -> torch.Tensor:
    """float sRGB in [0, 1] -> uint8, rounded to nearest (:func:`unetcli.imageio.to_uint8` in torch)."""
    return rgb.mul(255.0).add_(0.5).to(torch.uint8)


def luminance(photo: Photo) -> np.ndarray:
    """(H, W) float32 luminance in [0, 1]: the stored gray for gray files, ``rgb2gray`` for colour ones."""
    return photo.rgb[:, :, 0] if photo.is_gray else rgb2gray(photo.rgb).astype(np.float32)


class ColorizeTask(Task):
    """Gray photo -> RGB ("RGB", "RGBA" with the input's alpha); seed 000/001: MSE loss on RGB, Adam.

    Input to the network: (1, size, size) luminance in [0, 1] (the photo resized to the working size).
    Output of the network: (3, size, size) sRGB, clamped to [0, 1]; converted to CIE Lab, its a/b channels
    upsampled (bilinear) to the photo's H x W and joined with the photo's own L, then converted back to sRGB
    (out-of-gamut colours lose chroma, not lightness: :func:`lab_to_rgb_keeping_lightness`) in strips of rows
    (:func:`recombine`), all in float32 torch, so a 6000 x 4000 photo needs the photo's own buffers plus one strip.
    """

    output_kind = "RGB"
    metric_names = ("psnr", "colorfulness")
    export_io = ("gray", "rgb", GRAY_INPUT, "sRGB, about [0, 1] but not clamped (clamp to [0, 1] before use)")

    def prepare(self, photo: Photo) -> tuple[torch.Tensor, dict]:
        gray = luminance(photo)
        small = resize_float(gray, self.working_shape(photo.size))
        return chw(small), {"gray": torch.from_numpy(gray), "alpha": photo.alpha}

    def ab_of(self, output: torch.Tensor) -> torch.Tensor:
        """The network's output (3, h, w) sRGB -> its colours as CIE a/b (2, h, w) float32 (``kornia.color.rgb_to_lab``
        of the output clamped to [0, 1]; scikit-image's ``rgb2lab`` formulas in float32)."""
        from kornia.color import rgb_to_lab  # 0.25 s of import: only when a photo is recombined

        return rgb_to_lab(output.float().clamp(0, 1))[1:]

    def finish(self, output: torch.Tensor, ctx: dict) -> Image.Image:
        """The network's colours (a/b (2, h, w), :meth:`ab_of`) upsampled to the photo's H x W (:func:`upsample_ab`)
        and joined with its own L (``ctx["gray"]``: (H, W) float32 in [0, 1]), converted back to sRGB in strips of
        about :data:`STRIP_PIXELS` pixels (:func:`recombine`); ``ctx["alpha"]`` ((H, W) uint8 or None) is
        attached unchanged. Returns an "RGB" or "RGBA" image of the photo's size."""
        gray = ctx["gray"]
        ab = upsample_ab(self.ab_of(output), tuple(gray.shape))
        return with_alpha(Image.fromarray(recombine(gray, ab), mode="RGB"), ctx.get("alpha"))

    def training_pair(self, rgb: np.ndarray, mask: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return chw(rgb2gray(rgb)), chw(rgb)

    def evaluation_input(self, rgb: np.ndarray) -> Image.Image:
        """Users colorize gray photos: the photo decolorized (``rgb2gray``) and stored as 8-bit gray "L"."""
        return Image.fromarray(to_uint8(rgb2gray(rgb)), mode="L")

    def evaluation_scores(self, original: np.ndarray, written: np.ndarray, given: np.ndarray) -> dict[str, float]:
        """PSNR (dB) against the photo next to the gray baseline (the given gray photo), and the Hasler-Suesstrunk
        colourfulness of the output and of the photo."""
        # imported here: skimage.metrics imports scipy.stats, 0.6 s of every command's start-up otherwise
        from skimage.metrics import peak_signal_noise_ratio

        to_t = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None]  # noqa: E731
        return {"psnr": float(peak_signal_noise_ratio(original, written[:, :, :3], data_range=1.0)),
                "psnr_gray_baseline": float(peak_signal_noise_ratio(original, gray2rgb(given), data_range=1.0)),
                "colorfulness": float(colorfulness(to_t(written[:, :, :3]))[0]),
                "colorfulness_original": float(colorfulness(to_t(original))[0])}

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(output.float(), target.float())

    def metrics(self, output: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        out = output.float().clamp(0, 1)
        return {"psnr": psnr(out, target), "colorfulness": colorfulness(out),
                "colorfulness_target": colorfulness(target)}
