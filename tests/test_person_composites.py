"""examples/recipes/make_person_composites.py: the person-segmentation training data of issue 15.

Real data: the pool given to the recipe is made of real pixels from tests/data (people cut out of the held-out
composites by their exact masks; background photos from tests/data/photos), run through the recipe as a
subprocess, as train_seg_mobilenetv2.sh runs it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from conftest import DATA

RECIPE = Path(__file__).resolve().parents[1] / "examples" / "recipes" / "make_person_composites.py"


def _cutout(stem: str) -> Image.Image:
    """The people of a tests/data composite as an RGBA cut-out (alpha = its exact mask), cropped to them."""
    rgb = Image.open(DATA / "person-composites" / "images" / f"{stem}.jpg").convert("RGB")
    mask = Image.open(DATA / "person-composites" / "masks" / f"{stem}.png").convert("L")
    rgb.putalpha(mask)
    return rgb.crop(mask.getbbox())


def _pool(root: Path, suited_person_name: str) -> Path:
    """A shared-data-shaped pool: two person cut-outs, three object cut-outs (one of them real people, saved under
    ``suited_person_name``), four background photos in a training package."""
    (root / "cutouts" / "person").mkdir(parents=True)
    (root / "cutouts" / "object").mkdir(parents=True)
    (root / "photos" / "pkg").mkdir(parents=True)
    _cutout("00001").save(root / "cutouts" / "person" / "anna-1.png")
    _cutout("00002").save(root / "cutouts" / "person" / "dan1.png")
    # sorted objects: train takes those at positions 1 and 2 of every three, so both land in training composites
    _cutout("00004").save(root / "cutouts" / "object" / "tuxpaint_abalone.png")
    _cutout("00005").save(root / "cutouts" / "object" / f"{suited_person_name}.png")
    _cutout("00006").save(root / "cutouts" / "object" / "tuxpaint_zebra.png")
    for photo in sorted((DATA / "photos").glob("*.jpg")):
        shutil.copy(photo, root / "photos" / "pkg" / photo.name)
    return root


def _build(pool: Path, out: Path) -> dict:
    r = subprocess.run([sys.executable, str(RECIPE), "--data", str(pool), "--out", str(out), "--train", "24",
                        "--val", "0", "--side", "128"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads((out / "composites.json").read_text())


def test_object_cut_outs_of_real_people_are_person_in_the_masks_and_change_nothing_else(tmp_path):
    """The firefighter and the astronaut among the object cut-outs are real people: pasted as distractors are
    (the same images, pixel for pixel), but their visible pixels are person in the mask; before 2026-12-05 they
    were labelled background and taught that people in suits are not people. An object under any other name keeps
    the mask of the people alone."""
    plain = _build(_pool(tmp_path / "pool-a", "tuxpaint_spacewalk_"), tmp_path / "a")
    suited = _build(_pool(tmp_path / "pool-b", "tuxpaint_spacewalk"), tmp_path / "b")
    assert suited["objects_showing_people"] == ["tuxpaint_fireman240a", "tuxpaint_spacewalk"]
    grew = 0
    for a, b in zip(plain["splits"]["train"]["items"], suited["splits"]["train"]["items"]):
        image_a = np.asarray(Image.open(tmp_path / "a" / "train" / "images" / a["image"]))
        image_b = np.asarray(Image.open(tmp_path / "b" / "train" / "images" / b["image"]))
        assert np.array_equal(image_a, image_b), a["image"]
        stem = Path(a["image"]).stem + ".png"
        mask_a = np.asarray(Image.open(tmp_path / "a" / "train" / "masks" / stem)) > 127
        mask_b = np.asarray(Image.open(tmp_path / "b" / "train" / "masks" / stem)) > 127
        if any("spacewalk" in o for o in b["objects"]):
            assert not (mask_a & ~mask_b).any(), f"{stem}: a person pixel became background"
            grew += int((mask_b & ~mask_a).sum() > 20)
        else:
            assert np.array_equal(mask_a, mask_b), stem
    assert grew >= 3, f"only {grew} composites show the suited person"
