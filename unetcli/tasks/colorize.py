"""Gray -> colour (unet-colorize): the task around the seed networks that predict sRGB; the photo's own
full-resolution lightness is kept by :mod:`unetcli.tasks.lab`'s CIE Lab recombination.
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
from unetcli.tasks.lab import luminance, recombine


class ColorizeTask(Task):
    """Gray photo -> RGB ("RGB", "RGBA" with the input's alpha); seed 000/001: MSE loss on RGB, Adam.

    Input to the network: (1, size, size) luminance in [0, 1] (the photo resized to the working size).
    Output of the network: (3, size, size) sRGB, clamped to [0, 1]; converted to CIE Lab, its a/b channels
    upsampled (bilinear) to the photo's H x W and joined with the photo's own L, then converted back to sRGB
    (out-of-gamut colours lose chroma, not lightness: :func:`~unetcli.tasks.lab.lab_to_rgb_keeping_lightness`)
    in strips of rows (:func:`~unetcli.tasks.lab.recombine`), all in float32, so a 6000 x 4000 photo needs the
    photo's own buffers plus one strip.
    """

    output_kind = "RGB"
    metric_names = ("psnr", "colorfulness")
    export_io = ("gray", "rgb", GRAY_INPUT, "sRGB, about [0, 1] but not clamped (clamp to [0, 1] before use)")

    def prepare(self, photo: Photo) -> tuple[torch.Tensor, dict]:
        """The float32 luminance (:func:`~unetcli.tasks.lab.luminance`) resized to the working size (Pillow's
        bilinear in mode "F", antialiased), (1, h, w) in [0, 1]; context: the luminance at full size as integer
        levels ((H, W) uint8 or uint16 tensor) and the alpha ((H, W) uint8 or None)."""
        gray, levels = luminance(photo)
        small = resize_float(gray, self.working_shape(photo.size))
        return chw(small), {"gray": torch.from_numpy(levels), "alpha": photo.alpha}

    def ab_of(self, output: torch.Tensor) -> torch.Tensor:
        """The network's output (3, h, w) sRGB -> its colours as CIE a/b (2, h, w) float32 (``kornia.color.rgb_to_lab``
        of the output clamped to [0, 1]; scikit-image's ``rgb2lab`` formulas in float32)."""
        from kornia.color import rgb_to_lab  # 0.25 s of import: only when a photo is recombined

        return rgb_to_lab(output.float().clamp(0, 1))[1:]

    def finish(self, output: torch.Tensor, ctx: dict) -> Image.Image:
        """The network's colours (a/b (2, h, w), :meth:`ab_of`) upsampled to the photo's H x W and joined with its
        own L (``ctx["gray"]``: (H, W) uint8 / uint16 levels (:func:`~unetcli.tasks.lab.luminance`) or float in
        [0, 1]), converted back to sRGB in strips of about :data:`~unetcli.tasks.lab.STRIP_PIXELS` pixels
        (:func:`~unetcli.tasks.lab.recombine`); ``ctx["alpha"]`` ((H, W) uint8 or None) is attached unchanged.
        Returns an "RGB" or "RGBA" image of the photo's size."""
        rgb = recombine(ctx["gray"], self.ab_of(output))
        return with_alpha(Image.fromarray(rgb, mode="RGB"), ctx.get("alpha"))

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
