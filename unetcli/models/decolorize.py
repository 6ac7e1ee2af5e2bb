"""unet-decolorize: seed 003 ``unet_black``, RGB (3 channels) -> gray (1 channel)."""

from __future__ import annotations

import torch
from torch import nn

from unetcli.models.blocks import PaddedUNet, encoder_stages, transposed_decoder_stages
from unetcli.models.spec import ModelSpec


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

    #: Tiles share 64 px when ``predict`` tiles a large photo; the outer 16 px next to each cut get no weight and
    #: the middle 32 px cross-fade (:mod:`unetcli.engine.tiling`). Measured in fp32 on 11 real photos
    #: (``benchmarks/bench_tiling.py``, weights at 42.4 dB validation PSNR): max |tiled - untiled| 0.29/255 with
    #: 128 px tiles, 0.02/255 with 256 px tiles; cutting the same tiles without overlap gives up to 54/255.
    #: The receptive field (188 px across) is wider than the overlap, but what lies beyond 48 px
    #: hardly moves a pixel.
    tile_overlap = 64

    def __init__(self, in_channels: int = 3, out_channels: int = 1, dropout: float = 0.1) -> None:
        super().__init__()
        widths = (16, 32, 64, 128, 256)
        self.pool = nn.MaxPool2d(2)
        self.drop = nn.Dropout(dropout)
        self.enc = encoder_stages(in_channels, widths)
        self.up, self.dec = transposed_decoder_stages(widths[-1], tuple(reversed(widths[:-1])))
        self.out = nn.Conv2d(widths[0], out_channels, kernel_size=1)

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


#: The registry entry of this model (collected by :mod:`unetcli.models.registry`).
SPEC = ModelSpec(
    name="unet-decolorize", aliases=("decolorize",), task="decolorize", factory=UNetDecolorize, in_channels=3,
    out_channels=1, params=1_944_049, seed="003_18f7aa69c876128b.txt (unet_black)", train_size=128,
    full_resolution=True, loss="mae", size_divisor=UNetDecolorize.size_divisor,
    tile_overlap=UNetDecolorize.tile_overlap, description="colour photo -> gray (learned skimage rgb2gray)")
