"""Gray -> colour (unet-colorize) with full-resolution CIE Lab recombination.

Zhang, Isola & Efros, "Colorful Image Colorization" (ECCV 2016), and DeOldify: the network sees the luminance
at a working size; its colours (the a/b channels of CIE Lab) are upsampled to the photo's size and joined with
the photo's own full-resolution L, so every detail of the input's luminance is kept.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from skimage.color import gray2rgb, lab2rgb, rgb2gray, rgb2lab

from unetcli.imageio import Photo, to_uint8
from unetcli.metrics import colorfulness, psnr
from unetcli.tasks.base import GRAY_INPUT, Task, chw, resize_float, with_alpha


def lab_to_rgb_keeping_lightness(lab: np.ndarray, iterations: int = 8) -> np.ndarray:
    """CIE Lab (H, W, 3) float (L 0..100, a/b about -128..127) -> sRGB (H, W, 3) float64 in [0, 1], L preserved.

    ``skimage.color.lab2rgb`` clips colours outside the sRGB gamut channel by channel, which changes their
    lightness. Here such pixels instead keep their L and hue and lose chroma: their (a, b) is scaled down by the
    largest factor in [0, 1] (found by bisection, ``iterations`` steps, on the out-of-gamut pixels only) whose
    colour round-trips through ``lab2rgb``/``rgb2lab`` with L unchanged (within 0.05).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # skimage warns about the clipping this function resolves
        rgb = lab2rgb(lab)
        # lab2rgb clips to [0, 1]: only a pixel with a channel at exactly 0 or 1 can have been moved, so the
        # round-trip check runs on those alone (usually a small part of the photo).
        bad = ((rgb <= 0.0) | (rgb >= 1.0)).any(axis=-1)
        if bad.any():
            bad[bad] = np.abs(rgb2lab(rgb[bad][None])[0, :, 0] - lab[bad][:, 0]) > 0.05
        if not bad.any():
            return rgb
        sub = lab[bad]  # (K, 3)
        lo, hi = np.zeros(len(sub)), np.ones(len(sub))
        for _ in range(iterations):
            mid = (lo + hi) / 2
            trial = np.concatenate([sub[:, :1], sub[:, 1:] * mid[:, None]], axis=1)[None]
            ok = np.abs(rgb2lab(lab2rgb(trial))[0, :, 0] - sub[:, 0]) <= 0.05
            lo, hi = np.where(ok, mid, lo), np.where(ok, hi, mid)
        fixed = np.concatenate([sub[:, :1], sub[:, 1:] * lo[:, None]], axis=1)[None]
        rgb[bad] = lab2rgb(fixed)[0]
    return rgb


def lightness_of_gray(gray: np.ndarray) -> np.ndarray:
    """CIE L* (0..100, float64) of a gray sRGB image (H, W) in [0, 1]: ``rgb2lab(gray2rgb(gray))[..., 0]``.

    Written out because scikit-image has no luminance-only path: its ``rgb2lab`` converts three identical
    channels through XYZ at full size, which was 13 % of ``unetcli predict --model colorize`` in the profile
    (benchmarks/README.md). For R = G = B the sRGB -> XYZ matrix gives Y = the linearised value (its Y row sums
    to 1), so L* = 116 f(Y) - 16 with the CIE f (D65 white, Y_n = 1) and the sRGB transfer curve exactly as
    scikit-image applies them (tests check the two agree within 1e-4).
    """
    v = gray.astype(np.float64)
    y = np.where(v > 0.04045, ((v + 0.055) / 1.055) ** 2.4, v / 12.92)
    f = np.where(y > 0.008856, np.cbrt(y), 7.787 * y + 16.0 / 116.0)
    return 116.0 * f - 16.0


#: Pixels converted at a time by :func:`recombine`: the float64 Lab -> sRGB conversion of scikit-image makes about
#: ten full-size float64 temporaries (4.1 GB at 6000 x 4000 when done on the whole photo at once); a strip of
#: 256 k pixels keeps them near 50 MB whatever the photo's size.
STRIP_PIXELS = 1 << 18


def recombine(gray: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """Full-resolution CIE Lab recombination: L of the gray photo (H, W) in [0, 1] with colours ``ab`` (H, W, 2)
    -> (H, W, 3) uint8 sRGB (:func:`lab_to_rgb_keeping_lightness`), in strips of rows.

    Every step is per pixel, so the strips give exactly the 8-bit values of converting the whole photo at once
    (tested), in float64 as before, with memory of the photo's own buffers (the uint8 result) plus one strip.
    """
    h, w = gray.shape
    out = np.empty((h, w, 3), np.uint8)
    rows = max(1, STRIP_PIXELS // max(w, 1))
    for top in range(0, h, rows):
        part = slice(top, top + rows)
        lab = np.concatenate([lightness_of_gray(gray[part])[:, :, None], ab[part]], axis=2)
        out[part] = to_uint8(lab_to_rgb_keeping_lightness(lab))
    return out


def luminance(photo: Photo) -> np.ndarray:
    """(H, W) float32 luminance in [0, 1]: the stored gray for gray files, ``rgb2gray`` for colour ones."""
    return photo.rgb[:, :, 0] if photo.is_gray else rgb2gray(photo.rgb).astype(np.float32)


class ColorizeTask(Task):
    """Gray photo -> RGB ("RGB", "RGBA" with the input's alpha); seed 000/001: MSE loss on RGB, Adam.

    Input to the network: (1, size, size) luminance in [0, 1] (the photo resized to the working size).
    Output of the network: (3, size, size) sRGB, clamped to [0, 1]; converted to CIE Lab, its a/b channels
    upsampled (bilinear) to the photo's H x W and joined with the photo's own L, then converted back to sRGB
    (out-of-gamut colours lose chroma, not lightness: :func:`lab_to_rgb_keeping_lightness`) in strips of rows
    (:func:`recombine`), so a 6000 x 4000 photo needs about 0.5 GB instead of 4.1 GB.
    """

    output_kind = "RGB"
    export_io = ("gray", "rgb", GRAY_INPUT, "sRGB, about [0, 1] but not clamped (clamp to [0, 1] before use)")

    def prepare(self, photo: Photo) -> tuple[torch.Tensor, dict]:
        gray = luminance(photo)
        small = resize_float(gray, (self.size, self.size))
        return chw(small), {"gray": torch.from_numpy(gray), "alpha": photo.alpha}

    def finish(self, output: torch.Tensor, ctx: dict) -> Image.Image:
        """The network's colours (a/b) upsampled to the photo and joined with its own L, converted back to sRGB
        in strips of about :data:`STRIP_PIXELS` pixels (:func:`recombine`)."""
        gray = ctx["gray"].numpy()
        h, w = gray.shape
        rgb_small = output.float().clamp(0, 1).permute(1, 2, 0).numpy()
        ab_small = rgb2lab(rgb_small)[:, :, 1:].astype(np.float32)
        ab = np.empty((h, w, 2), np.float32)  # filled channel by channel: one full-size temporary at a time
        for c in range(2):
            ab[:, :, c] = resize_float(ab_small[:, :, c], (w, h))
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
