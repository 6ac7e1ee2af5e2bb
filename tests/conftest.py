"""Shared fixtures: real photos (scikit-image's sample photos and a few held-out photos in tests/data), weights
for models that have no shipped ones yet, and a helper that runs the real ``unetcli`` command in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

if os.environ.get("PYTEST_XDIST_WORKER") and "OMP_NUM_THREADS" not in os.environ:
    # The suite runs in one pytest-xdist worker per core (pyproject's addopts), and most tests start `unetcli`
    # subprocesses: one compute thread each, or two workers' processes with a thread per core each spin against
    # one another (OpenMP busy-waits) on a 2-core machine. Set before torch is imported here or in any child.
    os.environ["OMP_NUM_THREADS"] = "1"

import numpy as np
import pytest
import torch
from PIL import Image
import skimage.data

from unetcli.models.registry import get_spec
from unetcli.weights import load_pretrained_encoder, save_weights

TESTS = Path(__file__).parent
DATA = TESTS / "data"
#: scikit-image's bundled colour photographs (never used for training): independent test images.
SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


def skimage_photo(name: str) -> np.ndarray:
    """(H, W, 3) uint8 sRGB photo bundled with scikit-image."""
    return getattr(skimage.data, name)()


def held_out_photos() -> list[Path]:
    """Photos from ../shared/data/photos kept out of training (the validation split), copied into tests/data."""
    return sorted(p for p in (DATA / "photos").glob("*.jpg"))


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600, env_extra: dict | None = None,
            **kwargs) -> subprocess.CompletedProcess:
    """Run ``python -m unetcli ARGS`` as a real subprocess (stdout/stderr captured as text)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "unetcli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=env, **kwargs)


@pytest.fixture(scope="session")
def photo_folder(tmp_path_factory) -> Path:
    """A folder of real photos in mixed sizes, formats and modes: JPEG and PNG RGB, gray L, RGBA with alpha,
    a palette PNG, a 16-bit gray PNG, and a CMYK JPEG (all from scikit-image's sample photos, downscaled)."""
    folder = tmp_path_factory.mktemp("photos")
    astro = Image.fromarray(skimage_photo("astronaut")).resize((200, 200))
    coffee = Image.fromarray(skimage_photo("coffee")).resize((150, 100))
    chelsea = Image.fromarray(skimage_photo("chelsea"))  # 451x300, odd width
    rocket = Image.fromarray(skimage_photo("rocket")).resize((97, 65))
    astro.save(folder / "astronaut.jpg", quality=92)
    coffee.save(folder / "coffee.png")
    chelsea.convert("L").save(folder / "chelsea gray.png")
    rgba = rocket.convert("RGBA")
    alpha = np.zeros((65, 97), np.uint8)
    alpha[10:55, 20:80] = 255
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(folder / "rocket_rgba.png")
    coffee.convert("P", palette=Image.Palette.ADAPTIVE).save(folder / "coffee_palette.png")
    g16 = (np.asarray(chelsea.convert("L").resize((120, 80)), np.uint16) * 257)
    Image.fromarray(g16).save(folder / "chelsea16.png")
    astro.resize((90, 90)).convert("CMYK").save(folder / "astronaut_cmyk.jpg")
    return folder


@pytest.fixture(scope="session")
def random_weights(tmp_path_factory):
    """Factory: path to fp16 safetensors of a freshly initialised registry model (with random BatchNorm
    statistics, so eval-mode outputs are not trivial; a pretrained encoder keeps its shipped ImageNet weights),
    for models whose shipped weights do not exist."""
    folder = tmp_path_factory.mktemp("weights")

    def make(name: str, **kwargs) -> Path:
        spec = get_spec(name)
        torch.manual_seed(0)
        model = spec.factory(**kwargs)
        pretrained = set()
        if spec.encoder_weights:  # every model of this kind starts from its shipped ImageNet encoder
            load_pretrained_encoder(model, spec)
            pretrained = set(model.encoder.modules())
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d) and m not in pretrained:
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
        path = folder / f"{spec.name}-{len(kwargs)}.safetensors"
        save_weights(model, path, {"model": spec.name})
        return path

    return make
