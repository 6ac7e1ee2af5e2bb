"""Reading every Pillow mode into sRGB floats, clear per-file errors, atomic writes, input discovery."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from conftest import skimage_photo
from unetcli.errors import InputError, UsageError
from unetcli.imageio import collect_inputs, read_photo, save_atomic


@pytest.fixture
def coffee():
    return Image.fromarray(skimage_photo("coffee")).resize((60, 40))


def test_rgb_jpeg_reads_as_float_in_unit_range(tmp_path, coffee):
    coffee.save(tmp_path / "c.jpg", quality=95)
    p = read_photo(tmp_path / "c.jpg")
    assert p.rgb.shape == (40, 60, 3) and p.rgb.dtype == np.float32
    assert 0 <= p.rgb.min() and p.rgb.max() <= 1 and p.alpha is None and not p.is_gray
    np.testing.assert_array_equal(np.round(p.rgb * 255), np.asarray(Image.open(tmp_path / "c.jpg"), np.float32))


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "CMYK", "1", "I;16"])
def test_every_mode_gives_rgb_of_the_right_size(tmp_path, coffee, mode):
    if mode == "I;16":
        im = Image.fromarray(np.asarray(coffee.convert("L"), np.uint16) * 257)
    else:
        im = coffee.convert(mode)
    path = tmp_path / ("x.jpg" if mode == "CMYK" else "x.png")
    im.save(path)
    p = read_photo(path)
    assert p.rgb.shape == (40, 60, 3)
    assert p.is_gray == (mode in ("L", "LA", "1", "I;16"))
    assert (p.alpha is not None) == (mode in ("LA", "RGBA"))


def test_16bit_gray_keeps_full_precision(tmp_path):
    ramp = np.linspace(0, 65535, 64 * 8, dtype=np.uint16).reshape(8, 64)
    Image.fromarray(ramp).save(tmp_path / "g16.png")
    p = read_photo(tmp_path / "g16.png")
    np.testing.assert_allclose(p.rgb[:, :, 1], ramp / 65535.0, atol=1e-6)


def test_palette_with_transparency_gives_alpha(tmp_path, coffee):
    im = coffee.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    im.info["transparency"] = 0
    im.save(tmp_path / "p.png", transparency=0)
    p = read_photo(tmp_path / "p.png")
    assert p.alpha is not None and (p.alpha == 0).any() and (p.alpha == 255).any()


def test_exif_orientation_is_applied(tmp_path, coffee):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    coffee.save(tmp_path / "r.jpg", exif=exif)
    p = read_photo(tmp_path / "r.jpg")
    assert p.rgb.shape == (60, 40, 3)
    assert "EXIF orientation applied" in p.notes


def test_animated_gif_uses_first_frame_and_says_so(tmp_path, coffee):
    frames = [coffee.convert("P"), coffee.rotate(180).convert("P")]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:], duration=100)
    p = read_photo(tmp_path / "a.gif")
    assert p.rgb.shape == (40, 60, 3)
    assert any("2 frames" in n for n in p.notes)


@pytest.mark.parametrize("content,reason", [
    (b"", "empty file"),
    (b"this is not an image at all", "not an image"),
])
def test_unreadable_files_say_why(tmp_path, content, reason):
    (tmp_path / "bad.jpg").write_bytes(content)
    with pytest.raises(InputError, match=reason):
        read_photo(tmp_path / "bad.jpg")


def test_truncated_jpeg_is_reported(tmp_path, coffee):
    coffee.resize((600, 400)).save(tmp_path / "full.jpg")
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated|corrupt"):
        read_photo(tmp_path / "cut.jpg")


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    Image.new("L", (200, 200)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100 * 100)
    with pytest.raises(InputError, match="too large"):
        read_photo(tmp_path / "big.png")


def test_save_atomic_leaves_no_temporary_on_failure(tmp_path):
    with pytest.raises(OSError):
        save_atomic(Image.new("LA", (4, 4)), tmp_path / "x.jpg", "JPEG")  # JPEG cannot store LA
    assert os.listdir(tmp_path) == []


def test_collect_inputs_folder_glob_file(tmp_path, coffee):
    (tmp_path / "sub").mkdir()
    coffee.save(tmp_path / "b.png")
    coffee.save(tmp_path / "sub" / "a.jpg")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / ".hidden.png").write_bytes(b"")
    assert [str(r) for _, r in collect_inputs(str(tmp_path))] == ["b.png"]
    assert [str(r) for _, r in collect_inputs(str(tmp_path), recursive=True)] == ["b.png", "sub/a.jpg"]
    assert [str(r) for _, r in collect_inputs(str(tmp_path / "**" / "*.jpg"))] == ["sub/a.jpg"]
    assert [str(r) for _, r in collect_inputs(str(tmp_path / "sub" / "a.jpg"))] == ["a.jpg"]
    with pytest.raises(UsageError, match="no such file"):
        collect_inputs(str(tmp_path / "missing"))


def test_symlink_loop_is_not_followed_forever(tmp_path, coffee):
    (tmp_path / "d").mkdir()
    coffee.save(tmp_path / "d" / "x.png")
    os.symlink(tmp_path / "d", tmp_path / "d" / "loop")
    found = [str(r) for _, r in collect_inputs(str(tmp_path), recursive=True)]
    assert found == ["d/x.png"]
