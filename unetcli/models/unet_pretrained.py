"""The U-Net body of segmentation_models_pytorch's ``Unet`` on a pretrained encoder: shared by the models that
start from the ImageNet MobileNetV2 encoder (``unet-seg-mobilenetv2``, ``unet-colorize-mobilenetv2``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from unetcli.models.blocks import PaddedUNet
from unetcli.models.encoders.mobilenetv2 import MobileNetV2Encoder


class DecoderBlock(nn.Module):
    """smp ``DecoderBlock``: nearest x2 upsample, concatenate the skip (if any), two 3x3 conv-BN-ReLU.

    (N, C_in, H, W) + skip (N, C_skip, 2H, 2W) -> (N, C_out, 2H, 2W).
    """

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels + skip_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        """(N, C_in, H, W), optional skip (N, C_skip, 2H, 2W) -> (N, C_out, 2H, 2W)."""
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return self.conv(x if skip is None else torch.cat([x, skip], dim=1))


class MobileNetV2UNet(PaddedUNet):
    """U-Net on the ImageNet MobileNetV2 encoder, segmentation_models_pytorch's ``Unet(encoder_name="mobilenet_v2")``.

    Encoder: :class:`~unetcli.models.encoders.mobilenetv2.MobileNetV2Encoder` (features at strides 2-32, ImageNet
    normalisation inside); decoder: five :class:`DecoderBlock` of 256, 128, 64, 32, 16 channels with skips at
    strides 16, 8, 4 and 2; head: a ``head_kernel_size`` (3 in smp) conv to ``out_channels``.

    Input: (N, 3, H, W) float32 sRGB in [0, 1], or (N, 1, H, W) luminance in [0, 1] with ``in_channels=1`` (copied
    to R = G = B before the encoder, as a gray photo is an RGB photo with equal channels). Any H x W: padded to a
    multiple of 32 inside the model (:class:`~unetcli.models.blocks.PaddedUNet`) and cropped back.
    Output: (N, out_channels, H, W) float32, no activation (the subclass says what the channels mean).

    Raises:
        ValueError: ``in_channels`` is not 1 or 3 (the encoder was pretrained on RGB).
    """

    size_divisor = 32
    decoder_channels = (256, 128, 64, 32, 16)
    #: Run the encoder in fp32 when the model is used for inference under autocast (the decoder still runs in
    #: bf16/fp16): for regression heads whose outputs bf16 encoder features move too much (measured for the a/b
    #: colorizer: a/b off by up to 17 units with a bf16 encoder, 1.5 with an fp32 one; 16 % more time than all-bf16,
    #: still 2x faster than fp32). Training keeps autocast everywhere.
    encoder_fp32_inference = False

    def __init__(self, in_channels: int = 3, out_channels: int = 1, head_kernel_size: int = 3) -> None:
        super().__init__()
        if in_channels not in (1, 3):
            raise ValueError("the pretrained MobileNetV2 encoder takes 3 (RGB) or 1 (gray) input channels")
        self.in_channels = in_channels
        self.encoder = MobileNetV2Encoder()
        enc = self.encoder.out_channels
        ins = (enc[-1],) + self.decoder_channels[:-1]
        skips = tuple(reversed(enc[:-1])) + (0,)
        self.decoder = nn.ModuleList(DecoderBlock(i, s, o) for i, s, o in zip(ins, skips, self.decoder_channels))
        self.head = nn.Conv2d(self.decoder_channels[-1], out_channels, head_kernel_size,
                              padding=head_kernel_size // 2)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_channels, H, W) with H, W multiples of 32 -> (N, out_channels, H, W)."""
        if self.in_channels == 1:
            x = x.expand(-1, 3, -1, -1)
        if (self.encoder_fp32_inference and not self.training and x.device.type in ("cpu", "cuda")  # not "meta"
                and torch.is_autocast_enabled(x.device.type)):
            with torch.autocast(x.device.type, enabled=False):
                *skips, x = self.encoder(x.float())
        else:
            *skips, x = self.encoder(x)
        for i, block in enumerate(self.decoder):
            x = block(x, skips[-1 - i] if i < len(skips) else None)
        return self.head(x)
