"""Reading every Pillow mode into sRGB floats, clear per-file errors, atomic writes, input discovery."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from conftest import skimage_photo
from unetcli.errors import InputError, UsageError
from unetcli.files import save_atomic
from unetcli.imageio import read_photo
from unetcli.inputs import collect_inputs


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


def test_eight_bit_photos_keep_their_values_and_rgb_is_them_over_255(tmp_path, coffee):
    coffee.save(tmp_path / "c.png")
    coffee.convert("L").save(tmp_path / "g.png")
    Image.fromarray(np.asarray(coffee.convert("L"), np.uint16) * 257).save(tmp_path / "g16.png")
    p, g, g16 = (read_photo(tmp_path / n) for n in ("c.png", "g.png", "g16.png"))
    np.testing.assert_array_equal(p.rgb8, np.asarray(coffee))
    np.testing.assert_array_equal(p.rgb, np.asarray(coffee).astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(g.rgb8, np.repeat(np.asarray(coffee.convert("L"))[:, :, None], 3, axis=2))
    assert g16.rgb8 is None and g16.rgb.dtype == np.float32  # 16 bits: float only, full precision
    np.testing.assert_array_equal(g16.as_uint8(), g.rgb8)


@pytest.mark.parametrize("orientation", [1, 6])
def test_reduce_to_decodes_a_jpeg_at_the_smallest_scale_covering_the_size_asked(tmp_path, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation  # 6: stored sideways (turned 90 degrees on display)
    Image.fromarray(skimage_photo("astronaut")).resize((480, 320)).save(tmp_path / "a.jpg", quality=95, exif=exif)
    shown = (480, 320) if orientation == 1 else (320, 480)
    asked = []

    def wanted(size):
        asked.append(size)
        return size[0] // 4 - 5, size[1] // 4 - 5

    full = read_photo(tmp_path / "a.jpg")
    small = read_photo(tmp_path / "a.jpg", reduce_to=wanted)
    assert asked == [shown] and full.size == small.size == shown and small.full_size == shown
    # 1/4 of each side is the smallest libjpeg scale with both sides as large as asked (1/8 is too small)
    assert small.pixels_size == (shown[0] // 4, shown[1] // 4) and small.rgb8.shape == (shown[1] // 4, shown[0] // 4, 3)
    # the same picture, upright: close to the full decode scaled down by 4
    ref = np.asarray(Image.fromarray(full.rgb8).reduce(4), np.float32)
    assert np.abs(small.rgb8.astype(np.float32) - ref).mean() < 4
    again = small.at_full_size()
    assert again.full_size is None and again.size == shown
    np.testing.assert_array_equal(again.rgb8, full.rgb8)
    assert full.at_full_size() is full


def test_reduce_to_decodes_other_formats_and_small_jpegs_in_full(tmp_path, coffee):
    coffee.save(tmp_path / "c.png")
    coffee.save(tmp_path / "c.jpg")
    for name, asked in (("c.png", (10, 10)), ("c.jpg", (40, 30)), ("c.jpg", None)):  # 60x40: 40x30 needs all
        p = read_photo(tmp_path / name, reduce_to=lambda size, a=asked: a)
        assert p.full_size is None and p.pixels_size == p.size == (60, 40), name
