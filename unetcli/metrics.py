"""Image-quality and segmentation metrics, in torch so they run on training batches where they are produced.

PSNR follows the textbook definition used by ``skimage.metrics.peak_signal_noise_ratio`` (the tests check
that the two agree); colorfulness follows Hasler & Suesstrunk, "Measuring colourfulness in natural images"
(SPIE 2003), which no installed library provides.
"""

from __future__ import annotations

import torch


def psnr(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio per image, in dB.

    Args:
        pred: (N, C, H, W) float, values in [0, data_range].
        target: same shape as ``pred``.
        data_range: the peak value (1.0 for images in [0, 1]).

    Returns:
        (N,) float32 PSNR in dB; identical images give ``inf``.
    """
    mse = (pred.float() - target.float()).pow(2).flatten(1).mean(dim=1)
    return 10.0 * torch.log10(data_range**2 / mse)


def colorfulness(rgb: torch.Tensor) -> torch.Tensor:
    """Hasler & Suesstrunk (2003) colourfulness ``M = sigma_rgyb + 0.3 * mu_rgyb`` per image.

    Args:
        rgb: (N, 3, H, W) float sRGB in [0, 1]; the metric is computed on the 0..255 scale of the paper.

    Returns:
        (N,) float32; 0 for a gray image, about 15 "slightly colourful", 33 "moderately", 59+ "highly".
    """
    r, g, b = (rgb.float() * 255.0).unbind(dim=1)
    rg = (r - g).flatten(1)
    yb = (0.5 * (r + g) - b).flatten(1)
    sigma = torch.sqrt(rg.var(dim=1, unbiased=False) + yb.var(dim=1, unbiased=False))
    mu = torch.sqrt(rg.mean(dim=1) ** 2 + yb.mean(dim=1) ** 2)
    return sigma + 0.3 * mu


def iou_dice(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Intersection over union (Jaccard index) and Dice coefficient (F1) of binary masks, per image.

    Args:
        pred: (N, H, W) bool (or 0/1) predicted mask.
        target: (N, H, W) bool (or 0/1) true mask.

    Returns:
        Two (N,) float32 tensors in [0, 1]: ``|P & T| / |P | T|`` and ``2 |P & T| / (|P| + |T|)``. An image where
        both masks are empty scores 1 (nothing to find, nothing found), the convention of
        ``sklearn.metrics.jaccard_score(zero_division=1)``.
    """
    p, t = pred.bool().flatten(1), target.bool().flatten(1)
    inter = (p & t).sum(dim=1).float()
    union = (p | t).sum(dim=1).float()
    total = p.sum(dim=1).float() + t.sum(dim=1).float()
    empty = union == 0
    iou = torch.where(empty, torch.ones_like(inter), inter / union.clamp(min=1))
    dice = torch.where(empty, torch.ones_like(inter), 2 * inter / total.clamp(min=1))
    return iou, dice
