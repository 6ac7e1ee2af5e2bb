"""unet-colorize: seed 001 (PyTorch port of the Keras net in seed 000), gray (1 channel) -> RGB (3 channels)."""

from __future__ import annotations

import torch
from torch import nn

from unetcli.models.blocks import DoubleConv, Down, PaddedUNet, UpBilinear
from unetcli.models.spec import ModelSpec


class UNetColorize(PaddedUNet):
    """Seed 001 ``UNET``: encoder 64-128-256-512-1024, bilinear x2 upsample + 2x2 conv, concat skips, BatchNorm.

    31,042,499 trainable parameters; torchinfo counts 436.66 G mult-adds for a (32, 1, 128, 128) batch,
    as the seed's summary shows.

    Input: (N, 1, H, W) float32 luminance in [0, 1] (``skimage.color.rgb2gray`` of an sRGB photo).
    Output: (N, 3, H, W) float32 sRGB in about [0, 1]; there is no output activation (the seed has none),
    so callers clamp. Any H x W is accepted: the input is padded to a multiple of 16 inside the model
    (:class:`~unetcli.models.blocks.PaddedUNet`) and the output cropped back.

    Example:
        >>> UNetColorize()(torch.zeros(2, 1, 75, 100)).shape
        torch.Size([2, 3, 75, 100])
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 3) -> None:
        super().__init__()
        self.enc1 = DoubleConv(in_channels, 64)
        self.enc2 = Down(64, 128)
        self.enc3 = Down(128, 256)
        self.enc4 = Down(256, 512)
        self.enc5 = Down(512, 1024)
        self.up1 = UpBilinear(1024, 512)
        self.dec1 = DoubleConv(1024, 512)
        self.up2 = UpBilinear(512, 256)
        self.dec2 = DoubleConv(512, 256)
        self.up3 = UpBilinear(256, 128)
        self.dec3 = DoubleConv(256, 128)
        self.up4 = UpBilinear(128, 64)
        self.dec4 = DoubleConv(128, 64)
        self.out = nn.Conv2d(64, out_channels, kernel_size=1)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) with H, W multiples of 16 -> (N, 3, H, W) RGB, unclamped."""
        x1 = self.enc1(x)
        x2 = self.enc2(x1)
        x3 = self.enc3(x2)
        x4 = self.enc4(x3)
        x = self.enc5(x4)
        x = self.dec1(torch.cat([self.up1(x), x4], dim=1))
        x = self.dec2(torch.cat([self.up2(x), x3], dim=1))
        x = self.dec3(torch.cat([self.up3(x), x2], dim=1))
        x = self.dec4(torch.cat([self.up4(x), x1], dim=1))
        return self.out(x)


#: The registry entry of this model (collected by :mod:`unetcli.models.registry`).
SPEC = ModelSpec(
    name="unet-colorize", task="colorize", factory=UNetColorize, in_channels=1, out_channels=3,
    params=31_042_499, seed="001_2baa20e9c5589985.txt (Keras: 000_5f12bff34383d507.txt)", train_size=128,
    full_resolution=False, loss="mse", size_divisor=UNetColorize.size_divisor, tile_overlap=UNetColorize.tile_overlap,
    description="gray photo -> colour (CIE Lab a/b predicted, full-resolution L kept)")
