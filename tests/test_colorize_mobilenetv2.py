"""unet-colorize-mobilenetv2 (issue 16) end to end on real photos: training from the ImageNet encoder with the
rebalanced loss and ``--best-metric``, then ``predict``: size and the photo's own L kept, a/b in range."""

from __future__ import annotations

import csv
import json

import numpy as np
from PIL import Image
from skimage.color import rgb2lab

from conftest import DATA, run_cli

NAME = "unet-colorize-mobilenetv2"
PHOTOS = DATA / "photos"


def test_training_picks_the_best_epoch_by_the_metric_asked_for_and_predict_keeps_lightness(tmp_path):
    run = tmp_path / "run"
    r = run_cli("train", "-m", NAME, "--data", PHOTOS, "--size", "64", "--batch-size", "2", "--workers", "0",
                "--val-split", "0.25", "--epochs", "3", "--lr", "3e-3", "--best-metric", "colorfulness",
                "--out", run)
    assert r.returncode == 0, r.stderr
    assert "encoder initialised from mobilenetv2-imagenet.safetensors" in r.stderr
    with open(run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3
    card = json.loads((run / f"{NAME}.json").read_text())
    best = max(rows, key=lambda row: float(row["val_colorfulness"]))
    assert card["metrics"]["best_metric"] == "colorfulness"
    assert card["metrics"]["best_epoch"] == int(best["epoch"])
    assert card["training"]["loss"] == "rebalanced-huber"

    photo = sorted(PHOTOS.glob("*.jpg"))[0]
    gray = Image.open(photo).convert("L")
    gray.save(tmp_path / "gray.png")
    r = run_cli("predict", "-w", run / f"{NAME}.safetensors", tmp_path / "gray.png", tmp_path / "colour.png")
    assert r.returncode == 0, r.stderr
    out = Image.open(tmp_path / "colour.png")
    assert out.mode == "RGB" and out.size == gray.size
    lab_out = rgb2lab(np.asarray(out, np.float64) / 255.0)
    lab_in = rgb2lab(np.repeat(np.asarray(gray, np.float64)[..., None] / 255.0, 3, axis=2))
    # 8-bit rounding of R, G and B moves L by at most ~0.4 (more in the darkest shadows).
    assert np.percentile(np.abs(lab_out[..., 0] - lab_in[..., 0]), 99.9) <= 0.6
    assert np.abs(lab_out[..., 1:]).max() <= 128


def test_best_metric_must_be_one_the_model_validates(tmp_path):
    r = run_cli("train", "-m", NAME, "--data", PHOTOS, "--best-metric", "iou", "--out", tmp_path / "run")
    assert r.returncode == 2
    assert "--best-metric iou: unet-colorize-mobilenetv2 validates loss, psnr, colorfulness" in r.stderr
    assert not (tmp_path / "run").exists()
