"""RGB -> gray (unet-decolorize, simple-black): the network runs on the photo at full resolution."""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from skimage.color import rgb2gray

from unetcli.imageio import Photo, to_uint8
from unetcli.metrics import psnr
from unetcli.tasks.base import RGB_INPUT, Task, chw, with_alpha


def uint8_chw(arr: np.ndarray) -> torch.Tensor:
    """(H, W, C) uint8 array -> (C, H, W) uint8 tensor sharing its memory (channels-last strides, no copy).

    Pillow's arrays are read-only (``np.asarray`` of an image); the tensor is only read (by ``Predictor.forward``,
    or copied into shared memory by a DataLoader worker), so PyTorch's warning about that is silenced here.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(arr).permute(2, 0, 1)


class DecolorizeTask(Task):
    """Photo -> 8-bit gray ("L", "LA" with the input's alpha), target ``skimage.color.rgb2gray``, MAE loss (seed 003).

    Input to the network: (3, H, W) float32 sRGB in [0, 1] at the photo's full size.
    Output of the network: (1, H, W) luminance in [0, 1]; written rounded to 8 bits.
    """

    output_kind = "L"
    export_io = ("rgb", "gray", RGB_INPUT, "luminance in [0, 1]")

    def prepare(self, photo: Photo) -> tuple[torch.Tensor, dict]:
        return chw(photo.rgb), {"alpha": photo.alpha}

    def prepare_compact(self, photo: Photo) -> tuple[torch.Tensor, dict]:
        """An 8-bit photo as its uint8 values (3, H, W), a view of ``photo.rgb8`` (H, W, 3): no copy, and the
        channels-last layout the network runs in; other photos as :meth:`prepare`."""
        if photo.rgb8 is None:
            return self.prepare(photo)
        return uint8_chw(photo.rgb8), {"alpha": photo.alpha}

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
