"""Full-resolution evaluation of a model on colour photos, through the same :class:`Predictor` ``predict`` runs.

The photos are given to the model exactly as users have them (8-bit images at the input's size, read by
:func:`unetcli.imageio.read_photo`); the outputs are compared with references computed by scikit-image from the
original photo, by the model's task (:meth:`unetcli.tasks.Task.evaluation_scores`):
    decolorize task: PSNR of the output against ``skimage.color.rgb2gray`` of the photo;
    colorize task:   the photo is decolorized first; PSNR of the colorized output against the original, next to
                     the grayscale baseline (the same photo with a = b = 0, i.e. its gray version), and the
                     Hasler-Suesstrunk colourfulness of output and original.
PSNR is ``skimage.metrics.peak_signal_noise_ratio`` with ``data_range=1``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from unetcli.engine.predictor import Predictor
from unetcli.imageio import photo_from_image, read_photo, to_uint8

#: Photos per forward pass (and held in memory at once).
EVAL_BATCH = 8


def evaluate_photos(model: str, photos: list[Path], weights: str | None = None, precision: str = "auto",
                    device: str = "auto", workers: int = 0) -> list[dict]:
    """Run ``model`` over colour ``photos`` at full resolution and score each output; one dict per photo.

    Args:
        model, weights, precision, device: as :func:`unetcli.load`.
        photos: colour photo files.
        workers: unused (kept for callers of the folder-based version).

    Returns:
        For decolorize models: ``{"photo", "size", "psnr"}``. For colorize: ``{"photo", "size", "psnr",
        "psnr_gray_baseline", "colorfulness", "colorfulness_original"}``. PSNR in dB.

    Raises:
        UsageError / WeightsError: as :func:`unetcli.load`; :class:`~unetcli.errors.InputError` for a photo that
            cannot be read (evaluation photos must all be readable).
    """
    predictor = Predictor.configure(model, weights=weights, device=device, precision=precision,
                                    batch_size=EVAL_BATCH).load()
    task, results = predictor.task, []
    for start in range(0, len(photos), EVAL_BATCH):
        chunk = photos[start:start + EVAL_BATCH]
        rgbs = [read_photo(p).rgb for p in chunk]
        originals, given = [to_uint8(rgb) for rgb in rgbs], [task.evaluation_input(rgb) for rgb in rgbs]
        outputs = predictor.predict_photos([photo_from_image(g) for g in given])
        for photo, original, image, out in zip(chunk, originals, given, outputs):
            row = {"photo": str(photo), "size": [original.shape[1], original.shape[0]]}
            row.update(task.evaluation_scores(original.astype(np.float64) / 255.0,
                                              np.asarray(out, dtype=np.float64) / 255.0,
                                              np.asarray(image, dtype=np.float64) / 255.0))
            results.append(row)
    return results


def evaluate_masks(model: str, data: Path, weights: str | None = None, precision: str = "auto",
                   device: str = "auto", workers: int = 0, threshold: float = 0.5) -> list[dict]:
    """Run a one-class segmentation model over ``data/images`` at full resolution and score each mask
    against ``data/masks`` (the layout of :func:`unetcli.data.load_segmentation_pairs`); one dict per image.

    ``workers`` is unused (kept for callers of the folder-based version).

    Returns:
        ``{"image", "size", "iou", "dice", "true_pixels", "predicted_pixels", "intersection_pixels",
        "union_pixels"}``: IoU and Dice of the foreground in [0, 1] (:func:`unetcli.metrics.iou_dice`) and the
        pixel counts behind them (sums of the counts give IoU pooled over all pixels).

    Raises:
        UsageError / WeightsError: as :func:`unetcli.load`, and for an image without exactly one mask;
            :class:`~unetcli.errors.InputError` for an unreadable image or mask, or a mask whose size fits neither
            orientation of its image (:func:`unetcli.data.align_mask`).
    """
    from unetcli.data import align_mask, find_mask_pairs, raise_data_problems, read_mask
    from unetcli.metrics import iou_dice

    pairs, problems = find_mask_pairs(Path(data))
    raise_data_problems(Path(data), problems)
    predictor = Predictor.configure(model, weights=weights, device=device, precision=precision, batch_size=EVAL_BATCH,
                                    threshold=threshold).load()
    results = []
    for start in range(0, len(pairs), EVAL_BATCH):
        chunk = pairs[start:start + EVAL_BATCH]
        masks = predictor.predict_photos([read_photo(path) for path, _ in chunk])
        for (path, mask_path), mask in zip(chunk, masks):
            pred = np.asarray(mask) > 127
            true = align_mask(read_mask(mask_path, 1), path, pred.shape) > 0
            iou, dice = iou_dice(torch.from_numpy(pred)[None], torch.from_numpy(true)[None])
            results.append({"image": str(path), "size": [true.shape[1], true.shape[0]], "iou": iou.item(),
                            "dice": dice.item(), "true_pixels": int(true.sum()), "predicted_pixels": int(pred.sum()),
                            "intersection_pixels": int((pred & true).sum()), "union_pixels": int((pred | true).sum())})
    return results
