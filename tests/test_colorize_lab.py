"""The a/b colorizer's colour maths (issue 16, unetcli/tasks/colorize_lab.py) on real photos: bins, soft
encoding, the rebalancing prior and weights, annealed-mean decoding, and training pairs whose L/a/b rebuild the
photo."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.color import lab2rgb, rgb2lab

from conftest import held_out_photos, skimage_photo
from unetcli.models.registry import get_spec
from unetcli.tasks import make_task
from unetcli.tasks.colorize_lab import (AB_SCALE, NUM_BINS, REBALANCE_LAMBDA, ab_prior, bin_centres, decode_ab,
                                        nearest_bin, rebalance_weights, soft_bins)


def _photos() -> list[np.ndarray]:
    return [np.asarray(Image.open(p).convert("RGB")) for p in held_out_photos()] + [skimage_photo("coffee")]


def _ab(photo: np.ndarray) -> torch.Tensor:
    """(1, 2, H, W) float32 CIE a/b of an (H, W, 3) uint8 photo."""
    return torch.from_numpy(rgb2lab(photo / 255.0)[:, :, 1:].astype(np.float32)).permute(2, 0, 1)[None]


def test_soft_encoding_is_a_distribution_whose_mean_is_the_colour():
    ab = _ab(skimage_photo("coffee"))
    idx, w = soft_bins(ab)
    assert idx.min() >= 0 and idx.max() < NUM_BINS
    torch.testing.assert_close(w.sum(1), torch.ones_like(w[:, 0]))
    assert (w >= 0).all()
    # Bilinear weights over the 4 surrounding centres: their weighted mean is the colour itself.
    mean = torch.einsum("nkhw,nkhwc->nchw", w, bin_centres()[idx])
    torch.testing.assert_close(mean, ab, atol=1e-3, rtol=0)
    # The nearest bin is one of the four, and it is within half a bin (5 units) on each axis.
    assert (idx == nearest_bin(ab)[:, None]).any(1).all()
    assert (bin_centres()[nearest_bin(ab)].permute(0, 3, 1, 2) - ab).abs().max() <= 5.0 + 1e-4


def test_annealed_mean_of_peaked_logits_is_that_bin_and_regression_is_scaled():
    centres = bin_centres()
    logits = torch.full((1, NUM_BINS, 2, 3), -30.0)
    chosen = [0, 100, 264, 300, 528, 17]  # 264: a = b = 0 (the centre of the grid)
    for k, q in enumerate(chosen):
        logits[0, q, k // 3, k % 3] = 30.0
    ab = decode_ab(logits)
    torch.testing.assert_close(ab[0].permute(1, 2, 0).reshape(-1, 2), centres[chosen])
    assert centres[264].tolist() == [0.0, 0.0]
    two = torch.randn(1, 2, 4, 4) * 0.3
    torch.testing.assert_close(decode_ab(two), two * AB_SCALE)
    with pytest.raises(ValueError, match="not 3"):
        decode_ab(torch.zeros(1, 3, 4, 4))


def test_prior_of_real_photos_favours_gray_and_weights_favour_rare_colours():
    photos = _photos()
    prior = ab_prior(photos)
    assert prior.shape == (NUM_BINS,) and abs(prior.sum() - 1) < 1e-9 and (prior >= 0).all()
    neutral = int(nearest_bin(torch.zeros(1, 2, 1, 1))[0, 0, 0])
    assert prior.argmax() == neutral or prior[neutral] > 10 / NUM_BINS  # real photos are mostly low chroma
    w = rebalance_weights(prior).double().numpy()
    assert abs((prior * w).sum() - 1) < 1e-6  # expectation 1 under the prior, as Zhang et al. normalise
    saturated = int(nearest_bin(torch.tensor([[[[60.0]], [[60.0]]]]))[0, 0, 0])  # an orange far from gray
    assert w[saturated] > 2 * w[neutral]
    # lambda > 0 bounds the spread: largest / smallest <= 1 + (1 - lambda) Q / lambda (a bin of p = 0 vs p = 1)
    assert w.max() / w.min() <= 1 + (1 - REBALANCE_LAMBDA) * NUM_BINS / REBALANCE_LAMBDA + 1e-6


def test_training_pair_rebuilds_the_photo_and_the_loss_prefers_the_true_colours():
    task = make_task(get_spec("unet-colorize-mobilenetv2"))
    rgb = np.asarray(Image.open(held_out_photos()[0]).convert("RGB").resize((96, 64)), np.float32) / 255.0
    x, y = task.training_pair(rgb)
    assert x.shape == (1, 64, 96) and y.shape == (3, 64, 96) and x.dtype == y.dtype == torch.float32
    lab = (y.permute(1, 2, 0).numpy() * np.array([100.0, AB_SCALE, AB_SCALE])).astype(np.float64)
    assert np.abs(lab2rgb(lab) - rgb).max() < 1e-3
    task.prepare_training([(rgb * 255).astype(np.uint8)])
    truth = y[None, 1:]
    assert float(task.loss(truth, y[None])) < 1e-6
    assert float(task.loss(torch.zeros_like(truth), y[None])) > float(task.loss(truth * 0.8, y[None]))
    # Bin logits: peaked on the true colour's bins beats peaked on gray.
    idx, w = soft_bins(truth * AB_SCALE)
    right = torch.full((1, NUM_BINS, 64, 96), -5.0).scatter_add(1, idx, w * 10)
    gray = torch.full((1, NUM_BINS, 64, 96), -5.0)
    gray[:, 264] = 5.0
    assert float(task.loss(right, y[None])) < float(task.loss(gray, y[None]))
    m = task.metrics(truth, y[None])
    assert float(m["psnr"][0]) > 40 and abs(float(m["colorfulness"][0]) - float(m["colorfulness_target"][0])) < 0.5
