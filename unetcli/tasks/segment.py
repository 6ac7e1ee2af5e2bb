"""RGB -> mask (unet-seg, seeds 002/004): the network runs at a working size, probabilities are upsampled to the
photo's full size before thresholding; outputs are a mask, an overlay or an RGBA cut-out."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from unetcli.errors import UsageError
from unetcli.imageio import Photo, to_uint8
from unetcli.losses import bce_dice_loss, ce_dice_loss
from unetcli.metrics import iou_dice
from unetcli.tasks.base import Task, chw, resize_float

#: What ``predict --output-type`` can write.
OUTPUT_TYPES = ("mask", "overlay", "cutout")


def voc_palette(num_colors: int = 256) -> np.ndarray:
    """The Pascal VOC colour map, (num_colors, 3) uint8: class 0 black, 1 dark red, 2 green, 3 olive ...

    The bit-interleaving rule of the VOC development kit (``VOClabelcolormap.m``), which torchvision and
    segmentation tools use for label images; no installed library exports it.
    """
    out = np.zeros((num_colors, 3), np.uint8)
    for i in range(num_colors):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        out[i] = (r, g, b)
    return out


#: Overlay tint of the one-class mask (rembg-like red); several classes use the VOC colours.
_TINT = np.array([255, 40, 40], np.float32)


class SegmentTask(Task):
    """Photo -> segmentation at the photo's full size (seed 002 ``UNET(n_classes)``, seed 003's person goal).

    Input to the network: (3, size, size) sRGB float32 in [0, 1] (the photo resized to the working size).
    Output of the network: (num_classes, size, size) logits; the seed's activation (sigmoid for one class,
    softmax for several) gives probabilities, which are upsampled (bilinear) to the photo's H x W before
    thresholding (one class: ``threshold``) or arg-max (several).

    Output types (``output_type``):
        mask: 8-bit "L" image, 0/255 for one class, class indices 0..N-1 for several; with ``palette`` a "P"
            image whose pixel values are the same but which viewers show in the VOC colours.
        overlay: the photo (RGB) with the mask tinted over it at 50% (red, or the VOC colour of each class).
        cutout: RGBA, the photo with alpha = the mask (255 where any non-background class is, else 0): what
            background-removal tools such as rembg write.

    Training: target (1, H, W) float {0, 1} with BCE + soft Dice for one class; (H, W) int64 class indices with
    cross-entropy + soft Dice for several (:mod:`unetcli.losses`). Validation: IoU and Dice per image (per
    class, and their mean, for several classes).

    Args:
        threshold, output_type, palette: prediction options (``predict --threshold/--output-type/--palette``).
        num_classes: classes of the training targets (``train --classes``); prediction reads the class count
            from the output's channels.

    Raises:
        UsageError: ``threshold`` not in (0, 1), unknown ``output_type``.
    """

    output_kind = "mask"
    best_metric = ("iou", True)

    def __init__(self, spec, size: int | None = None, threshold: float = 0.5, output_type: str = "mask",
                 palette: bool = False, num_classes: int = 1) -> None:
        super().__init__(spec, size)
        self.num_classes = num_classes
        if not 0.0 < threshold < 1.0:
            raise UsageError(f"--threshold {threshold}: must be between 0 and 1")
        if output_type not in OUTPUT_TYPES:
            raise UsageError(f"--output-type {output_type}: expected one of {', '.join(OUTPUT_TYPES)}")
        self.threshold = threshold
        self.output_type = output_type
        self.palette = palette

    def prepare(self, photo: Photo) -> tuple[torch.Tensor, dict]:
        small = resize_float(photo.rgb, (self.size, self.size))
        ctx = {"size": photo.size}
        if self.output_type != "mask":  # overlay and cut-out need the photo itself at full size
            ctx["rgb"] = to_uint8(photo.rgb)
        return chw(small), ctx

    @staticmethod
    def probabilities(logits: torch.Tensor) -> torch.Tensor:
        """(C, h, w) logits -> (C, h, w) probabilities: sigmoid for one class, softmax for several."""
        return torch.sigmoid(logits) if logits.shape[0] == 1 else torch.softmax(logits, dim=0)

    def labels(self, output: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
        """(C, h, w) logits -> (H, W) uint8 class indices at ``size`` = (W, H): 0/1 for one class."""
        probs = self.probabilities(output.float()).permute(1, 2, 0).numpy()
        full = resize_float(probs, size)
        if full.shape[2] == 1:
            return (full[:, :, 0] >= self.threshold).astype(np.uint8)
        return full.argmax(axis=2).astype(np.uint8)

    def finish(self, output: torch.Tensor, ctx: dict) -> Image.Image:
        labels = self.labels(output, ctx["size"])
        one_class = output.shape[0] == 1
        if self.output_type == "cutout":
            cut = Image.fromarray(ctx["rgb"], mode="RGB")
            cut.putalpha(Image.fromarray(np.where(labels > 0, 255, 0).astype(np.uint8), mode="L"))
            return cut
        if self.output_type == "overlay":
            colours = _TINT[None] if one_class else voc_palette(output.shape[0])[1:].astype(np.float32)
            rgb = ctx["rgb"].astype(np.float32)
            fg = labels > 0
            rgb[fg] = 0.5 * rgb[fg] + 0.5 * colours[labels[fg] - 1]
            return Image.fromarray(np.rint(rgb).astype(np.uint8), mode="RGB")
        if self.palette:
            im = Image.fromarray(labels, mode="L").convert("P")  # pixel values = class indices
            im.putpalette(voc_palette().tobytes())
            return im
        return Image.fromarray(labels * 255 if one_class else labels, mode="L")

    def training_pair(self, rgb: np.ndarray, mask: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(h, w, 3) float32 sRGB in [0, 1] + (h, w) uint8 class indices -> (input (3, h, w), target).

        Target: (1, h, w) float32 {0, 1} for one class, (h, w) int64 for several.

        Raises:
            UsageError: no mask (segmentation trains on DATA/images + DATA/masks pairs).
        """
        if mask is None:
            raise UsageError("unet-seg trains on DATA/images + DATA/masks pairs (see `unetcli train --help`)")
        if self.num_classes == 1:
            return chw(rgb), torch.from_numpy(mask.astype(np.float32))[None]
        return chw(rgb), torch.from_numpy(mask.astype(np.int64))

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return bce_dice_loss(output, target) if output.shape[1] == 1 else ce_dice_loss(output, target)

    def metrics(self, output: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        output = output.float()
        if output.shape[1] == 1:
            iou, dice = iou_dice(output[:, 0] >= 0.0, target[:, 0] > 0.5)  # logit 0 = probability 0.5
            return {"iou": iou, "dice": dice}
        pred = output.argmax(dim=1)
        out: dict[str, torch.Tensor] = {}
        for c in range(output.shape[1]):
            out[f"iou_{c}"], out[f"dice_{c}"] = iou_dice(pred == c, target == c)
        out["iou"] = torch.stack([out[f"iou_{c}"] for c in range(output.shape[1])]).mean(dim=0)
        out["dice"] = torch.stack([out[f"dice_{c}"] for c in range(output.shape[1])]).mean(dim=0)
        return out
