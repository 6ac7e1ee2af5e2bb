"""simple-black: seed 003 ``simple_black``, RGB (3 channels) -> gray (1 channel) with 12 weights."""

from __future__ import annotations

import torch
from torch import nn

from unetcli.models.blocks import PaddedUNet
from unetcli.models.spec import ModelSpec


class SimpleBlack(PaddedUNet):
    """Seed 003 ``simple_black``: two bias-free 1x1 convs (3 -> 3 -> 1), output clipped to [0, 1].

    12 trainable parameters. Purely per-pixel, so it needs no padding (``size_divisor = 1``) and runs on
    images of any size.

    Input: (N, 3, H, W) float32 sRGB in [0, 1].
    Output: (N, 1, H, W) float32 luminance in [0, 1], trained towards ``skimage.color.rgb2gray``.

    Example:
        >>> SimpleBlack()(torch.zeros(1, 3, 5, 7)).shape
        torch.Size([1, 1, 5, 7])
    """

    size_divisor = 1
    #: Per-pixel: tiles need no shared context, and tiled outputs equal untiled ones exactly.
    tile_overlap = 0

    def __init__(self, in_channels: int = 3, out_channels: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 3, kernel_size=1, bias=False)
        self.conv2 = nn.Conv2d(3, out_channels, kernel_size=1, bias=False)
        # Positive initial weights: with the default (signed) init the clip to [0, 1] can zero the output, and
        # with it every gradient, for the whole image from the first step (the seed's Keras glorot-uniform init
        # has the same trap). Starting with all-positive weights keeps the output inside (0, 1).
        for conv in (self.conv1, self.conv2):
            nn.init.uniform_(conv.weight, 0.1, 0.6)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, 1, H, W), clipped to [0, 1] like the seed's ``K.clip``."""
        return torch.clamp(self.conv2(self.conv1(x)), 0.0, 1.0)


#: The registry entry of this model (collected by :mod:`unetcli.models.registry`).
SPEC = ModelSpec(
    name="simple-black", task="decolorize", factory=SimpleBlack, in_channels=3, out_channels=1, params=12,
    seed="003_18f7aa69c876128b.txt (simple_black)", train_size=128, full_resolution=True, loss="mae",
    size_divisor=SimpleBlack.size_divisor, tile_overlap=SimpleBlack.tile_overlap,
    description="colour photo -> gray with two 1x1 convs (12 weights)", bf16_faithful=False)
