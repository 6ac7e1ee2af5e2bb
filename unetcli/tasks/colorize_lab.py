"""Gray -> colour by predicting CIE a/b directly, with Zhang, Isola & Efros's class rebalancing ("Colorful Image
Colorization", ECCV 2016, section 2.2): the loss weighs each pixel by how rare its colour is in the training
photos, so the network is not pulled to the brown-sepia mean of all plausible colours.

Two output heads share this task, told apart by the number of output channels:

* 2 channels: a/b / :data:`AB_SCALE`, trained with a rebalanced Huber loss (the light variant);
* :data:`NUM_BINS` channels: logits over a 23 x 23 grid of a/b bins of side 10 (Zhang et al. quantise a/b on the
  same grid, keeping its 313 in-gamut bins), trained with rebalanced cross-entropy on soft targets and decoded with
  the annealed mean (T = 0.38, their section 2.3).

Either way the a/b are upsampled to the photo and joined with the photo's own full-resolution L (the recombination
of :mod:`unetcli.tasks.colorize`).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from skimage.color import rgb2gray, rgb2lab

from unetcli.metrics import colorfulness, psnr
from unetcli.tasks.base import GRAY_INPUT, chw
from unetcli.tasks.colorize import ColorizeTask

#: a/b are predicted divided by this (CIE a/b of sRGB colours lie within about +-110).
AB_SCALE = 110.0
#: The a/b bin grid: centres -110, -100, ..., 110 on each axis (Zhang et al.'s grid size 10).
GRID = 23
BIN_STEP = 10.0
NUM_BINS = GRID * GRID
#: Annealed-mean temperature (Zhang et al. 2016: T = 0.38).
ANNEAL_T = 0.38
#: Rebalancing: weights proportional to 1 / ((1 - lambda) p + lambda / Q). Zhang et al. use 0.5 for their bins;
#: with this regression head 0.5 over-coloured (held-out PSNR under the gray baseline, colourfulness above the
#: originals', measured for the model card), 0.8 met both bars of issue 16.
REBALANCE_LAMBDA = 0.8
#: Huber (smooth L1) threshold of the regression loss, in a/b / AB_SCALE units (10 a/b units).
HUBER_BETA = 10.0 / AB_SCALE


def bin_centres() -> torch.Tensor:
    """(NUM_BINS, 2) float32 a/b of the bin centres; bin ``i * GRID + j`` has a = -110 + 10 i, b = -110 + 10 j."""
    axis = torch.arange(GRID, dtype=torch.float32) * BIN_STEP - AB_SCALE
    return torch.stack(torch.meshgrid(axis, axis, indexing="ij"), dim=-1).reshape(-1, 2)


def nearest_bin(ab: torch.Tensor) -> torch.Tensor:
    """(N, 2, H, W) CIE a/b -> (N, H, W) int64 index of the nearest bin (values beyond +-110 go to the edge)."""
    g = ((ab + AB_SCALE) / BIN_STEP).round().clamp(0, GRID - 1).long()
    return g[:, 0] * GRID + g[:, 1]


def soft_bins(ab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Soft encoding of a/b over the bins: each pixel's colour shared bilinearly among the 4 bins around it.

    Zhang et al. spread each colour over its 5 nearest bins with a Gaussian (sigma 5); on a regular grid the
    bilinear weights of the 4 surrounding centres are the same idea at a fraction of the cost (no distance matrix
    of every pixel against every bin).

    Args:
        ab: (N, 2, H, W) float CIE a/b.
    Returns:
        (indices (N, 4, H, W) int64, weights (N, 4, H, W) float32 summing to 1 per pixel).
    """
    u = ((ab.float() + AB_SCALE) / BIN_STEP).clamp(0, GRID - 1)
    lo = u.floor().clamp(max=GRID - 2)
    f = u - lo
    lo = lo.long()
    ia, ib, fa, fb = lo[:, 0], lo[:, 1], f[:, 0], f[:, 1]
    idx = torch.stack([ia * GRID + ib, (ia + 1) * GRID + ib, ia * GRID + ib + 1, (ia + 1) * GRID + ib + 1], 1)
    w = torch.stack([(1 - fa) * (1 - fb), fa * (1 - fb), (1 - fa) * fb, fa * fb], 1)
    return idx, w


def ab_prior(photos: list[np.ndarray], side: int = 64) -> np.ndarray:
    """Empirical distribution of the photos' colours over the a/b bins, smoothed: (NUM_BINS,) float64 summing to 1.

    Each (H, W, 3) uint8 sRGB photo counts at a size of at most ``side`` pixels (longest side, Pillow's
    antialiased resize), so large and small photos weigh about alike; the 23 x 23 histogram is smoothed with a
    Gaussian of sigma 0.5 bins (5 a/b units, Zhang et al.'s sigma) by ``scipy.ndimage.gaussian_filter``.
    """
    from scipy.ndimage import gaussian_filter  # scipy comes with scikit-image

    counts = np.zeros(NUM_BINS)
    for photo in photos:
        im = Image.fromarray(photo)
        im.thumbnail((side, side), Image.Resampling.BILINEAR)
        ab = rgb2lab(np.asarray(im, dtype=np.float32) / 255.0)[:, :, 1:]
        t = torch.from_numpy(ab.astype(np.float32)).permute(2, 0, 1)[None]
        counts += np.bincount(nearest_bin(t).ravel().numpy(), minlength=NUM_BINS)
    prior = gaussian_filter(counts.reshape(GRID, GRID), sigma=0.5, mode="constant").ravel()
    return prior / max(prior.sum(), 1e-12)


