"""RGB -> mask (unet-seg, seeds 002/004): the network runs at a working size, probabilities are upsampled to the
photo's full size before thresholding; outputs are a mask, an overlay or an RGBA cut-out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from unetcli.errors import UsageError
from unetcli.imageio import Photo
from unetcli.losses import bce_dice_loss, ce_dice_loss
from unetcli.metrics import iou_dice
from unetcli.outputs import get_renderer, voc_palette
from unetcli.tasks.base import RGB_INPUT, Task, chw, resize_float

__all__ = ["SegmentTask", "voc_palette"]


def resize_probabilities(probs: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(C, h, w) float32 probabilities -> (C, H, W) at ``size`` = (W, H), bilinear.

    Upsampling (the usual case: the working size is below the photo's) is ``torch.nn.functional.interpolate``
    (half-pixel centres, edges clamped: the same weights as Pillow's bilinear upscaling, in float32 rather than
    float64 accumulation; within 3e-5 of it, and 3 to 4 times faster at 24 Mpixel); any downscaling goes
    through Pillow's antialiased resize (:func:`~unetcli.tasks.base.resize_float`).
    """
    (w, h), (_, ph, pw) = size, probs.shape
    if w >= pw and h >= ph:
        return F.interpolate(probs[None], size=(h, w), mode="bilinear", align_corners=False)[0]
    return torch.from_numpy(resize_float(probs.permute(1, 2, 0).numpy(), size)).permute(2, 0, 1)


class SegmentTask(Task):
    """Photo -> segmentation at the photo's full size (seed 002 ``UNET(n_classes)``, seed 003's person goal).

    Input to the network: (3, size, size) sRGB float32 in [0, 1] (the photo resized to the working size).
    Output of the network: (num_classes, size, size) logits; the seed's activation (sigmoid for one class,
    softmax for several) gives probabilities, which are upsampled (bilinear) to the photo's H x W before
    thresholding (one class: ``threshold``) or arg-max (several).

    Output types (``output_type``, renderers in :mod:`unetcli.outputs`):
        mask: 8-bit "L" image, 0/255 for one class, class indices 0..N-1 for several; ``palette`` (or
            ``output_type="palette"``): a "P" image whose pixel values are the same but which viewers show in the
            VOC colours.
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
    metric_names = ("iou", "dice")
    options = ("threshold", "output_type", "palette")
    has_classes = True
    export_io = ("rgb", "logits", RGB_INPUT,
                 "logits (unbounded); probabilities = sigmoid for 1 class, softmax over C for several")

    def __init__(self, spec, size: int | None = None, threshold: float = 0.5, output_type: str = "mask",
                 palette: bool = False, num_classes: int = 1) -> None:
        super().__init__(spec, size)
        self.num_classes = num_classes
        if not 0.0 < threshold < 1.0:
            raise UsageError(f"--threshold {threshold}: must be between 0 and 1")
        self.renderer = get_renderer("palette" if palette and output_type == "mask" else output_type, "segment")
        self.threshold = threshold
        self.output_type = output_type
        self.palette = palette

    @classmethod
    def model_kwargs(cls, spec, state: dict[str, torch.Tensor]) -> dict:
        """``num_classes`` read from a state dict's final conv ``<spec.logits_layer>.weight`` (C, C_in, k, k)."""
        key = f"{spec.logits_layer}.weight"
        return {"num_classes": int(state[key].shape[0])} if key in state else {}

    @classmethod
    def training_model_kwargs(cls, classes: int) -> dict:
        """``{"num_classes": classes}`` for ``train --classes``."""
        return {"num_classes": int(classes)}

    @classmethod
    def load_training_data(cls, spec, folder: Path, classes: int, warn) -> tuple[list[Path], list[np.ndarray], list]:
        """``folder/images`` + ``folder/masks`` pairs (:func:`unetcli.data.load_segmentation_pairs`); for models
        with a ``working_size``, scaled so that the longest side is the working size (the scale prediction runs at).

        Raises:
            UsageError: unusable data folder (see :func:`unetcli.data.load_segmentation_pairs`).
        """
        from unetcli.data import load_segmentation_pairs, scale_longest_side  # unetcli.data imports the tasks

        paths, photos, masks = load_segmentation_pairs(folder, int(classes))
        if spec.working_size:  # train at the scale prediction runs at: longest side = working size
            photos, masks = map(list, zip(*(scale_longest_side(p, m, spec.working_size)
                                            for p, m in zip(photos, masks)))) if photos else ([], [])
        return paths, photos, masks

    @classmethod
    def export_metadata(cls, out_channels: int) -> dict[str, str]:
        """``num_classes`` for the export's metadata."""
        return {"num_classes": str(out_channels)}

    def reduced_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """The working shape (:meth:`working_shape`): the network sees nothing finer, so a JPEG is decoded at the
        smallest DCT scale (1/2, 1/4, 1/8) that still covers it (:func:`unetcli.imageio.read_photo`)."""
        return self.working_shape(size)

    def prepare(self, photo: Photo) -> tuple[torch.Tensor, dict]:
        """The photo resized to the working shape (Pillow bilinear, antialiased; 8-bit photos in 8 bits, as
        training resizes them, others in float32), and the context: its size as shown, and for overlays and
        cut-outs the photo itself at full size ((H, W, 3) uint8; decoded again in full if ``photo`` was decoded
        at a reduced scale). The network input does not depend on the output type, so the mask of an overlay or
        cut-out is the mask ``--output-type mask`` writes.

        Raises:
            InputError: the file of a reduced photo can no longer be read in full (overlay, cut-out).
        """
        shape = self.working_shape(photo.size)
        if photo.rgb8 is not None:
            small = np.asarray(Image.fromarray(photo.rgb8, mode="RGB").resize(shape, Image.Resampling.BILINEAR))
            x = torch.from_numpy(np.divide(small, np.float32(255.0), dtype=np.float32)).permute(2, 0, 1).contiguous()
        else:
            x = chw(resize_float(photo.rgb, shape))
        ctx = {"size": photo.size}
        if self.renderer.needs_photo:  # overlay and cut-out need the photo itself at full size
            ctx["rgb"] = photo.at_full_size().as_uint8()
        return x, ctx

    @staticmethod
    def probabilities(logits: torch.Tensor) -> torch.Tensor:
        """(C, h, w) logits -> (C, h, w) probabilities: sigmoid for one class, softmax for several."""
        return torch.sigmoid(logits) if logits.shape[0] == 1 else torch.softmax(logits, dim=0)

    def labels(self, output: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
        """(C, h, w) logits -> (H, W) uint8 class indices at ``size`` = (W, H): 0/1 for one class.

        The probabilities are resized to the photo's size bilinearly (:func:`resize_probabilities`), then
        thresholded (one class) or arg-maxed (several).
        """
        full = resize_probabilities(self.probabilities(output.float()), size)
        if full.shape[0] == 1:
            return (full[0] >= self.threshold).numpy().view(np.uint8)
        return full.argmax(dim=0).to(torch.uint8).numpy()

    def finish(self, output: torch.Tensor, ctx: dict) -> Image.Image:
        """(C, h, w) logits + context -> the output type's image at the photo's size (:mod:`unetcli.outputs`)."""
        return self.renderer.render(self.labels(output, ctx["size"]), output.shape[0], ctx)

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
