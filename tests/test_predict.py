"""``unetcli predict`` end to end in real subprocesses: outputs, sizes, modes, skipping, errors, exit codes."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage.color import rgb2gray
from skimage.metrics import peak_signal_noise_ratio

from conftest import DATA, run_cli
from unetcli.imageio import read_photo


def _inputs(folder: Path) -> list[Path]:
    """The files in ``folder``, without predict's hidden record of its outputs (``.unetcli-outputs.jsonl``)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def test_simple_black_on_a_mixed_folder_writes_one_gray_image_per_photo(photo_folder, tmp_path):
    out = tmp_path / "out"
    r = run_cli("predict", "--model", "simple-black", photo_folder, out)
    assert r.returncode == 0, r.stderr
    assert f"done {len(_inputs(photo_folder))}, skipped 0, failed 0" in r.stderr
    for src in _inputs(photo_folder):
        dst = out / (src.stem + ".png")
        photo = read_photo(src)
        with Image.open(dst) as im:
            assert im.size == photo.size
            assert im.mode == ("LA" if photo.alpha is not None else "L")
            gray = np.asarray(im.getchannel(0), np.float64) / 255
            if photo.alpha is not None:  # the alpha channel is carried over unchanged
                np.testing.assert_array_equal(np.asarray(im.getchannel("A")), photo.alpha)
        # The shipped simple-black reproduces skimage's rgb2gray to 8-bit rounding.
        assert peak_signal_noise_ratio(rgb2gray(photo.rgb.astype(np.float64)), gray, data_range=1) > 45


def test_rerun_skips_existing_outputs_and_overwrite_replaces_them(photo_folder, tmp_path):
    out = tmp_path / "out"
    n = len(_inputs(photo_folder))
    assert run_cli("predict", "-m", "simple-black", photo_folder, out).returncode == 0
    victim = out / "coffee.png"
    victim.unlink()
    r = run_cli("predict", "-m", "simple-black", photo_folder, out)
    assert r.returncode == 0 and f"done 1, skipped {n - 1}, failed 0" in r.stderr
    mtime = victim.stat().st_mtime_ns
    r = run_cli("predict", "-m", "simple-black", "--overwrite", photo_folder, out)
    assert f"done {n}, skipped 0" in r.stderr and victim.stat().st_mtime_ns != mtime