def rebalance_weights(prior: np.ndarray, lam: float = REBALANCE_LAMBDA) -> torch.Tensor:
    """Zhang et al.'s class-rebalancing weights (NUM_BINS,) float32: ``w ~ 1 / ((1 - lam) p + lam / Q)``,
    scaled so that their expectation under ``prior`` (NUM_BINS,) is 1."""
    w = 1.0 / ((1.0 - lam) * prior + lam / len(prior))
    return torch.from_numpy(w / float((prior * w).sum())).float()


def decode_ab(output: torch.Tensor) -> torch.Tensor:
    """Network output (N, C, h, w) -> CIE a/b (N, 2, h, w) float32.

    C = 2: the regression head, a/b / :data:`AB_SCALE`. C = :data:`NUM_BINS`: bin logits, decoded with the annealed
    mean ``sum_q softmax(z / T)_q * centre_q`` (T = :data:`ANNEAL_T`).

    Raises:
        ValueError: any other channel count.
    """
    c = output.shape[1]
    if c == 2:
        return output.float() * AB_SCALE
    if c == NUM_BINS:
        p = torch.softmax(output.float() / ANNEAL_T, dim=1)
        return torch.einsum("nqhw,qc->nchw", p, bin_centres().to(p.device))
    raise ValueError(f"an a/b colorizer has 2 (a/b) or {NUM_BINS} (bin) output channels, not {c}")


class LabColorizeTask(ColorizeTask):
    """Gray photo -> RGB through predicted CIE a/b (models such as ``unet-colorize-mobilenetv2``).

    Input to the network: (1, h, w) luminance in [0, 1] at the working size (longest side, aspect kept).
    Output of the network: (2, h, w) a/b / 110 or (529, h, w) bin logits (:func:`decode_ab`); the decoded a/b are
    upsampled to the photo and joined with its own L exactly as for ``unet-colorize``.
    Training target: (3, h, w) float32 = (L / 100, a / 110, b / 110) of the crop (``skimage.color.rgb2lab``);
    the loss uses a/b, the validation metrics rebuild sRGB from the true L and the predicted a/b.
    """

    export_io = ("gray", "ab", GRAY_INPUT,
                 f"CIE a/b divided by {AB_SCALE:g} (2 channels), or logits over {NUM_BINS} a/b bins (annealed mean, "
                 f"T = {ANNEAL_T}); join with the photo's own L")

    #: Rebalancing strength (``lambda`` of :func:`rebalance_weights`): 1 weighs every colour alike, smaller values
    #: weigh rare colours more.
    rebalance_lambda = REBALANCE_LAMBDA

    def __init__(self, spec, size: int | None = None) -> None:
        super().__init__(spec, size)
        self.weights = torch.ones(NUM_BINS)  # uniform until prepare_training has seen the training photos

    def prepare_training(self, photos: list[np.ndarray]) -> None:
        """The rebalancing weights from the training photos' colours (:func:`ab_prior`, :func:`rebalance_weights`)."""
        self.weights = rebalance_weights(ab_prior(photos), self.rebalance_lambda)

    def ab_of(self, output: torch.Tensor) -> torch.Tensor:
        """(C, h, w) network output -> (2, h, w) float32 CIE a/b (:func:`decode_ab`)."""
        return decode_ab(output[None])[0]

    def training_pair(self, rgb: np.ndarray, mask: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        lab = rgb2lab(rgb).astype(np.float32)
        return chw(rgb2gray(rgb)), chw(lab / np.array([100.0, AB_SCALE, AB_SCALE], np.float32))

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Rebalanced Huber loss on a/b (2 outputs) or rebalanced soft cross-entropy over the bins (529 outputs,
        on every second pixel of every second row: the bins' logits at full size would take gigabytes)."""
        ab = target[:, 1:].float() * AB_SCALE
        weights = self.weights.to(output.device)
        if output.shape[1] == 2:
            err = F.smooth_l1_loss(output.float(), target[:, 1:].float(), beta=HUBER_BETA, reduction="none").sum(1)
            return (weights[nearest_bin(ab)] * err).mean()
        logits, ab = output[:, :, ::2, ::2].float(), ab[:, :, ::2, ::2]
        idx, soft = soft_bins(ab)
        ce = -(F.log_softmax(logits, dim=1).gather(1, idx) * soft).sum(1)
        return (weights[nearest_bin(ab)] * ce).mean()

    def metrics(self, output: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """PSNR (dB) and colourfulness of sRGB rebuilt from the true L and the predicted a/b (kornia's
        ``lab_to_rgb``), and the colourfulness of the crop itself."""
        from kornia.color import lab_to_rgb  # 0.25 s of import: only where validation needs it

        lightness = target[:, :1].float() * 100.0
        out = lab_to_rgb(torch.cat([lightness, decode_ab(output)], dim=1), clip=True)
        ref = lab_to_rgb(torch.cat([lightness, target[:, 1:].float() * AB_SCALE], dim=1), clip=True)
        return {"psnr": psnr(out, ref), "colorfulness": colorfulness(out), "colorfulness_target": colorfulness(ref)}
