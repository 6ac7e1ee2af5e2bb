"""Full-resolution evaluation of a model on colour photos, through the real ``predict`` pipeline.

The photos are written by ``predict`` exactly as users get them (8-bit files at the input's size); the written
outputs are then compared with references computed by scikit-image from the original photo:
    decolorize task: PSNR of the output against ``skimage.color.rgb2gray`` of the photo;
    colorize task:   the photo is decolorized first; PSNR of the colorized output against the original, next to
                     the grayscale baseline (the same photo with a = b = 0, i.e. its gray version), and the
                     Hasler-Suesstrunk colourfulness of output and original.
PSNR is ``skimage.metrics.peak_signal_noise_ratio`` with ``data_range=1``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage.color import gray2rgb, rgb2gray
from skimage.metrics import peak_signal_noise_ratio

from unetcli.engine.predict import PredictOptions, predict
from unetcli.imageio import read_photo, to_uint8
from unetcli.metrics import colorfulness
from unetcli.models.registry import get_spec


def evaluate_photos(model: str, photos: list[Path], weights: str | None = None, precision: str = "auto",
                    device: str = "auto", workers: int = 0) -> list[dict]:
    """Run ``model`` over colour ``photos`` at full resolution and score each output; one dict per photo.

    Returns:
        For decolorize models: ``{"photo", "size", "psnr"}``. For colorize: ``{"photo", "size", "psnr",
        "psnr_gray_baseline", "colorfulness", "colorfulness_original"}``. PSNR in dB.

    Raises:
        UsageError / WeightsError: as :func:`unetcli.engine.predict.predict`; a photo that fails raises
            ``RuntimeError`` (evaluation photos must all be readable).
    """
    spec = get_spec(model)
    results = []
    with tempfile.TemporaryDirectory(prefix="unetcli-eval-") as tmp:
        src, out = Path(tmp) / "in", Path(tmp) / "out"
        src.mkdir()
        names, originals = [], []  # the 8-bit photos users have
        for i, photo in enumerate(photos):
            rgb = read_photo(photo).rgb
            originals.append(to_uint8(rgb))
            name = f"{i:04d}_{Path(photo).stem}.png"
            if spec.task == "colorize":  # users colorize gray photos: decolorize, store 8-bit gray
                Image.fromarray(to_uint8(rgb2gray(rgb)), mode="L").save(src / name)
            else:
                Image.fromarray(originals[-1], mode="RGB").save(src / name)
            names.append(name)
        failures = []
        summary = predict(PredictOptions(model=model, source=str(src), output=out, weights=weights,
                                         precision=precision, device=device, workers=workers),
                          on_result=lambda r: failures.append(r) if r.status == "failed" else None,
                          show_progress=False)
        if summary.failed:
            raise RuntimeError(f"evaluation photos failed: {[(f.input, f.error) for f in failures]}")
        for photo, name, original in zip(photos, names, originals):
            original = original.astype(np.float64) / 255.0
            written = np.asarray(Image.open(out / name), dtype=np.float64) / 255.0
            row = {"photo": str(photo), "size": [original.shape[1], original.shape[0]]}
            if spec.task == "colorize":
                gray_in = np.asarray(Image.open(src / name), dtype=np.float64) / 255.0
                row["psnr"] = float(peak_signal_noise_ratio(original, written[:, :, :3], data_range=1.0))
                row["psnr_gray_baseline"] = float(peak_signal_noise_ratio(original, gray2rgb(gray_in), data_range=1.0))
                to_t = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None]  # noqa: E731
                row["colorfulness"] = float(colorfulness(to_t(written[:, :, :3]))[0])
                row["colorfulness_original"] = float(colorfulness(to_t(original))[0])
            else:
                row["psnr"] = float(peak_signal_noise_ratio(rgb2gray(original), written, data_range=1.0))
            results.append(row)
    return results


def evaluate_masks(model: str, data: Path, weights: str | None = None, precision: str = "auto",
                   device: str = "auto", workers: int = 0, threshold: float = 0.5) -> list[dict]:
    """Run a one-class segmentation model over ``data/images`` at full resolution and score each written mask
    against ``data/masks`` (the layout of :func:`unetcli.data.load_segmentation_pairs`); one dict per image.

    Returns:
        ``{"image", "size", "iou", "dice", "true_pixels", "predicted_pixels", "intersection_pixels",
        "union_pixels"}``: IoU and Dice of the foreground in [0, 1] (:func:`unetcli.metrics.iou_dice`) and the
        pixel counts behind them (sums of the counts give IoU pooled over all pixels).

    Raises:
        UsageError / WeightsError: as :func:`unetcli.engine.predict.predict`, and for an image without exactly
            one mask; :class:`~unetcli.errors.InputError` for an unreadable mask or one whose size fits
            neither orientation of its image (:func:`unetcli.data.align_mask`); ``RuntimeError`` if an image
            fails.
    """
    from unetcli.data import align_mask, find_mask_pairs, raise_data_problems, read_mask
    from unetcli.metrics import iou_dice

    pairs, problems = find_mask_pairs(Path(data))
    raise_data_problems(Path(data), problems)
    with tempfile.TemporaryDirectory(prefix="unetcli-eval-") as tmp:
        out = Path(tmp) / "out"
        failures = []
        summary = predict(PredictOptions(model=model, source=str(Path(data) / "images"), output=out, weights=weights,
                                         precision=precision, device=device, workers=workers, threshold=threshold),
                          on_result=lambda r: failures.append(r) if r.status == "failed" else None,
                          show_progress=False)
        if summary.failed:
            raise RuntimeError(f"evaluation images failed: {[(f.input, f.error) for f in failures]}")
        written = {p.stem: np.asarray(Image.open(p)) > 127 for p in out.iterdir()}
    results = []
    for path, mask_path in pairs:
        pred = written[path.stem]
        true = align_mask(read_mask(mask_path, 1), path, pred.shape) > 0
        iou, dice = iou_dice(torch.from_numpy(pred)[None], torch.from_numpy(true)[None])
        results.append({"image": str(path), "size": [true.shape[1], true.shape[0]], "iou": iou.item(),
                        "dice": dice.item(), "true_pixels": int(true.sum()), "predicted_pixels": int(pred.sum()),
                        "intersection_pixels": int((pred & true).sum()), "union_pixels": int((pred | true).sum())})
    return results