def test_bad_files_are_reported_and_the_rest_is_written(photo_folder, tmp_path):
    src = tmp_path / "in"
    shutil.copytree(photo_folder, src)
    (src / "empty.jpg").write_bytes(b"")
    (src / "text.jpg").write_text("hello, I am not a JPEG")
    data = (src / "astronaut.jpg").read_bytes()
    (src / "truncated.jpg").write_bytes(data[: len(data) // 3])
    out = tmp_path / "out"
    r = run_cli("predict", "-m", "simple-black", src, out)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert "empty.jpg: empty file (0 bytes)" in r.stderr
    assert "text.jpg: not an image file Pillow can read" in r.stderr
    assert "truncated.jpg: corrupt or truncated image" in r.stderr
    assert "failed 3" in r.stderr
    written = sorted(p.name for p in _inputs(out))
    assert written == sorted(p.stem + ".png" for p in _inputs(photo_folder))  # no partial or temp files


def test_recursive_mirrors_relative_paths_and_ext(photo_folder, tmp_path):
    src = tmp_path / "in"
    (src / "a" / "b").mkdir(parents=True)
    shutil.copy(photo_folder / "coffee.png", src / "a" / "b" / "deep photo é.png")
    shutil.copy(photo_folder / "astronaut.jpg", src / "top.jpg")
    out = tmp_path / "out"
    r = run_cli("predict", "-m", "simple-black", "-r", "--ext", ".jpg", src, out)
    assert r.returncode == 0, r.stderr
    assert sorted(str(p.relative_to(out)) for p in out.rglob("[!.]*") if p.is_file()) == [
        "a/b/deep photo é.jpg", "top.jpg"]
    assert Image.open(out / "top.jpg").format == "JPEG"


def test_single_file_input(photo_folder, tmp_path):
    r = run_cli("predict", "-m", "simple-black", photo_folder / "chelsea gray.png", tmp_path)
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "chelsea gray.png").size == (451, 300)


@pytest.mark.parametrize("args,message", [
    (["-m", "unet-nope"], "unknown model 'unet-nope'; valid names"),
    (["-m", "simple-black", "--device", "cuda"], "CUDA is not available"),
    (["-m", "simple-black", "--ext", ".xyz"], "--ext .xyz"),
])
def test_setup_errors_exit_2_with_one_line(photo_folder, tmp_path, args, message):
    r = run_cli("predict", *args, photo_folder, tmp_path / "out")
    assert r.returncode == 2
    assert message in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_missing_input_is_a_usage_error(tmp_path):
    r = run_cli("predict", "-m", "simple-black", tmp_path / "nothing-here", tmp_path / "out")
    assert r.returncode == 2 and "no such file or folder" in r.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output_folder_fails_before_any_work(photo_folder, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    r = run_cli("predict", "-m", "simple-black", photo_folder, locked / "out")
    assert r.returncode == 2 and "not writable" in r.stderr


def test_unwritable_output_folder_as_a_file(photo_folder, tmp_path):
    (tmp_path / "file").write_text("x")
    r = run_cli("predict", "-m", "simple-black", photo_folder, tmp_path / "file" / "out")
    assert r.returncode == 2 and "not writable" in r.stderr


def test_weights_errors(photo_folder, tmp_path, random_weights):
    out = tmp_path / "out"
    r = run_cli("predict", "-m", "simple-black", "--weights", tmp_path / "none.safetensors", photo_folder, out)
    assert r.returncode == 2 and "not found" in r.stderr
    # Weights of another architecture.
    r = run_cli("predict", "-m", "simple-black", "--weights", random_weights("unet-decolorize"), photo_folder, out)
    assert r.returncode == 2 and "these weights are for unet-decolorize" in r.stderr
    # Same file without its card: the architecture check itself catches it.
    bare = tmp_path / "bare.safetensors"
    shutil.copy(random_weights("unet-decolorize"), bare)
    r = run_cli("predict", "-m", "simple-black", "--weights", bare, photo_folder, out)
    assert r.returncode == 2 and "does not fit the simple-black architecture" in r.stderr
    # A corrupted copy: the sha256 in its card no longer matches.
    bad = tmp_path / "bad.safetensors"
    data = bytearray(random_weights("simple-black").read_bytes())
    data[-1] ^= 0xFF
    bad.write_bytes(bytes(data))
    shutil.copy(random_weights("simple-black").with_suffix(".json"), bad.with_suffix(".json"))
    r = run_cli("predict", "-m", "simple-black", "--weights", bad, photo_folder, out)
    assert r.returncode == 2 and "does not match its model card" in r.stderr
    assert "Traceback" not in r.stderr


def test_segmentation_mask_has_the_input_size(photo_folder, tmp_path, random_weights):
    out = tmp_path / "out"
    r = run_cli("predict", "-m", "seg", "--weights", random_weights("unet-seg"), "--size", "64",
                photo_folder / "chelsea gray.png", out)
    assert r.returncode == 0, r.stderr
    mask = Image.open(out / "chelsea gray.png")
    assert mask.mode == "L" and mask.size == (451, 300)
    assert set(np.unique(np.asarray(mask))) <= {0, 255}


def test_colorize_keeps_size_and_luminance(photo_folder, tmp_path, random_weights):
    out = tmp_path / "out"
    r = run_cli("predict", "-m", "unet-colorize", "--weights", random_weights("unet-colorize"), "--size", "64",
                photo_folder / "chelsea gray.png", out)
    assert r.returncode == 0, r.stderr
    colour = Image.open(out / "chelsea gray.png")
    assert colour.mode == "RGB" and colour.size == (451, 300)


def test_compile_gives_the_eager_outputs(tmp_path):
    """predict --compile (torch.compile, frozen weights) writes what the eager model writes, within bf16 noise.
    At a 64-px working size: compiling is what costs time here, and it does not depend on the size."""
    photos = DATA / "photos"
    outs = {}
    for name, extra in (("eager", []), ("compiled", ["--compile"])):
        r = run_cli("predict", "-m", "colorize", "--size", "64", *extra, "--quiet", photos, tmp_path / name)
        assert r.returncode == 0, r.stderr
        outs[name] = {p.name: np.asarray(Image.open(p), np.float64) for p in _inputs(tmp_path / name)}
    assert sorted(outs["eager"]) == sorted(outs["compiled"]) and len(outs["eager"]) == 4
    for name, a in outs["eager"].items():
        mse = np.mean((a - outs["compiled"][name]) ** 2)
        assert 10 * np.log10(255**2 / max(mse, 1e-12)) >= 45, name  # measured 62-65 dB
    r = run_cli("predict", "-m", "decolorize", "--compile", "-w", "x.onnx", photos, tmp_path / "x")
    assert r.returncode == 2 and "--compile: only for PyTorch weights" in r.stderr
