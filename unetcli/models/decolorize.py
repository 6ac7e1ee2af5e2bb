"""unet-decolorize: seed 003 ``unet_black``, RGB (3 channels) -> gray (1 channel)."""

from __future__ import annotations

import torch
from torch import nn

from unetcli.models.blocks import DoubleConv, PaddedUNet, UpTranspose


class UNetDecolorize(PaddedUNet):
    """Seed 003 ``unet_black``: 16-32-64-128-256 U-Net, 2x2 stride-2 transposed convs, dropout 0.1, sigmoid.

    1,944,049 trainable parameters. Dropout (p=0.1) follows each pooling and each skip concatenation,
    as in the seed; it is active in training mode only.

    Input: (N, 3, H, W) float32 sRGB in [0, 1].
    Output: (N, 1, H, W) float32 luminance in [0, 1] (sigmoid), trained towards ``skimage.color.rgb2gray``.
    Any H x W is accepted: the seed's ``output_padding`` for 100x75 inputs is replaced by padding to a
    multiple of 16 inside the model and cropping back (:class:`~unetcli.models.blocks.PaddedUNet`).

    Example:
        >>> UNetDecolorize().eval()(torch.zeros(1, 3, 75, 100)).shape
        torch.Size([1, 1, 75, 100])
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 1, dropout: float = 0.1) -> None:
        super().__init__()
        widths = (16, 32, 64, 128, 256)
        self.pool = nn.MaxPool2d(2)
        self.drop = nn.Dropout(dropout)
        self.enc = nn.ModuleList()
        c = in_channels
        for w in widths:
            self.enc.append(DoubleConv(c, w))
            c = w
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for w in reversed(widths[:-1]):
            self.up.append(UpTranspose(c, w))
            self.dec.append(DoubleConv(2 * w, w))
            c = w
        self.out = nn.Conv2d(c, out_channels, kernel_size=1)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) with H, W multiples of 16 -> (N, 1, H, W) in [0, 1]."""
        skips = []
        for i, block in enumerate(self.enc):
            x = block(x)
            if i < len(self.enc) - 1:
                skips.append(x)
                x = self.drop(self.pool(x))
        for up, dec, skip in zip(self.up, self.dec, reversed(skips)):
            x = dec(self.drop(torch.cat([up(x), skip], dim=1)))
        return torch.sigmoid(self.out(x))
