"""U-Net building blocks shared by the seed models.

Tiny named blocks in the style of milesial/Pytorch-UNet (``unet/unet_parts.py``): each is a constructor
and a one-line ``forward``. Every block keeps the spatial size of its input except where its name says
otherwise (``Down`` halves it, the ``Up*`` blocks double it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DoubleConv(nn.Sequential):
    """(3x3 conv -> BatchNorm -> ReLU) x 2, the U-Net stage of every seed.

    Args:
        in_channels: channels C_in of the input (N, C_in, H, W).
        out_channels: channels C_out of the output (N, C_out, H, W); H and W are unchanged.

    Source: seed 001 ``conv``, seed 002 ``ConvBlock``, seed 003 ``conv2d_block`` (all identical:
    ``padding='same'``, conv bias kept, BatchNorm after each conv).
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class Down(nn.Sequential):
    """2x2 max-pool then :class:`DoubleConv`: (N, C_in, H, W) -> (N, C_out, H/2, W/2).

    Source: seed 001 ``nn.Sequential(max_pool(), conv(...))``.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(nn.MaxPool2d(2), DoubleConv(in_channels, out_channels))


class UpBilinear(nn.Sequential):
    """Bilinear x2 upsample (``align_corners=True``) then a 2x2 conv: (N, C_in, H, W) -> (N, C_out, 2H, 2W).

    Seed 001's ``up_conv`` uses ``Conv2d(kernel_size=2, padding='same')``; for an even kernel PyTorch pads
    one zero row/column at the bottom/right only. The explicit ``ZeroPad2d((0, 1, 0, 1))`` here computes
    exactly that, without the extra copy and warning that ``'same'`` with an even kernel triggers.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
            nn.ZeroPad2d((0, 1, 0, 1)),
            nn.Conv2d(in_channels, out_channels, kernel_size=2),
        )


class UpTranspose(nn.ConvTranspose2d):
    """2x2 transposed conv with stride 2: (N, C_in, H, W) -> (N, C_out, 2H, 2W).

    Source: seed 002 ``Conv2DTranspose(n_filters, (2, 2), strides=2, padding='same')`` and seed 003
    ``Conv2DTranspose(..., kernel_size=2, strides=2)``; the seed-003 ``output_padding`` that fitted 100x75
    inputs is replaced by padding the input to a multiple of 16 (see :class:`PaddedUNet`).
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, kernel_size=2, stride=2)


def encoder_stages(in_channels: int, widths: tuple[int, ...]) -> nn.ModuleList:
    """One :class:`DoubleConv` per width, each feeding the next: (N, in_channels, ...) -> (N, widths[-1], ...).

    Pooling between stages is left to the model (the seeds differ in where they put dropout).
    """
    stages, c = nn.ModuleList(), in_channels
    for w in widths:
        stages.append(DoubleConv(c, w))
        c = w
    return stages


def transposed_decoder_stages(in_channels: int, widths: tuple[int, ...]) -> tuple[nn.ModuleList, nn.ModuleList]:
    """Decoder of the transposed-conv seeds (002, 003): for each width w, an :class:`UpTranspose` to w channels,
    then (after concatenation with the skip of w channels) a ``DoubleConv(2w, w)``.

    Returns:
        (ups, convs), applied in order as ``x = conv(cat([up(x), skip]))``.
    """
    ups, convs, c = nn.ModuleList(), nn.ModuleList(), in_channels
    for w in widths:
        ups.append(UpTranspose(c, w))
        convs.append(DoubleConv(2 * w, w))
        c = w
    return ups, convs


class PaddedUNet(nn.Module):
    """Base class: runs :meth:`forward_padded` on the input padded to a multiple of ``size_divisor``.

    U-Nets with four 2x2 poolings need H and W divisible by 16 so that the skip connections line up.
    ``forward`` pads the bottom and right edges by edge replication (works for any size, even 1x1),
    calls :meth:`forward_padded`, and crops the result back, so the model itself accepts any H x W and
    returns an output of the input's H x W. The padding lives inside the model (not in the engine), so
    exported ONNX/TorchScript graphs accept any size too.

    Subclasses set ``size_divisor`` and implement ``forward_padded``; full-resolution models also set
    ``tile_overlap``.
    """

    size_divisor: int = 16
    #: Pixels that neighbouring tiles share when ``predict`` tiles a large photo (:mod:`unetcli.engine.tiling`):
    #: enough context that tiled and untiled outputs agree within 1/255. A multiple of ``size_divisor``.
    tile_overlap: int = 64

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x (N, C_in, H, W) float. Returns: (N, C_out, H, W) float (see the subclass for ranges)."""
        if self.size_divisor == 1:
            return self.forward_padded(x)
        h, w = x.shape[-2], x.shape[-1]
        # Padding and cropping unconditionally (a zero pad is a no-op) keeps the traced/exported graph free
        # of shape-dependent branches, so ONNX and TorchScript exports stay valid for every H x W.
        x = F.pad(x, (0, (-w) % self.size_divisor, 0, (-h) % self.size_divisor), mode="replicate")
        return self.forward_padded(x)[..., :h, :w]

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """Forward pass on an input whose H and W are multiples of ``size_divisor``."""
        raise NotImplementedError
