"""unet-seg (issue 4): DATA/images + DATA/masks training, IoU/Dice, mask / overlay / cut-out outputs, data errors.

Real images: person composites of held-out people and backgrounds (tests/data/person-composites: the first 8
validation composites of examples/recipes/make_person_composites.py as it was before the cut-out hue/shape jitter
was added; real cut-outs on real photos from ../shared/data, sources and licences in LICENSES.tsv) and
scikit-image's astronaut photo.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import f1_score, jaccard_score

from conftest import DATA, run_cli, skimage_photo
from unetcli.data import load_segmentation_pairs
from unetcli.losses import bce_dice_loss, ce_dice_loss
from unetcli.metrics import iou_dice
from unetcli.models.registry import get_spec
from unetcli.weights import shipped_weights

COMPOSITES = DATA / "person-composites"


def _copy_data(dst: Path) -> Path:
    shutil.copytree(COMPOSITES, dst, ignore=shutil.ignore_patterns("*.tsv"))
    return dst


def _train(data: Path, out: Path, *extra: str):
    return run_cli("train", "-m", "seg", "--data", data, "--out", out, "--size", "32", "--batch-size", "2",
                   "--workers", "0", "--val-split", "0.25", *extra)


# --- metrics and losses ---------------------------------------------------------------------------------------

def test_iou_and_dice_match_a_hand_computed_case():
    pred = torch.zeros(1, 4, 4, dtype=torch.bool)
    target = torch.zeros(1, 4, 4, dtype=torch.bool)
    pred[0, :2, :3] = True    # 6 pixels
    target[0, :2, 1:] = True  # 6 pixels, 4 shared
    iou, dice = iou_dice(pred, target)
    assert iou.item() == pytest.approx(4 / 8)     # |P & T| = 4, |P | T| = 8
    assert dice.item() == pytest.approx(8 / 12)   # 2 * 4 / (6 + 6)


def test_iou_and_dice_agree_with_scikit_learn_on_real_masks():
    for path in sorted((COMPOSITES / "masks").glob("*.png")):
        target = torch.from_numpy(np.asarray(Image.open(path)) > 127)[None]
        shifted = torch.roll(target, shifts=(3, -5), dims=(1, 2))  # a plausible, imperfect prediction
        iou, dice = iou_dice(shifted, target)
        t, p = target.flatten().numpy(), shifted.flatten().numpy()
        assert iou.item() == pytest.approx(jaccard_score(t, p, zero_division=1.0), abs=1e-6), path.name
        assert dice.item() == pytest.approx(f1_score(t, p, zero_division=1.0), abs=1e-6), path.name
    empty = torch.zeros(1, 8, 8, dtype=torch.bool)
    assert [v.item() for v in iou_dice(empty, empty)] == [1.0, 1.0]


def test_losses_are_small_for_confident_right_answers_and_large_for_wrong_ones():
    target = torch.from_numpy(np.asarray(Image.open(COMPOSITES / "masks" / "00000.png")) > 127).float()[None, None]
    right, wrong = (target * 2 - 1) * 12, (1 - 2 * target) * 12
    assert bce_dice_loss(right, target) < 0.01 < 1.5 < bce_dice_loss(wrong, target)
    idx = target[:, 0].long()
    logits = torch.nn.functional.one_hot(idx, 3).permute(0, 3, 1, 2).float() * 12
    assert ce_dice_loss(logits, idx) < 0.01
    assert ce_dice_loss(logits.roll(1, dims=1), idx) > 1.0


# --- data errors ----------------------------------------------------------------------------------------------

def test_a_corrupt_mask_is_named_and_nothing_starts(tmp_path):
    data = _copy_data(tmp_path / "data")
    bad = data / "masks" / "00003.png"
    bad.write_bytes(bad.read_bytes()[:60])  # truncated PNG
    r = _train(data, tmp_path / "run", "--epochs", "1")
    assert r.returncode == 2, r.stderr
    assert "00003.png" in r.stderr and "cannot read the mask" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "run" / "last.pt").exists()


def test_missing_mask_size_mismatch_and_bad_index_are_all_listed(tmp_path):
    data = _copy_data(tmp_path / "data")
    (data / "masks" / "00001.png").unlink()
    Image.open(data / "masks" / "00002.png").resize((50, 40)).save(data / "masks" / "00002.png")
    r = _train(data, tmp_path / "run", "--epochs", "1")
    assert r.returncode == 2
    assert "00001.jpg: no mask" in r.stderr
    assert "mask is 50x40 but its image 00002.jpg is" in r.stderr
    assert "Traceback" not in r.stderr

    three = _copy_data(tmp_path / "three")
    Image.fromarray(np.full((20, 20), 5, np.uint8)).resize(Image.open(three / "images" / "00004.jpg").size).save(
        three / "masks" / "00004.png")
    r = _train(three, tmp_path / "run3", "--epochs", "1", "--classes", "3")
    assert r.returncode == 2
    assert "00004.png: class index 5 out of range for --classes 3 (expected 0..2)" in r.stderr

    rgb = _copy_data(tmp_path / "rgb")
    Image.open(rgb / "images" / "00000.jpg").save(rgb / "masks" / "00000.png")
    r = _train(rgb, tmp_path / "run4", "--epochs", "1")
    assert r.returncode == 2 and "mask is mode RGB" in r.stderr


def test_masks_follow_exif_rotated_images_in_either_orientation(tmp_path):
    """A sideways-stored JPEG (EXIF orientation 6) is read upright; its mask may be drawn on the upright photo or
    follow the stored pixels (tools that ignore EXIF): both give the upright mask."""
    from unetcli.data import load_segmentation_pairs

    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    with Image.open(COMPOSITES / "images" / "00000.jpg") as im:
        upright = im.convert("RGB")
    mask = Image.open(COMPOSITES / "masks" / "00000.png")
    assert upright.width != upright.height
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90 degrees clockwise
    for stem in ("shown", "stored"):
        upright.transpose(Image.Transpose.ROTATE_90).save(data / "images" / f"{stem}.jpg", exif=exif, quality=95)
    mask.save(data / "masks" / "shown.png")
    mask.transpose(Image.Transpose.ROTATE_90).save(data / "masks" / "stored.png")
    paths, images, masks = load_segmentation_pairs(data, 1)
    want = (np.asarray(mask) > 127).astype(np.uint8)
    assert [p.name for p in paths] == ["shown.jpg", "stored.jpg"]
    for image, got in zip(images, masks):
        assert image.shape[:2] == want.shape
        np.testing.assert_array_equal(got, want)

    mask.resize((40, 50)).save(data / "masks" / "stored.png")
    r = _train(data, tmp_path / "run", "--epochs", "1")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert (f"stored.png: mask is 40x50 but its image stored.jpg is {upright.width}x{upright.height} "
            "(as shown, after its EXIF orientation)") in r.stderr


def test_milesial_layout_imgs_and_name_mask_gif_reads_the_same_pairs(tmp_path):
    """milesial/Pytorch-UNet's (and Carvana's) layout: data/imgs/NAME.jpg + data/masks/NAME_mask.gif, the masks 0/1
    palette GIFs; it gives the very pixels of our images/ + masks/NAME.png layout."""
    ours = _copy_data(tmp_path / "ours")
    theirs = tmp_path / "theirs"
    (theirs / "masks").mkdir(parents=True)
    shutil.copytree(ours / "images", theirs / "imgs")
    for m in sorted((ours / "masks").glob("*.png")):
        binary = (np.asarray(Image.open(m)) > 127).astype(np.uint8)  # Carvana masks hold 0/1, not 0/255
        gif = Image.fromarray(binary, "P")
        gif.putpalette([0, 0, 0, 255, 255, 255])  # index 0 black, 1 white, as Carvana's GIFs
        gif.save(theirs / "masks" / f"{m.stem}_mask.gif")
    a_paths, a_images, a_masks = load_segmentation_pairs(ours, 1)
    b_paths, b_images, b_masks = load_segmentation_pairs(theirs, 1)
    assert [p.name for p in a_paths] == [p.name for p in b_paths] and len(a_paths) == 8
    assert sum(a.any() for a in a_masks) == 7  # one composite has nobody in it
    for a, b in zip(a_masks, b_masks):
        assert np.array_equal(a, b)
    for a, b in zip(a_images, b_images):
        assert np.array_equal(a, b)
    (theirs / "images").mkdir()  # both folders: ambiguous, refused with one line
    r = _train(theirs, tmp_path / "run", "--epochs", "1")
    assert r.returncode == 2 and "both images/ and imgs/" in r.stderr and "Traceback" not in r.stderr


def test_data_without_masks_folder_is_a_usage_error(tmp_path):
    r = _train(DATA / "photos", tmp_path / "run", "--epochs", "1")
    assert r.returncode == 2 and "no images/ folder" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("train", "-m", "decolorize", "--data", DATA / "photos", "--classes", "3", "--out", tmp_path / "x")
    assert r.returncode == 2 and "only unet-seg has a class count" in r.stderr


# --- training -------------------------------------------------------------------------------------------------

def test_train_on_real_composites_writes_iou_and_dice_and_resumes(tmp_path):
    run = tmp_path / "run"
    r = _train(COMPOSITES, run, "--epochs", "1")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert 0.0 <= float(rows[0]["val_iou"]) <= 1.0 and 0.0 <= float(rows[0]["val_dice"]) <= 1.0
    assert float(rows[0]["val_dice"]) >= float(rows[0]["val_iou"])  # Dice >= IoU for any pair of masks
    card = json.loads((run / "unet-seg.json").read_text())
    assert card["architecture"]["num_classes"] == 1 and card["architecture"]["params"] == 31_043_521
    assert card["training"]["loss"] == "bce+dice"
    r = run_cli("train", "--resume", run, "--epochs", "2", "--workers", "0")
    assert r.returncode == 0, r.stderr
    assert [int(r["epoch"]) for r in csv.DictReader(open(run / "metrics.csv"))] == [1, 2]


def test_separate_validation_folder_and_several_classes(tmp_path):
    """--classes 3 with --val-data: class 1 = person, class 2 = the top quarter of the background."""
    data = _copy_data(tmp_path / "data")
    for p in (data / "masks").glob("*.png"):
        m = np.asarray(Image.open(p)) > 127
        idx = m.astype(np.uint8)
        idx[: m.shape[0] // 4][~m[: m.shape[0] // 4]] = 2
        Image.fromarray(idx).save(p)
    val = tmp_path / "val"
    (val / "images").mkdir(parents=True)
    (val / "masks").mkdir()
    for stem in ("00006", "00007"):
        shutil.move(data / "images" / f"{stem}.jpg", val / "images")
        shutil.move(data / "masks" / f"{stem}.png", val / "masks")
    run = tmp_path / "run"
    r = run_cli("train", "-m", "seg", "--data", data, "--val-data", val, "--classes", "3", "--out", run,
                "--size", "32", "--batch-size", "2", "--workers", "0", "--epochs", "1")
    assert r.returncode == 0, r.stderr
    split = json.loads((run / "split.json").read_text())
    assert len(split["train"]) == 6 and [Path(p).name for p in split["val"]] == ["00006.jpg", "00007.jpg"]
    row = next(csv.DictReader(open(run / "metrics.csv")))
    for key in ("val_iou", "val_dice", "val_iou_0", "val_iou_1", "val_iou_2", "val_dice_2"):
        assert 0.0 <= float(row[key]) <= 1.0, key
    card = json.loads((run / "unet-seg.json").read_text())
    assert card["architecture"]["num_classes"] == 3 and card["training"]["val_data"] == str(val)

    out = tmp_path / "pred"
    r = run_cli("predict", "-m", "seg", "-w", run / "unet-seg.safetensors", val / "images", out, "--palette")
    assert r.returncode == 0, r.stderr
    im = Image.open(out / "00006.png")
    assert im.mode == "P" and im.size == Image.open(val / "images" / "00006.jpg").size
    assert set(np.unique(np.asarray(im))) <= {0, 1, 2}
    assert im.getpalette()[3:6] == [128, 0, 0]  # VOC colour of class 1


# --- prediction -----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def seg_weights(tmp_path_factory):
    """The shipped person model if it exists, else a briefly trained one (outputs are then rough, not empty)."""
    shipped = shipped_weights(get_spec("unet-seg"))
    if shipped is not None:
        return shipped
    run = tmp_path_factory.mktemp("segrun")
    r = _train(COMPOSITES, run, "--epochs", "2")
    assert r.returncode == 0, r.stderr
    return run / "unet-seg.safetensors"


@pytest.fixture(scope="module")
def people_photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("people")
    shutil.copy(COMPOSITES / "images" / "00000.jpg", folder / "composite.jpg")
    Image.fromarray(skimage_photo("astronaut")).resize((300, 300)).save(folder / "astronaut.png")
    Image.open(COMPOSITES / "images" / "00005.jpg").convert("L").save(folder / "gray.png")
    return folder


@pytest.fixture(scope="module")
def three_outputs(seg_weights, people_photos, tmp_path_factory):
    outs = {}
    for kind in ("mask", "overlay", "cutout"):
        out = tmp_path_factory.mktemp(kind)
        r = run_cli("predict", "-m", "seg", "-w", seg_weights, "--output-type", kind, people_photos, out)
        assert r.returncode == 0, r.stderr
        outs[kind] = out
    return outs


def test_masks_have_the_input_size_and_only_0_or_255(three_outputs, people_photos):
    for photo in people_photos.iterdir():
        mask = Image.open(three_outputs["mask"] / f"{photo.stem}.png")
        assert mask.mode == "L" and mask.size == Image.open(photo).size
        assert set(np.unique(np.asarray(mask))) <= {0, 255}


def test_cutout_alpha_equals_the_mask_and_keeps_the_photo(three_outputs, people_photos):
    for photo in people_photos.iterdir():
        cut = Image.open(three_outputs["cutout"] / f"{photo.stem}.png")
        mask = np.asarray(Image.open(three_outputs["mask"] / f"{photo.stem}.png"))
        assert cut.mode == "RGBA" and cut.size == Image.open(photo).size
        np.testing.assert_array_equal(np.asarray(cut.getchannel("A")), mask)
        np.testing.assert_array_equal(np.asarray(cut)[:, :, :3], np.asarray(Image.open(photo).convert("RGB")))


def test_overlay_tints_exactly_the_mask(three_outputs, people_photos):
    for photo in people_photos.iterdir():
        over = np.asarray(Image.open(three_outputs["overlay"] / f"{photo.stem}.png"), np.int16)
        rgb = np.asarray(Image.open(photo).convert("RGB"), np.int16)
        fg = np.asarray(Image.open(three_outputs["mask"] / f"{photo.stem}.png")) > 0
        assert over.shape == rgb.shape
        np.testing.assert_array_equal(over[~fg], rgb[~fg])
        expected = np.rint(0.5 * rgb[fg] + 0.5 * np.array([255, 40, 40]))
        assert np.abs(over[fg] - expected).max(initial=0) <= 1


def test_cutout_needs_a_format_with_alpha(seg_weights, people_photos, tmp_path):
    r = run_cli("predict", "-m", "seg", "-w", seg_weights, "-t", "cutout", "--ext", ".jpg", people_photos, tmp_path)
    assert r.returncode == 2 and "JPEG cannot store" in r.stderr
    r = run_cli("predict", "-m", "seg", "-w", seg_weights, "-t", "outline", people_photos, tmp_path)
    assert r.returncode == 2 and "expected one of mask, overlay, cutout" in r.stderr


#: Issue 15's bars on composites of held-out people on held-out backgrounds: the best person segmenter (the one
#: ``seg`` names) 0.80, the seed architecture 0.60.
COMPOSITE_BARS = {"unet-seg-mobilenetv2": 0.80, "unet-seg": 0.60}


@pytest.mark.parametrize("name", sorted(COMPOSITE_BARS))
def test_shipped_weights_reach_the_iou_bar_on_held_out_composites(tmp_path, name):
    """Quality bar (issue 15), default ``predict`` options, full resolution: the 8 held-out composites in
    tests/data (the first 8 of the validation set, not picked; the 300 are scored by examples/recipes/evaluate.py
    into the model card)."""
    if shipped_weights(get_spec(name)) is None:
        pytest.skip(f"{name} has no shipped weights yet")
    r = run_cli("predict", "-m", name, COMPOSITES / "images", tmp_path)
    assert r.returncode == 0, r.stderr
    stems = sorted(p.stem for p in (COMPOSITES / "masks").glob("*.png"))
    ious = [iou_dice(torch.from_numpy(np.asarray(Image.open(tmp_path / f"{s}.png")) > 127)[None],
                     torch.from_numpy(np.asarray(Image.open(COMPOSITES / "masks" / f"{s}.png")) > 127)[None])[0].item()
            for s in stems]
    assert np.mean(ious) >= COMPOSITE_BARS[name], ious


def test_the_seg_alias_names_the_best_shipped_person_segmenter():
    """``seg`` is "the best we ship for this job": the pretrained-encoder model once its weights ship, until then
    the seed's architecture; ``unet-seg`` is always the seed's exact network."""
    best = "unet-seg-mobilenetv2" if shipped_weights(get_spec("unet-seg-mobilenetv2")) else "unet-seg"
    assert get_spec("seg").name == best
    assert get_spec("unet-seg").params == 31_043_521 and get_spec("unet-seg").seed.startswith("002_")


def test_masks_of_jpegs_decoded_at_a_reduced_scale_match_the_full_decode(tmp_path):
    """The network sees the photo at the working size, so predict decodes a JPEG at the smallest DCT scale (1/2,
    1/4, 1/8) that still covers it and resizes in 8 bits. Against the full-size float32 decode and resize it
    replaced, on 50 real photos: 0.27 % of mask pixels differ with a briefly trained unet-seg-mobilenetv2, 1.1 % with
    the confident random model below, each about half of what running the old pipeline in fp32 instead of the
    default bf16 changes. Bound here: 2 % on the four test photos at working size 64 (longest side; each decoded
    at 1/2 or 1/4 scale; 1.5 % measured), in fp32, so that only the decoding differs."""
    from unetcli.engine.predictor import Predictor
    from unetcli.imageio import read_photo
    from unetcli.tasks import make_task
    from unetcli.tasks.base import chw, resize_float
    from unetcli.weights import save_weights

    photos = sorted((DATA / "photos").glob("*.jpg"))
    torch.manual_seed(0)
    model = get_spec("unet-seg").factory().eval()
    full = [read_photo(p) for p in photos]
    task = make_task(get_spec("unet-seg"), size=64)  # longest side 64, aspect kept
    xs = [chw(resize_float(f.rgb, task.working_shape(f.size))) for f in full]  # the old pipeline: float32 decode
    with torch.inference_mode():
        logits = torch.cat([model(x[None]).flatten() for x in xs])
        # Random weights give nearly flat logits: rescale the last layer so that they spread (std 4) around 0, a
        # model as confident as a trained one, whose masks cover about half of each photo.
        k = 4.0 / logits.std()
        model.out.weight.mul_(k)
        model.out.bias.mul_(k).sub_(logits.median() * k)
    weights = tmp_path / "unet-seg.safetensors"
    save_weights(model, weights, {"model": "unet-seg"})
    r = run_cli("predict", "-m", "seg", "-w", weights, "--size", "64", "--precision", "fp32", DATA / "photos",
                tmp_path / "out")
    assert r.returncode == 0, r.stderr
    pred = Predictor.configure("seg", weights=weights, precision="fp32", size=64).load()
    reference = [pred.task.labels(y, f.size) for y, f in zip(pred.run_inputs(xs), full)]
    differing = total = 0
    for path, want in zip(photos, reference):
        assert read_photo(path, reduce_to=pred.task.reduced_size).full_size is not None, path.name  # was reduced
        assert 0.1 < want.mean() < 0.9, path.name  # the mask has edges to move
        got = np.asarray(Image.open(tmp_path / "out" / f"{path.stem}.png")) > 0
        differing += int((got != want.astype(bool)).sum())
        total += want.size
    print(f"{differing / total:.4%} of mask pixels differ")
    assert differing / total <= 0.02
