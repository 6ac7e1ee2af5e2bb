"""RGB -> mask (unet-seg, seed 002): the network runs at a working size, probabilities are upsampled."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from unetcli.errors import UsageError
from unetcli.imageio import Photo
from unetcli.models.registry import ModelSpec
from unetcli.tasks.base import Task, chw, resize_float


class SegmentTask(Task):
    """Photo -> 8-bit mask at the photo's full size: 0/255 for one class, class indices 0..N-1 for several.

    Input to the network: (3, size, size) sRGB in [0, 1] (the photo resized to the working size).
    Output of the network: (num_classes, size, size) logits; the seed's activation (sigmoid for one class,
    softmax for several) gives probabilities, which are upsampled (bilinear) to full size before thresholding
    (one class, ``threshold``) or arg-max (several).
    """

    output_kind = "mask"

    def __init__(self, spec: ModelSpec, size: int | None = None, threshold: float = 0.5) -> None:
        super().__init__(spec, size)
        if not 0.0 < threshold < 1.0:
            raise UsageError(f"--threshold {threshold}: must be between 0 and 1")
        self.threshold = threshold

    def prepare(self, photo: Photo) -> tuple[torch.Tensor, dict]:
        small = resize_float(photo.rgb, (self.size, self.size))
        return chw(small), {"size": photo.size}

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """(C, h, w) logits -> (C, h, w) probabilities: sigmoid for one class, softmax for several."""
        return torch.sigmoid(logits) if logits.shape[0] == 1 else torch.softmax(logits, dim=0)

    def finish(self, output: torch.Tensor, ctx: dict) -> Image.Image:
        probs = self.probabilities(output.float()).permute(1, 2, 0).numpy()
        full = resize_float(probs, ctx["size"])
        if full.shape[2] == 1:
            mask = np.where(full[:, :, 0] >= self.threshold, 255, 0).astype(np.uint8)
        else:
            mask = full.argmax(axis=2).astype(np.uint8)
        return Image.fromarray(mask, mode="L")

    def training_pair(self, rgb: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        raise UsageError("unet-seg trains on DATA/images + DATA/masks pairs; that data layout is not supported yet")
