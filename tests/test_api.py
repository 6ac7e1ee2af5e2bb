"""The Python API (``unetcli.load`` / ``list_models`` / ``Predictor``): the README example on real photos for the
four seed models and seg's output types, same pixels as ``unetcli predict``, inputs, errors, cheap import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import unetcli
from conftest import held_out_photos, skimage_photo
from unetcli.engine.predict import PredictOptions, predict
from unetcli.errors import InputError, UsageError, WeightsError
from unetcli.models.registry import list_models as registry_models

#: The four seed models (alias -> weights: None = shipped, "random" = random_weights fixture).
SEED_MODELS = {"colorize": None, "decolorize": None, "simple-black": None, "seg": "random"}


@pytest.fixture(scope="module")
def seg_weights(random_weights) -> Path:
    return random_weights("unet-seg")


def _weights(alias: str, seg_weights: Path) -> str | None:
    return str(seg_weights) if SEED_MODELS[alias] == "random" else None


def test_import_is_cheap_and_exports_the_api():
    code = "import sys, unetcli; print('torch' in sys.modules, sorted(set(dir(unetcli)) & {'load', 'list_models', " \
           "'Predictor'}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split(None, 1)[0] == "False", out
    assert "'Predictor', 'list_models', 'load'" in out


def test_list_models_is_the_registry():
    assert unetcli.list_models() == registry_models()
    assert {"unet-colorize", "unet-decolorize", "unet-seg", "simple-black"} <= set(unetcli.list_models())
    assert unetcli.list_models("unet-seg*") == [n for n in registry_models() if n.startswith("unet-seg")]


@pytest.mark.parametrize("alias", list(SEED_MODELS))
def test_readme_example_gives_the_cli_pixels_on_real_photos(alias, seg_weights, tmp_path):
    # The README's example, on the held-out photos; the CLI's predict (same Predictor) must write the same pixels.
    # One photo per forward pass on both sides: fp32 convolutions over a batch of 4 may differ from batch 1 in the
    # last bit (seen with one thread: 2 pixels of 204,480 off by 1/255), which is not what this test is about.
    photos = held_out_photos()
    predictor = unetcli.load(alias, weights=_weights(alias, seg_weights), device="cpu", precision="fp32")
    assert isinstance(predictor, unetcli.Predictor)
    outputs = [predictor(Image.open(p)) for p in photos]
    s = predict(PredictOptions(model=alias, source=str(photos[0].parent), output=tmp_path, device="cpu",
                               precision="fp32", weights=_weights(alias, seg_weights), workers=0, batch_size=1),
                show_progress=False)
    assert s.done == len(photos) and s.failed == 0
    for photo, out in zip(photos, outputs):
        with Image.open(photo) as im:
            assert out.size == im.size
        assert out.mode == {"colorize": "RGB", "seg": "L"}.get(alias, "L")
        with Image.open(tmp_path / (photo.stem + ".png")) as written:
            np.testing.assert_array_equal(np.asarray(out), np.asarray(written))


@pytest.mark.parametrize("output_type, mode", [("mask", "L"), ("overlay", "RGB"), ("cutout", "RGBA"),
                                               ("palette", "P")])
def test_seg_output_types(output_type, mode, seg_weights):
    photo = skimage_photo("astronaut")[::4, ::4]
    seg = unetcli.load("seg", weights=seg_weights, device="cpu", precision="fp32", output_type=output_type)
    out = seg(photo)
    assert out.mode == mode and out.size == (photo.shape[1], photo.shape[0])
    mask = np.asarray(unetcli.load("seg", weights=seg_weights, device="cpu", precision="fp32")(photo))
    if output_type == "cutout":
        np.testing.assert_array_equal(np.asarray(out.getchannel("A")), mask)
    if output_type == "palette":
        np.testing.assert_array_equal(np.asarray(out) * 255, mask)


def test_predict_batch_equals_one_at_a_time_and_takes_arrays(seg_weights):
    seg = unetcli.load("seg", weights=seg_weights, device="cpu", precision="fp32", batch_size=2)
    images = [Image.fromarray(skimage_photo("coffee")[::3, ::3]), skimage_photo("chelsea")[::3, ::3],
              np.asarray(Image.fromarray(skimage_photo("rocket")[::3, ::3]).convert("L"))]
    batch = seg.predict_batch(images)
    assert len(batch) == 3
    for im, out in zip(images, batch):
        np.testing.assert_array_equal(np.asarray(out), np.asarray(seg(im)))


def test_gray_array_and_alpha_follow_the_cli_rules():
    decolorize = unetcli.load("decolorize", device="cpu", precision="fp32")
    rgba = np.dstack([skimage_photo("rocket")[::4, ::4], np.full(skimage_photo("rocket")[::4, ::4].shape[:2], 200,
                                                                 np.uint8)])
    out = decolorize(rgba)
    assert out.mode == "LA" and np.all(np.asarray(out.getchannel("A")) == 200)
    colorize = unetcli.load("colorize", device="cpu", precision="fp32")
    gray = np.asarray(Image.fromarray(skimage_photo("chelsea")).convert("L"))
    assert colorize(gray).mode == "RGB" and colorize(gray).size == (gray.shape[1], gray.shape[0])


def test_load_a_weights_file_by_path(seg_weights):
    predictor = unetcli.load(str(seg_weights), device="cpu", precision="fp32")
    assert predictor.spec.name == "unet-seg"
    shipped = Path(unetcli.__file__).resolve().parent.parent / "weights" / "simple-black.safetensors"
    if shipped.is_file():
        assert unetcli.load(shipped, device="cpu").spec.name == "simple-black"


def test_errors_are_the_cli_exceptions(tmp_path):
    with pytest.raises(UsageError, match="unknown model 'nope'"):
        unetcli.load("nope")
    with pytest.raises(UsageError, match="--output-type"):
        unetcli.load("colorize", output_type="overlay")
    with pytest.raises(UsageError, match="expected one of mask, overlay, cutout"):
        unetcli.load("seg", output_type="sketch")
    with pytest.raises(UsageError, match="--threshold"):
        unetcli.load("seg", threshold=1.5)
    with pytest.raises(WeightsError, match="not found"):
        unetcli.load("decolorize", weights=tmp_path / "missing.safetensors", device="cpu")
    decolorize = unetcli.load("decolorize", device="cpu")
    with pytest.raises(InputError, match="uint8"):
        decolorize(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(InputError, match="PIL image"):
        decolorize("photo.jpg")


def test_every_subpackage_is_packaged():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    root = Path(unetcli.__file__).resolve().parent
    pyproject = tomllib.loads((root.parent / "pyproject.toml").read_text())
    packaged = set(pyproject["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(root.parent).parts) for p in root.rglob("__init__.py")}
    assert found <= packaged, found - packaged
