"""predict's inputs and outputs (#17): one file in, one file out; ``--weights FILE`` alone names the model;
``--ext auto``; ``--quality``; EXIF and ICC profiles carried from input to output. Real photos, real
subprocesses (``python -m unetcli``), the files on disk checked with Pillow."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image, ImageCms

from conftest import DATA, run_cli
from unetcli.weights import weights_dir

PHOTO = DATA / "photos" / "route66.jpg"  # 384x288 RGB JPEG, no EXIF, no ICC profile
LOG = ".unetcli-outputs.jsonl"
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip()]


def _records(folder: Path) -> list[dict]:
    return [json.loads(ln) for ln in (folder / LOG).read_text().splitlines()]


def _small_photo(path: Path, size: tuple[int, int] = (96, 72), **save) -> Path:
    """A real photo (route66.jpg) scaled down and saved to ``path`` (format from its extension)."""
    with Image.open(PHOTO) as im:
        im.convert("RGB").resize(size).save(path, **save)
    return path


def _camera_jpeg(path: Path) -> Path:
    """A JPEG as a camera writes it: EXIF (make, model, date, GPS, Exif pixel size, orientation 6 = turned 90
    degrees) and an sRGB ICC profile, pixels from a real photo."""
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0112] = "TestMake", "TestModel", 6
    sub = exif.get_ifd(0x8769)
    sub[0x9003], sub[0xA002], sub[0xA003] = "2021:06:05 10:11:12", 96, 72
    exif.get_ifd(0x8825)[0x0001] = "N"  # GPSLatitudeRef
    return _small_photo(path, exif=exif, icc_profile=SRGB, quality=92)


# --------------------------------------------------------------------------------------------------------------
# 1. One file in, one file out.

def test_one_file_in_one_file_out_is_the_file_folder_mode_writes(tmp_path):
    shutil.copy(PHOTO, tmp_path / "photo.jpg")
    r = run_cli("predict", "-m", "decolorize", "-j", "0", "photo.jpg", "photo_gray.png", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "photo_gray.png"
    assert out.is_file()
    with Image.open(out) as im:
        assert (im.format, im.mode, im.size) == ("PNG", "L", (384, 288))
    # Its provenance is in the log of the folder it is in, under its name: the log a folder run there uses too.
    assert [rec["output"] for rec in _records(tmp_path)] == ["photo_gray.png"]
    assert _records(tmp_path)[0]["made_by"]["model"] == "unet-decolorize"
    # The same bytes as the folder run writes for that photo.
    r = run_cli("predict", "-m", "decolorize", "-j", "0", "photo.jpg", "folder", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "folder" / "photo.png").read_bytes() == out.read_bytes()


def test_one_output_file_takes_its_format_from_its_extension_and_a_rerun_skips_it(tmp_path):
    src = _small_photo(tmp_path / "in.png")
    args = ("predict", "-m", "simple-black", "-j", "0", src, tmp_path / "sub" / "OUT.JPG")
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr
    with Image.open(tmp_path / "sub" / "OUT.JPG") as im:
        assert (im.format, im.mode, im.size) == ("JPEG", "L", (96, 72))
    assert not (tmp_path / "OUT.JPG").exists() and sorted(p.name for p in (tmp_path / "sub").iterdir()) == [
        LOG, "OUT.JPG"]  # no temporary left beside it
    r = run_cli(*args)
    assert r.returncode == 0 and "done 0, skipped 1, failed 0" in r.stderr, r.stderr


def test_one_output_file_never_replaces_the_input(tmp_path):
    src = _small_photo(tmp_path / "photo.jpg")
    before = src.read_bytes()
    (tmp_path / "link.jpg").symlink_to(src)
    for out in (src, tmp_path / "link.jpg"):
        r = run_cli("predict", "-m", "simple-black", "--overwrite", src, out)
        assert r.returncode == 2, r.stderr
        assert _lines(r.stderr) == [f"error: OUTPUT {out} is the INPUT file itself: the photo would be replaced; "
                                    f"name another output file (e.g. photo_out.jpg)"]
    assert src.read_bytes() == before and not (tmp_path / LOG).exists()


def test_one_output_file_not_written_by_unetcli_is_never_replaced(tmp_path):
    src = _small_photo(tmp_path / "photo.jpg")
    (tmp_path / "mine.png").write_bytes(b"the user's own file")
    r = run_cli("predict", "-m", "simple-black", "--overwrite", src, tmp_path / "mine.png")
    assert r.returncode == 1, r.stderr
    assert (tmp_path / "mine.png").read_bytes() == b"the user's own file"
    assert f"output {tmp_path / 'mine.png'} exists and unetcli has no record of writing it (in {tmp_path / LOG})" \
        in r.stderr


def test_one_output_file_made_with_other_settings_fails_and_overwrite_replaces_it(tmp_path):
    src = _small_photo(tmp_path / "photo.png")
    out = tmp_path / "gray.jpg"
    assert run_cli("predict", "-m", "simple-black", "-j", "0", "--quality", "90", src, out).returncode == 0
    first = out.read_bytes()
    r = run_cli("predict", "-m", "simple-black", "-j", "0", "--quality", "20", src, out)
    assert r.returncode == 1 and "made with other settings (quality 90); --overwrite replaces it" in r.stderr, r.stderr
    assert out.read_bytes() == first
    r = run_cli("predict", "-m", "simple-black", "-j", "0", "--quality", "20", "--overwrite", src, out)
    assert r.returncode == 0, r.stderr
    assert len(out.read_bytes()) < len(first)
    assert [rec["made_by"]["options"]["quality"] for rec in _records(tmp_path)] == [90, 20]


@pytest.mark.parametrize("extra, output, message", [
    (["--suffix", "_x"], "out.png", "error: --suffix names the outputs written into a folder; OUTPUT {out} is one "
                                    "file: write the name you want as OUTPUT"),
    (["--ext", ".webp"], "out.png", "error: --ext .webp disagrees with OUTPUT {out} (PNG): one output file is "
                                    "written in the format of its extension; leave out --ext"),
    (["--ext", "auto"], "out.png", "error: --ext auto (JPEG like the input) disagrees with OUTPUT {out} (PNG): one "
                                   "output file is written in the format of its extension; leave out --ext"),
    ([], "out.psd", "error: OUTPUT {out}: Pillow cannot write .psd files; name the output .png, .jpg, .webp or "
                    ".tif (or give a folder)"),
    (["--quality", "80"], "out.png", "error: --quality applies to JPEG, WebP and AVIF outputs; PNG has no quality "
                                     "setting (leave out --quality)"),
    (["--quality", "80", "--ext", ".tif"], "folder", "error: --quality applies to JPEG, WebP and AVIF outputs; "
                                                     "TIFF has no quality setting (leave out --quality)"),
])
def test_contradictory_output_options_are_refused_before_any_work(tmp_path, extra, output, message):
    src = _small_photo(tmp_path / "photo.jpg")
    out = tmp_path / output
    r = run_cli("predict", "-m", "simple-black", *extra, src, out)
    assert r.returncode == 2 and _lines(r.stderr) == [message.format(out=out)], r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.jpg"]


def test_an_existing_folder_with_an_image_name_stays_a_folder(tmp_path):
    src = _small_photo(tmp_path / "photo.jpg")
    (tmp_path / "old.png").mkdir()  # what earlier versions made of `predict photo.jpg old.png`
    r = run_cli("predict", "-m", "simple-black", "-j", "0", src, tmp_path / "old.png")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "old.png" / "photo.png").is_file()


# --------------------------------------------------------------------------------------------------------------
# 2. --weights FILE alone names the model; -m must agree.

@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """A real `unetcli train` run of simple-black (1 epoch on the held-out photos, 64 px): last.pt, best.*"""
    run = tmp_path_factory.mktemp("train") / "run"
    r = run_cli("train", "--model", "simple-black", "--data", DATA / "photos", "--out", run, "--batch-size", "2",
                "--size", "64", "--val-split", "0.25", "--workers", "0", "--precision", "fp32", "--epochs", "1")
    assert r.returncode == 0, r.stderr
    return run


def test_weights_alone_name_the_model_model_card(tmp_path):
    src = _small_photo(tmp_path / "photo.jpg")
    r = run_cli("predict", "--weights", weights_dir() / "unet-decolorize.safetensors", "-j", "0", src,
                tmp_path / "gray.png")
    assert r.returncode == 0, r.stderr
    assert _records(tmp_path)[0]["made_by"]["model"] == "unet-decolorize"


def test_weights_alone_name_the_model_training_checkpoint_and_onnx(tmp_path, trained_run):
    src = _small_photo(tmp_path / "photo.jpg")
    r = run_cli("predict", "--weights", trained_run / "last.pt", "-j", "0", src, tmp_path / "a.png")
    assert r.returncode == 0, r.stderr
    onnx = tmp_path / "sb.onnx"
    r = run_cli("export", "simple-black", "--weights", trained_run / "best.safetensors", "--output", onnx)
    assert r.returncode == 0, r.stderr
    r = run_cli("predict", "--weights", onnx, "-j", "0", "--precision", "fp32", src, tmp_path / "b.png")
    assert r.returncode == 0, r.stderr
    assert [rec["made_by"]["model"] for rec in _records(tmp_path)] == ["simple-black", "simple-black"]


def test_model_disagreeing_with_the_weights_is_refused_naming_both(tmp_path, trained_run):
    src = _small_photo(tmp_path / "photo.jpg")
    card, checkpoint = weights_dir() / "simple-black.safetensors", trained_run / "last.pt"
    expected = {card: f"error: {card}: these weights are for simple-black, not unet-decolorize",  # the card's check
                checkpoint: f"error: --weights {checkpoint}: these weights are for simple-black, not unet-decolorize "
                            f"(--model decolorize); leave out --model (the file names its model) or pass weights of "
                            f"unet-decolorize"}
    for weights, message in expected.items():
        r = run_cli("predict", "-m", "decolorize", "--weights", weights, src, tmp_path / "out.png")
        assert r.returncode == 2 and _lines(r.stderr) == [message], r.stderr
    assert not (tmp_path / "out.png").exists()


def test_no_model_and_weights_that_record_none(tmp_path):
    import torch
    from safetensors.torch import load_file

    plain = tmp_path / "plain.pt"  # a bare state dict: weights, but no record of the model
    torch.save(load_file(str(weights_dir() / "simple-black.safetensors")), plain)
    src = _small_photo(tmp_path / "photo.jpg")
    r = run_cli("predict", src, tmp_path / "out.png")
    assert r.returncode == 2 and _lines(r.stderr) == [
        "error: no model: give --model MODEL (see `unetcli models`), or --weights FILE"], r.stderr
    r = run_cli("predict", "--weights", plain, src, tmp_path / "out.png")
    assert r.returncode == 2 and _lines(r.stderr) == [
        f"error: {plain}: the file does not record its model; name the model too (unetcli predict --model MODEL; "
        f"unetcli.load(MODEL, weights=...))"], r.stderr


# --------------------------------------------------------------------------------------------------------------
# 3. --ext auto.

def test_ext_auto_writes_each_output_in_its_inputs_format_png_where_it_cannot(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a.jpg", "b.png", "c.webp", "d.qoi"):  # QOI stores RGB(A) only: a gray output goes to PNG
        _small_photo(src / name)
    out = tmp_path / "out"
    r = run_cli("predict", "-m", "simple-black", "-j", "0", "--ext", "auto", src, out)
    assert r.returncode == 0, r.stderr
    formats = {}
    for p in sorted(out.iterdir()):
        if p.name != LOG:
            with Image.open(p) as im:
                formats[p.name] = im.format
    assert formats == {"a.jpg": "JPEG", "b.png": "PNG", "c.webp": "WEBP", "d.png": "PNG"}
    assert f"note: {src / 'd.qoi'}: --ext auto: QOI cannot store L images: written as PNG" in r.stderr
    # The log records the format each output was written in, so a run with --ext .png knows b.png and d.png.
    assert {rec["output"]: rec["made_by"]["options"]["format"] for rec in _records(out)} == {
        "a.jpg": "JPEG", "b.png": "PNG", "c.webp": "WEBP", "d.png": "PNG"}
    r = run_cli("predict", "-m", "simple-black", "-j", "0", "--ext", ".png", src, out)
    assert r.returncode == 0 and "done 2, skipped 2, failed 0" in r.stderr, r.stderr


# --------------------------------------------------------------------------------------------------------------
# 4. --quality.

def test_quality_sets_the_jpeg_quality_and_is_recorded(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    _small_photo(src / "a.png", size=(192, 144))
    _small_photo(src / "b.jpg", size=(192, 144))
    # --ext auto: the JPEG output takes --quality, the PNG one has no such setting and is written as without it.
    r = run_cli("predict", "-m", "simple-black", "-j", "0", "--ext", "auto", "--quality", "30", src, tmp_path / "q")
    assert r.returncode == 0, r.stderr
    r = run_cli("predict", "-m", "simple-black", "-j", "0", "--ext", "auto", src, tmp_path / "d")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "q" / "a.png").read_bytes() == (tmp_path / "d" / "a.png").read_bytes()
    low, default = (tmp_path / "q" / "b.jpg").read_bytes(), (tmp_path / "d" / "b.jpg").read_bytes()
    assert len(low) < 0.8 * len(default)  # Pillow's default is 75
    records = {rec["output"]: rec["made_by"]["options"] for rec in _records(tmp_path / "q")}
    assert "quality" not in records["a.png"] and records["b.jpg"]["quality"] == 30
    assert all("quality" not in rec["made_by"]["options"] for rec in _records(tmp_path / "d"))


# --------------------------------------------------------------------------------------------------------------
# 5. EXIF and ICC profiles.

def _metadata(path: Path) -> tuple[dict, dict, dict, bytes | None]:
    with Image.open(path) as im:
        exif = im.getexif()
        return dict(exif), dict(exif.get_ifd(0x8769)), dict(exif.get_ifd(0x8825)), im.info.get("icc_profile")


@pytest.mark.parametrize("ext", [".jpg", ".png", ".webp", ".tif"])
def test_exif_is_carried_without_orientation_and_an_rgb_profile_not_into_gray(tmp_path, ext):
    src = _camera_jpeg(tmp_path / "camera.jpg")
    r = run_cli("predict", "-m", "simple-black", "-j", "0", src, tmp_path / f"gray{ext}")
    assert r.returncode == 0, r.stderr
    assert "EXIF orientation applied" in r.stderr
    ifd0, sub, gps, icc = _metadata(tmp_path / f"gray{ext}")
    with Image.open(tmp_path / f"gray{ext}") as im:
        assert im.size == (72, 96) and im.mode == ("RGB" if ext == ".webp" else "L")  # upright; WebP has no L
    assert ifd0[0x010F] == "TestMake" and ifd0[0x0110] == "TestModel" and 0x0112 not in ifd0
    assert sub[0x9003] == "2021:06:05 10:11:12" and (sub[0xA002], sub[0xA003]) == (72, 96)
    assert gps[0x0001] == "N"
    assert icc is None  # an RGB profile is invalid in a one-channel image


def test_colour_output_carries_exif_and_the_icc_profile(tmp_path):
    src = _camera_jpeg(tmp_path / "camera.jpg")
    r = run_cli("predict", "-m", "colorize", "--size", "64", "-j", "0", "--precision", "fp32", src,
                tmp_path / "colour.jpg")
    assert r.returncode == 0, r.stderr
    ifd0, sub, _, icc = _metadata(tmp_path / "colour.jpg")
    assert icc == SRGB and ifd0[0x010F] == "TestMake" and 0x0112 not in ifd0
    with Image.open(tmp_path / "colour.jpg") as im:
        assert im.mode == "RGB" and im.size == (72, 96)


def test_no_metadata_in_no_metadata_out(tmp_path):
    src = _small_photo(tmp_path / "plain.jpg")
    r = run_cli("predict", "-m", "simple-black", "-j", "0", src, tmp_path / "out.jpg")
    assert r.returncode == 0, r.stderr
    ifd0, _, _, icc = _metadata(tmp_path / "out.jpg")
    assert ifd0 == {} and icc is None
