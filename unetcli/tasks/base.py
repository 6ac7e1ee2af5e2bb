"""The :class:`Task` interface shared by the engine's training and prediction loops."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from unetcli.imageio import Photo
from unetcli.models.registry import ModelSpec


class Task:
    """Base class: how one kind of transform prepares inputs, computes targets and losses, and writes outputs.

    Args:
        spec: the registry model this task serves.
        size: working size (pixels, square) for models that do not run at full resolution; defaults to the
            spec's ``train_size``. Ignored by full-resolution models.

    Prediction runs ``prepare`` in DataLoader workers (CPU, per image), the model on batches, then
    ``finish`` per image. Training runs ``training_pair`` in workers and ``loss`` / ``metrics`` on batches.
    """

    #: Pillow mode family of the written output, for documentation ("L", "RGB", "mask").
    output_kind = ""

    def __init__(self, spec: ModelSpec, size: int | None = None) -> None:
        self.spec = spec
        self.size = int(size or spec.train_size)

    def prepare(self, photo: Photo) -> tuple[torch.Tensor, dict]:
        """Photo -> (network input (C_in, h, w) float32 in [0, 1], context for :meth:`finish`)."""
        raise NotImplementedError

    def finish(self, output: torch.Tensor, ctx: dict) -> Image.Image:
        """Network output (C_out, h, w) float32 on the CPU + context -> the Pillow image to write."""
        raise NotImplementedError

    def training_pair(self, rgb: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """A training crop (h, w, 3) float32 sRGB in [0, 1] -> (input (C_in, h, w), target (C_out, h, w)).

        Segmentation tasks take a second argument, the crop's (h, w) uint8 class-index mask.
        """
        raise NotImplementedError

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scalar fp32 training loss for a batch (N, C, H, W)."""
        raise NotImplementedError

    def metrics(self, output: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-image validation metrics for a batch: name -> (N,) tensor (averaged by the engine)."""
        raise NotImplementedError

    #: metric used to pick the best checkpoint, and whether larger is better.
    best_metric = ("psnr", True)


def resize_float(arr: np.ndarray, size: tuple[int, int], resample=Image.Resampling.BILINEAR) -> np.ndarray:
    """Resize a float32 image (H, W) or (H, W, C) to ``size`` = (width, height) with Pillow's mode "F".

    Pillow's resize is antialiased when downscaling (its filter support grows with the scale factor).
    Returns float32 of shape (height, width) or (height, width, C).
    """
    if arr.ndim == 2:
        return np.array(Image.fromarray(np.ascontiguousarray(arr, dtype=np.float32), mode="F")
                          .resize(size, resample), dtype=np.float32)
    return np.stack([resize_float(arr[:, :, c], size, resample) for c in range(arr.shape[2])], axis=2)


def chw(arr: np.ndarray) -> torch.Tensor:
    """(H, W) or (H, W, C) float array -> contiguous float32 tensor (C, H, W)."""
    t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    return t[None] if t.ndim == 2 else t.permute(2, 0, 1).contiguous()


def with_alpha(im: Image.Image, alpha: np.ndarray | None) -> Image.Image:
    """Attach the input's (H, W) uint8 alpha channel unchanged to an "L" or "RGB" output image."""
    if alpha is None:
        return im
    out = im.convert(im.mode + "A")
    out.putalpha(Image.fromarray(alpha, mode="L"))
    return out
