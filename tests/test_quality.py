"""The shipped weights do their job on real photos kept out of training, at full resolution.

Bars (issue 2): against ``skimage.color.rgb2gray`` of the photo, PSNR >= 45 dB for simple-black and >= 40 dB for
unet-decolorize, per photo, on held-out photos of the training pool (tests/data/photos, from the validation split)
and on scikit-image's bundled photos (never used for training), in the default precision and in fp32.
"""

from __future__ import annotations

import json

import pytest
from PIL import Image

from conftest import SKIMAGE_PHOTOS, held_out_photos, skimage_photo
from unetcli.devices import cpu_has_fast_bf16
from unetcli.engine.evaluate import evaluate_photos
from unetcli.weights import shipped_weights
from unetcli.models.registry import get_spec

BARS = {"simple-black": 45.0, "unet-decolorize": 40.0}
PRECISIONS = ["fp32"] + (["bf16"] if cpu_has_fast_bf16() else [])


@pytest.fixture(scope="module")
def test_photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("skimage")
    paths = []
    for name in SKIMAGE_PHOTOS:
        Image.fromarray(skimage_photo(name)).save(folder / f"{name}.png")
        paths.append(folder / f"{name}.png")
    return held_out_photos() + paths


def test_held_out_photos_really_were_held_out():
    for model in BARS:
        card = json.loads(shipped_weights(get_spec(model)).with_suffix(".json").read_text())
        held_out = {p.rsplit("/", 1)[-1] for p in card["metrics"]["evaluation"]["held_out_photos"]}
        assert {p.name for p in held_out_photos()} <= held_out, model


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("model", list(BARS))
def test_gray_models_match_rgb2gray_at_full_resolution(model, precision, test_photos):
    rows = evaluate_photos(model, test_photos, precision=precision, workers=0)
    worst = min(rows, key=lambda r: r["psnr"])
    assert worst["psnr"] >= BARS[model], worst
    assert len(rows) == len(test_photos) >= 8


# bf16 vs fp32 outputs of every bf16_faithful model (unet-decolorize included): tests/test_precision.py.
