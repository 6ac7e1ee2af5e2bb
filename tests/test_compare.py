"""Issue #17: ``unetcli compare INPUT OUTPUT [--reference REF] -o SHEET`` writes before/after contact sheets
(one row per photo: input | output | reference), run as a real subprocess on real photos."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from conftest import held_out_photos, run_cli
from unetcli.sheets import GAP


def _resized(im: Image.Image, height: int) -> np.ndarray:
    """What the sheet should show: ``im`` as RGB, scaled to ``height`` pixels high, aspect kept (LANCZOS)."""
    width = max(1, round(im.width * height / im.height))
    return np.asarray(im.convert("RGB").resize((width, height), Image.Resampling.LANCZOS), np.float32)


@pytest.fixture
def folders(tmp_path):
    """INPUT (two held-out photos, one in a sub-folder), OUTPUT named as predict names outputs (gray PNGs, one
    under its collision name), REF (the photos' red channel, as a reference), all real files."""
    src, out, ref = tmp_path / "in", tmp_path / "out", tmp_path / "ref"
    photos = held_out_photos()[:2]
    (src / "sub").mkdir(parents=True)
    (out / "sub").mkdir(parents=True)
    (ref / "sub").mkdir(parents=True)
    shutil.copy(photos[0], src / "a photo.jpg")
    shutil.copy(photos[1], src / "sub" / "b.jpg")
    Image.open(photos[0]).convert("L").save(out / "a photo.png")
    Image.open(photos[1]).convert("L").save(out / "sub" / "b_jpg.png")  # predict's name when b.png collides
    Image.open(photos[0]).getchannel("R").save(ref / "a photo.png")
    Image.open(photos[1]).getchannel("R").save(ref / "sub" / "b.webp", lossless=True)
    (out / ".unetcli-gallery").mkdir()  # a --gallery thumbnail folder is never taken for an output
    Image.new("RGB", (8, 8), "red").save(out / ".unetcli-gallery" / "a photo.jpg")
    return src, out, ref


def test_sheet_rows_are_input_output_reference_resized(folders, tmp_path):
    src, out, ref = folders
    sheet = tmp_path / "sheets" / "sheet.png"
    r = run_cli("compare", src, out, "--reference", ref, "-r", "-o", sheet, "--row-height", "120")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(sheet) and "2 photo(s) on 1 sheet(s)" in r.stderr
    got = np.asarray(Image.open(sheet).convert("RGB"), np.float32)
    rows = [(src / "a photo.jpg", out / "a photo.png", ref / "a photo.png"),
            (src / "sub" / "b.jpg", out / "sub" / "b_jpg.png", ref / "sub" / "b.webp")]
    widths = [_resized(Image.open(i), 120).shape[1] for i, _, _ in rows]
    assert got.shape == (2 * (120 + GAP), max(3 * w + 2 * GAP for w in widths), 3)
    for k, (files, w) in enumerate(zip(rows, widths)):
        y = k * (120 + GAP)
        for j, f in enumerate(files):
            panel = got[y:y + 120, j * (w + GAP):j * (w + GAP) + w]
            want = _resized(Image.open(f), 120)
            top = 30 if k == 0 else 0  # the first row carries the column labels
            assert np.abs(panel[top:] - want[top:]).mean() < 1.0, (k, j, f)
        assert (got[y:y + 120, w:w + GAP] == 255).all()  # the white gap between input and output
    labels = got[2:20, 2:60]
    assert labels.std() > 30  # "input" written over the first cell


def test_missing_outputs_fail_alone_and_rows_split_sheets(folders, tmp_path):
    src, out, _ = folders
    shutil.copy(held_out_photos()[2], src / "c.jpg")  # no output for this one
    rgba = Image.open(held_out_photos()[3]).convert("RGBA")
    alpha = np.zeros((rgba.height, rgba.width), np.uint8)
    alpha[:, : rgba.width // 2] = 255  # a cut-out: the right half transparent
    rgba.putalpha(Image.fromarray(alpha))
    shutil.copy(held_out_photos()[3], src / "d.jpg")
    rgba.save(out / "d.png")
    r = run_cli("compare", src, out, "-o", tmp_path / "s.jpg", "--rows", "1", "--row-height", "64")
    assert r.returncode == 1, r.stderr
    assert [line for line in r.stderr.splitlines() if line.startswith("failed:")] == \
        [f"failed: {src / 'c.jpg'}: no output found in OUTPUT"]
    assert r.stdout.split() == [str(tmp_path / "s-1.jpg"), str(tmp_path / "s-2.jpg")]  # a photo.jpg, d.jpg
    sheet = np.asarray(Image.open(tmp_path / "s-2.jpg").convert("L"), np.float32)
    w = round(rgba.width * 64 / rgba.height)
    right = sheet[20:60, w + GAP + w * 3 // 4: 2 * w + GAP - 2]  # the transparent half: the checkerboard
    assert 200 <= right.mean() <= 250 and right.std() > 5, (right.mean(), right.std())


def test_no_outputs_is_one_line_exit_2(folders, tmp_path):
    src, _, _ = folders
    empty = tmp_path / "empty"
    empty.mkdir()
    r = run_cli("compare", src, empty, "-r", "-o", tmp_path / "s.jpg")
    assert r.returncode == 2
    assert r.stderr.startswith("error: no outputs found in OUTPUT") and len(r.stderr.splitlines()) == 1, r.stderr
    assert not (tmp_path / "s.jpg").exists()
