"""unet-seg: seed 002 ``UNET(n_classes)`` (Keras), RGB (3 channels) -> ``num_classes`` logits."""

from __future__ import annotations

import torch
from torch import nn

from unetcli.models.blocks import DoubleConv, PaddedUNet, encoder_stages, transposed_decoder_stages
from unetcli.models.spec import ModelSpec


class UNetSegmentation(PaddedUNet):
    """Seed 002 ``UNET(n_classes)``: encoder 64-128-256-512, bridge 1024, 2x2 stride-2 transposed convs.

    31,043,521 trainable parameters for one class. The seed ends in sigmoid (one class) or softmax (several);
    this module returns the logits before that activation so that training can use the numerically stable
    ``BCEWithLogitsLoss`` / ``CrossEntropyLoss``; :meth:`unetcli.tasks.SegmentTask.probabilities` applies the
    seed's activation (in the task, so that it also serves ONNX / TorchScript exports of this module).

    Input: (N, 3, H, W) float32 sRGB in [0, 1].
    Output: (N, num_classes, H, W) float32 logits. Any H x W is accepted (padded to a multiple of 16 inside
    the model, see :class:`~unetcli.models.blocks.PaddedUNet`).

    Example:
        >>> UNetSegmentation(num_classes=2)(torch.zeros(1, 3, 75, 100)).shape
        torch.Size([1, 2, 75, 100])
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 1) -> None:
        super().__init__()
        self.num_classes = num_classes
        widths = (64, 128, 256, 512)
        self.pool = nn.MaxPool2d(2)
        self.enc = encoder_stages(in_channels, widths)
        self.bridge = DoubleConv(widths[-1], 1024)
        self.up, self.dec = transposed_decoder_stages(1024, tuple(reversed(widths)))
        self.out = nn.Conv2d(widths[0], num_classes, kernel_size=1)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) with H, W multiples of 16 -> (N, num_classes, H, W) logits."""
        skips = []
        for block in self.enc:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bridge(x)
        for up, dec, skip in zip(self.up, self.dec, reversed(skips)):
            x = dec(torch.cat([up(x), skip], dim=1))
        return self.out(x)


#: The registry entry of this model (collected by :mod:`unetcli.models.registry`). Working size: longest side 384,
#: aspect kept, 256-px training crops at that scale (the seed's network takes 256 x 256; squashed to 128 x 128,
#: the size this entry had until 2026-12-05, people shrink so far that even the pretrained person segmenter falls
#: from 0.72 to 0.26 IoU on the held-out composites: docs/training.md).
SPEC = ModelSpec(
    name="unet-seg", aliases=("seg",), task="segment", factory=UNetSegmentation, in_channels=3, out_channels=1,
    params=31_043_521, seed="002_e65f0e3ed9642e47.txt (UNET(n_classes))", train_size=256, full_resolution=False,
    working_size=384, loss="bce+dice", size_divisor=UNetSegmentation.size_divisor,
    tile_overlap=UNetSegmentation.tile_overlap,
    description="photo -> person mask (sigmoid for 1 class, softmax for more)")
