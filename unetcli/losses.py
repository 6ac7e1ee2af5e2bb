"""Segmentation losses: BCE + soft Dice (one class) and cross-entropy + soft Dice (several classes).

Both combinations are the standard ones of the U-Net segmentation literature (Milletari et al., "V-Net", 2016,
for the soft Dice loss; milesial/Pytorch-UNet and segmentation_models_pytorch train with the same sums). They
are written here, in a few lines, rather than taken from segmentation_models_pytorch or MONAI: either would add a
large dependency tree (timm, huggingface_hub ...) to the CPU install for three formulas.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_dice_loss(probs: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """``1 - soft Dice`` per channel over the whole batch, averaged over the channels present in ``target``.

    Milletari et al. (2016) with additive smoothing; like segmentation_models_pytorch's ``DiceLoss``, sums run
    over the batch and the pixels, and a channel (class) absent from the whole batch's target is left out (its
    Dice would only reward predicting exactly zero; the cross-entropy term covers it).

    Args:
        probs: (N, C, H, W) float probabilities in [0, 1].
        target: (N, C, H, W) float in {0, 1} (one-hot for several classes).
        eps: smoothing added to numerator and denominator.

    Returns:
        Scalar float32 in [0, 1]; 0 when no channel is present in the target.
    """
    probs = probs.float().transpose(0, 1).flatten(1)   # (C, N*H*W)
    target = target.float().transpose(0, 1).flatten(1)
    inter = (probs * target).sum(dim=1)
    total = probs.sum(dim=1) + target.sum(dim=1)
    present = target.sum(dim=1) > 0
    if not present.any():
        return probs.sum() * 0.0  # keeps the graph: a batch of empty masks trains on the cross-entropy alone
    return 1.0 - ((2.0 * inter + eps) / (total + eps))[present].mean()


def bce_dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy (``BCEWithLogitsLoss``) + soft Dice of ``sigmoid(logits)``, for one class.

    Args:
        logits: (N, 1, H, W) float logits.
        target: (N, 1, H, W) float in {0, 1}.

    Returns:
        Scalar float32 (computed in fp32 whatever the autocast dtype of ``logits``).
    """
    logits = logits.float()
    return F.binary_cross_entropy_with_logits(logits, target.float()) + soft_dice_loss(torch.sigmoid(logits), target)


def ce_dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy (``CrossEntropyLoss``) + soft Dice of ``softmax(logits)`` over all classes, for several.

    Args:
        logits: (N, C, H, W) float logits, C = number of classes.
        target: (N, H, W) int64 class indices in 0..C-1.

    Returns:
        Scalar float32.
    """
    logits = logits.float()
    one_hot = F.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2)
    return F.cross_entropy(logits, target) + soft_dice_loss(torch.softmax(logits, dim=1), one_hot)
