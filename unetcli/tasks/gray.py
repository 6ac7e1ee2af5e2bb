"""RGB -> gray (unet-decolorize, simple-black): the network runs on the photo at full resolution."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from skimage.color import rgb2gray

from unetcli.imageio import Photo, to_uint8
from unetcli.metrics import psnr
from unetcli.tasks.base import RGB_INPUT, Task, chw, with_alpha


class DecolorizeTask(Task):
    """Photo -> 8-bit gray ("L", "LA" with the input's alpha), target ``skimage.color.rgb2gray``, MAE loss (seed 003).

    Input to the network: (3, H, W) float32 sRGB in [0, 1] at the photo's full size.
    Output of the network: (1, H, W) luminance in [0, 1]; written rounded to 8 bits.
    """

    output_kind = "L"
    export_io = ("rgb", "gray", RGB_INPUT, "luminance in [0, 1]")

    def prepare(self, photo: Photo) -> tuple[torch.Tensor, dict]:
        return chw(photo.rgb), {"alpha": photo.alpha}

    def finish(self, output: torch.Tensor, ctx: dict) -> Image.Image:
        gray = to_uint8(output[0].float().numpy())
        return with_alpha(Image.fromarray(gray, mode="L"), ctx.get("alpha"))

    def training_pair(self, rgb: np.ndarray, mask: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return chw(rgb), chw(rgb2gray(rgb))

    def evaluation_scores(self, original: np.ndarray, written: np.ndarray, given: np.ndarray) -> dict[str, float]:
        """PSNR (dB) of the output against ``skimage.color.rgb2gray`` of the photo."""
        # imported here: skimage.metrics imports scipy.stats, 0.6 s of every command's start-up otherwise
        from skimage.metrics import peak_signal_noise_ratio

        return {"psnr": float(peak_signal_noise_ratio(rgb2gray(original), written, data_range=1.0))}

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(output.float(), target.float())

    def metrics(self, output: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"psnr": psnr(output.clamp(0, 1), target)}
