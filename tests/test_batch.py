"""Batch jobs that never lose work (issue #6), through the real ``unetcli`` command in subprocesses.

* A corpus of bad and unusual files, built below from real photos, run once through ``predict -r --json``: each
  case has its own test of its outcome (one line naming the file and the reason, or the right output).
* Interruption: Ctrl-C (SIGINT to the process group, as a terminal sends it) and ``kill -9`` in the middle of a
  batch, then the same command again; ``kill -9`` of ``train`` during an epoch and during a checkpoint write,
  then ``--resume``.
* Huge photos: tiled and untiled outputs agree within 1/255 (peak memory is measured in
  ``benchmarks/bench_memory.py``, not asserted here).
* Shell jobs: ``--shard``, ``--files-from`` (a real ``find`` pipe), ``--report`` / ``--json``, ``--fail-fast``.

Covered elsewhere and not repeated: set-up errors exiting 2 with one line (unknown model, missing or corrupt
weights, CUDA asked for but absent: test_predict.py), skipping existing outputs and ``--overwrite``
(test_predict.py), every Pillow mode read in-process (test_imageio.py).
"""

from __future__ import annotations

import csv
import json
import math
import os
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.color import rgb2gray
from skimage.metrics import peak_signal_noise_ratio

from conftest import DATA, SKIMAGE_PHOTOS, run_cli, skimage_photo
from unetcli.engine.model import load_model
from unetcli.engine.predict import take_shard
from unetcli.engine.predictor import Predictor
from unetcli.engine.tiling import feather_weights, predict_tiled, tile_starts
from unetcli.imageio import read_photo, to_uint8
from unetcli.models.registry import get_spec
from unetcli.weights import shipped_weights

PHOTOS = DATA / "photos"


def _drop_root_privileges() -> list[str] | None:
    """Command prefix under which file permissions apply: [] for a normal user; for root, ``setpriv`` without the
    capabilities that let root read and write anything (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH); None if root
    cannot shed them here."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    prefix = [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]
    probe = subprocess.run([*prefix, "true"], capture_output=True)
    return prefix if probe.returncode == 0 else None


UNPRIVILEGED = _drop_root_privileges()
needs_permissions = pytest.mark.skipif(UNPRIVILEGED is None, reason="root, and setpriv cannot drop its file access")


def _command(*args) -> list[str]:
    return [sys.executable, "-m", "unetcli", *map(str, args)]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}


def _default_sigint() -> None:
    # A shell starts background jobs with SIGINT ignored, and the child would inherit that (Python then never
    # raises KeyboardInterrupt): give the command the terminal's default, as when a user runs it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _popen(*args, log: Path, **kwargs) -> subprocess.Popen:
    """Start ``python -m unetcli ARGS`` in the background, stdout and stderr to ``log``."""
    with open(log, "ab") as f:
        return subprocess.Popen(_command(*args), stdout=f, stderr=subprocess.STDOUT, env=_env(),
                                preexec_fn=_default_sigint, **kwargs)


def _wait_for(predicate, proc: subprocess.Popen, log: Path, timeout: float = 300, poll: float = 0.02):
    """Poll ``predicate`` until it returns something truthy (returned); fail if ``proc`` ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc.poll() is not None:
            pytest.fail(f"the command ended (exit {proc.returncode}) before the awaited moment:\n{log.read_text()}")
        time.sleep(poll)
    proc.kill()
    pytest.fail(f"timed out after {timeout}s:\n{log.read_text()}")


def _outputs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def _hidden(folder: Path) -> list[Path]:
    """Hidden files left in ``folder`` (temporary files ...), apart from predict's record of its outputs
    (``unetcli.files.OUTPUT_LOG``)."""
    return sorted(p for p in folder.rglob(".*") if p.name != ".unetcli-outputs.jsonl")


def _assert_complete_png(path: Path, size: tuple[int, int] | None = None) -> None:
    with Image.open(path) as im:
        im.verify()  # every chunk present with a correct checksum: not truncated, not half-written
    with Image.open(path) as im:
        im.load()
        assert size is None or im.size == size, path


def _gray(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.getchannel(0), np.float64) / 255


def _report(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# --------------------------------------------------------------------------------------------------------------
# The corpus of bad and unusual inputs.


def _png_bomb(path: Path) -> None:
    """A valid 8-bit gray PNG just beyond Pillow's decompression-bomb limit: ~90 KB on disk, ~89.5 Mpixel decoded."""
    side = math.isqrt(Image.MAX_IMAGE_PIXELS) + 1

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    z = zlib.compressobj(9)
    row = bytes(side + 1)  # filter byte + black pixels
    idat = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def _break_crc(data: bytes, kind: bytes) -> bytes:
    """The PNG ``data`` with one bit flipped in the stored CRC of its first ``kind`` chunk."""
    pos = 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        if data[pos + 4:pos + 8] == kind:
            at = pos + 8 + length
            return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:]
        pos += 12 + length
    raise ValueError(f"no {kind!r} chunk")


#: file in the corpus -> the reason its one "failed:" line must give.
BAD_FILES = {
    "empty.jpg": "empty file (0 bytes)",
    "truncated.jpg": "corrupt or truncated image (image file is truncated",
    "broken_crc.png": "bad header checksum in b'IDAT'",
    "broken_header_crc.png": "corrupt image header (PNG: broken PNG file (bad header checksum in b'IHDR'))",
    "text.jpg": "not an image file Pillow can read",
    "bomb.png": "image too large for safe decoding",
    "self_link.jpg": "symbolic link loop",
}
NON_ASCII_NAME = "holiday photo – café ü.png"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Builds the corpus, runs ``predict -m simple-black -r --json`` over it once (without root's file access,
    so permissions apply), and returns (folder, output folder, result, {relative input: report record})."""
    root = tmp_path_factory.mktemp("corpus")
    src, out = root / "in", root / "out"
    src.mkdir()
    astro = Image.fromarray(skimage_photo("astronaut")).resize((120, 120))
    coffee = Image.fromarray(skimage_photo("coffee")).resize((90, 60))
    rocket = Image.fromarray(skimage_photo("rocket")).resize((97, 65))

    astro.save(src / "ok.jpg", quality=92)
    (src / "empty.jpg").write_bytes(b"")
    big = astro.resize((480, 480))
    big.save(root / "whole.jpg", quality=92)
    data = (root / "whole.jpg").read_bytes()
    (src / "truncated.jpg").write_bytes(data[: len(data) // 2])
    coffee.save(root / "whole.png")
    png = (root / "whole.png").read_bytes()
    (src / "broken_crc.png").write_bytes(_break_crc(png, b"IDAT"))
    (src / "broken_header_crc.png").write_bytes(_break_crc(png, b"IHDR"))
    (src / "text.jpg").write_text("hello, I am a text file and not a JPEG\n")
    _png_bomb(src / "bomb.png")
    os.symlink("self_link.jpg", src / "self_link.jpg")
    Image.fromarray(np.array([[[200, 40, 90]]], np.uint8)).save(src / "tiny.png")
    g16 = np.asarray(coffee.convert("L"), np.uint16) * 256 + np.arange(60 * 90, dtype=np.uint16).reshape(60, 90) % 256
    Image.fromarray(g16).save(src / "gray16.png")
    astro.convert("CMYK").save(src / "cmyk.jpg", quality=95)
    palette = coffee.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.save(src / "palette_transparent.png", transparency=0)
    la = coffee.convert("LA")
    la.putalpha(Image.linear_gradient("L").resize((90, 60)))
    la.save(src / "la.png")
    rgba = rocket.convert("RGBA")
    alpha = np.zeros((65, 97), np.uint8)
    alpha[10:55, 20:80] = 255
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(src / "rgba.png")
    frames = [coffee.convert("P"), coffee.rotate(180).convert("P")]
    frames[0].save(src / "animated.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: show rotated 90 degrees clockwise
    coffee.save(src / "exif_rotated.jpg", exif=exif, quality=95)
    rocket.save(src / NON_ASCII_NAME)
    (src / "nested" / "deeper").mkdir(parents=True)
    coffee.save(src / "nested" / "deeper" / "photo.png")
    os.symlink("..", src / "nested" / "deeper" / "loop")  # nested/deeper/loop -> nested: a loop under -r
    if UNPRIVILEGED is not None:
        astro.save(src / "unreadable.png")
        (src / "unreadable.png").chmod(0o000)

    r = subprocess.run([*(UNPRIVILEGED or []), *_command("predict", "-m", "simple-black", "-r", "--json", src, out)],
                       capture_output=True, text=True, timeout=600, env=_env())
    records = {str(Path(rec["input"]).relative_to(src)): rec for rec in _report(r.stdout)}
    return src, out, r, records


def test_corpus_run_goes_past_every_bad_file_and_exits_1(corpus):
    src, out, r, records = corpus
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    n_bad = len(BAD_FILES) + (UNPRIVILEGED is not None)
    n_good = 11
    assert f"done {n_good}, skipped 0, failed {n_bad} -> {out}" in r.stderr
    # --json: exactly one JSON line per input file on stdout, nothing else there.
    assert len(r.stdout.splitlines()) == len(records) == n_good + n_bad
    assert sum(rec["status"] == "done" for rec in records.values()) == n_good
    # Outputs are complete images; nothing half-written or temporary is left.
    assert _hidden(out) == []
    for path in _outputs(out):
        _assert_complete_png(path)


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_file_gets_one_line_naming_it_and_the_reason(corpus, name):
    src, out, r, records = corpus
    rec = records[name]
    assert rec["status"] == "failed" and BAD_FILES[name] in rec["error"]
    assert rec["output"] == str(out / Path(name).with_suffix(".png")) and not Path(rec["output"]).exists()
    lines = [line for line in r.stderr.splitlines() if str(src / name) in line]
    assert lines == [f"failed: {src / name}: {rec['error']}"]


@needs_permissions
def test_unreadable_file_is_permission_denied(corpus):
    src, out, r, records = corpus
    assert records["unreadable.png"]["status"] == "failed"
    assert f"failed: {src / 'unreadable.png'}: permission denied" in r.stderr.splitlines()


def test_one_pixel_image(corpus):
    src, out, r, records = corpus
    assert records["tiny.png"]["status"] == "done"
    with Image.open(out / "tiny.png") as im:
        assert im.size == (1, 1) and im.mode == "L"
        assert abs(im.getpixel((0, 0)) - 255 * rgb2gray(np.array([[[200, 40, 90]]]) / 255)[0, 0]) <= 1


def test_16_bit_png_becomes_8_bit_gray(corpus):
    src, out, r, records = corpus
    assert records["gray16.png"]["status"] == "done"
    with Image.open(src / "gray16.png") as im:
        assert im.mode.startswith("I")
        expected = np.asarray(im, np.float64) / 65535
    with Image.open(out / "gray16.png") as im:
        assert im.mode == "L" and im.size == (90, 60)
        got = np.asarray(im, np.float64) / 255
    assert peak_signal_noise_ratio(expected, got, data_range=1) > 45  # (16-bit precision: test_imageio.py)


def test_cmyk_jpeg_is_converted_to_rgb(corpus):
    src, out, r, records = corpus
    assert records["cmyk.jpg"]["status"] == "done"
    with Image.open(src / "cmyk.jpg") as im:
        assert im.mode == "CMYK"
        expected = rgb2gray(np.asarray(im.convert("RGB")) / 255)
    assert peak_signal_noise_ratio(expected, _gray(out / "cmyk.png"), data_range=1) > 40


def test_palette_png_with_transparency_keeps_its_alpha(corpus):
    src, out, r, records = corpus
    with Image.open(src / "palette_transparent.png") as im:
        assert im.mode == "P" and "transparency" in im.info
        expected_alpha = np.where(np.asarray(im) == 0, 0, 255)
    with Image.open(out / "palette_transparent.png") as im:
        assert im.mode == "LA"
        np.testing.assert_array_equal(np.asarray(im.getchannel("A")), expected_alpha)
    assert (expected_alpha == 0).any() and (expected_alpha == 255).any()


@pytest.mark.parametrize("name", ["la.png", "rgba.png"])
def test_la_and_rgba_keep_their_alpha(corpus, name):
    src, out, r, records = corpus
    with Image.open(src / name) as im:
        alpha = np.asarray(im.getchannel("A"))
        expected = rgb2gray(np.asarray(im.convert("RGB")) / 255)
    with Image.open(out / name) as im:
        assert im.mode == "LA"
        np.testing.assert_array_equal(np.asarray(im.getchannel("A")), alpha)
    assert peak_signal_noise_ratio(expected, _gray(out / name), data_range=1) > 40


def test_animated_gif_gives_its_first_frame_and_says_so(corpus):
    src, out, r, records = corpus
    rec = records["animated.gif"]
    assert rec["status"] == "done" and rec["notes"] == ["2 frames: the first frame was used"]
    assert f"note: {src / 'animated.gif'}: 2 frames: the first frame was used" in r.stderr.splitlines()
    with Image.open(src / "animated.gif") as im:
        first = rgb2gray(np.asarray(im.convert("RGB")) / 255)
        im.seek(1)
        second = rgb2gray(np.asarray(im.convert("RGB")) / 255)
    got = _gray(out / "animated.png")
    assert peak_signal_noise_ratio(first, got, data_range=1) > 40
    assert peak_signal_noise_ratio(second, got, data_range=1) < 25  # really the first frame, not the second


def test_exif_rotated_jpeg_comes_out_upright(corpus):
    src, out, r, records = corpus
    assert records["exif_rotated.jpg"]["notes"] == ["EXIF orientation applied"]
    with Image.open(src / "exif_rotated.jpg") as im:
        assert im.size == (90, 60)  # stored sideways
        stored = np.asarray(im.convert("RGB")) / 255
    upright = rgb2gray(np.rot90(stored, k=-1))  # orientation 6: rotate 90 degrees clockwise
    got = _gray(out / "exif_rotated.png")
    assert got.shape == (90, 60)
    assert peak_signal_noise_ratio(upright, got, data_range=1) > 40


def test_names_with_spaces_and_non_ascii(corpus):
    src, out, r, records = corpus
    assert records[NON_ASCII_NAME]["status"] == "done"
    _assert_complete_png(out / NON_ASCII_NAME, (97, 65))


def test_nested_folders_are_mirrored(corpus):
    src, out, r, records = corpus
    assert records["nested/deeper/photo.png"]["status"] == "done"
    _assert_complete_png(out / "nested" / "deeper" / "photo.png", (90, 60))


def test_symlink_loop_under_recursive_is_entered_once(corpus):
    src, out, r, records = corpus
    assert [name for name in records if name.startswith("nested")] == ["nested/deeper/photo.png"]
    assert not any("loop" in name for name in records)


# --------------------------------------------------------------------------------------------------------------
# Set-up errors: before any work.


@needs_permissions
def test_non_writable_output_folder_is_an_error_before_any_work(photo_folder, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    report = tmp_path / "report.jsonl"
    r = subprocess.run([*UNPRIVILEGED, *_command("predict", "-m", "simple-black", "--report", report, photo_folder,
                                                 locked / "out")], capture_output=True, text=True, env=_env())
    assert r.returncode == 2, r.stderr
    assert r.stderr.splitlines() == [f"error: output folder {locked / 'out'} is not writable (Permission denied)"]
    assert report.read_text() == "" and list(locked.iterdir()) == []


@pytest.mark.parametrize("args,message", [
    (["--shard", "0/3"], "--shard '0/3': expected K/N with 1 <= K <= N"),
    (["--shard", "2"], "--shard '2': expected K/N"),
    (["--tile", "200"], "--tile 200: must be 0 (no tiling) or a multiple of 16"),
    (["--files-from", "/nonexistent/list.txt"], "--files-from /nonexistent/list.txt: cannot read the list"),
    (["--report", "/nonexistent/dir/r.jsonl"], "--report /nonexistent/dir/r.jsonl: cannot open it for writing"),
])
def test_batch_option_errors_exit_2_with_one_line(photo_folder, tmp_path, args, message):
    r = run_cli("predict", "-m", "simple-black", *args, photo_folder, tmp_path / "out")
    assert r.returncode == 2
    assert len(r.stderr.splitlines()) == 1 and message in r.stderr


# --------------------------------------------------------------------------------------------------------------
# Interruption and resume.


@pytest.fixture(scope="module")
def many_photos(tmp_path_factory) -> Path:
    """36 real 192x192 photos (a 3x3 grid of crops of each scikit-image sample photo)."""
    folder = tmp_path_factory.mktemp("many")
    for name in SKIMAGE_PHOTOS:
        rgb = skimage_photo(name)
        h, w = rgb.shape[:2]
        for k, (y, x) in enumerate((y, x) for y in np.linspace(0, h - 192, 3, dtype=int)
                                   for x in np.linspace(0, w - 192, 3, dtype=int)):
            Image.fromarray(rgb[y:y + 192, x:x + 192]).save(folder / f"{name}_{k}.png")
    return folder


def _slow_batch_args(photos: Path, out: Path, weights: Path, *extra) -> list:
    # unet-decolorize one photo at a time: slow enough to be stopped in the middle.
    return ["predict", "-m", "unet-decolorize", "--weights", weights, "--batch-size", "1", "--precision", "fp32",
            *extra, photos, out]


def test_ctrl_c_finishes_files_in_flight_exits_130_and_a_rerun_completes(many_photos, tmp_path, random_weights):
    out, log = tmp_path / "out", tmp_path / "log"
    args = _slow_batch_args(many_photos, out, random_weights("unet-decolorize"), "--workers", "2")
    n = len(list(many_photos.iterdir()))
    proc = _popen(*args, log=log, start_new_session=True)
    _wait_for(lambda: out.is_dir() and len(_outputs(out)) >= 2, proc, log)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: SIGINT to the whole process group
    assert proc.wait(timeout=60) == 130, log.read_text()
    text = log.read_text()
    assert "Traceback" not in text
    written = _outputs(out)
    assert 0 < len(written) < n
    # Files in flight were finished and counted; nothing else, and no temporary file, is left.
    assert f"interrupted: done {len(written)}, skipped 0, failed 0, not started {n - len(written)}" in text
    assert _hidden(out) == []
    for path in written:
        _assert_complete_png(path, (192, 192))
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr
    assert f"done {n - len(written)}, skipped {len(written)}, failed 0" in r.stderr
    assert len(_outputs(out)) == n


def test_kill_9_mid_batch_leaves_no_partial_output_and_a_rerun_completes(many_photos, tmp_path, random_weights):
    out, log, report = tmp_path / "out", tmp_path / "log", tmp_path / "report.jsonl"
    args = _slow_batch_args(many_photos, out, random_weights("unet-decolorize"), "--workers", "1",
                            "--report", report)
    names = sorted(p.with_suffix(".png").name for p in many_photos.iterdir())
    proc = _popen(*args, log=log)
    _wait_for(lambda: out.is_dir() and len(_outputs(out)) >= 3, proc, log)
    proc.kill()  # SIGKILL: no handler runs, nothing is cleaned up
    proc.wait()
    written = _outputs(out)
    assert 0 < len(written) < len(names)
    for path in written:
        _assert_complete_png(path, (192, 192))
    # The report was appended and flushed file by file: every line is whole, and names a complete output.
    lines = _report(report.read_text())
    assert lines and {Path(rec["output"]) for rec in lines if rec["status"] == "done"} <= set(written)
    # A temporary file as a kill during a write leaves it (for a file not done yet), and an unrelated hidden file.
    stale = out / f".{names[-1]}.{2 ** 22 + 1}.tmp"
    stale.write_bytes(b"half a PNG")
    (out / ".keep").write_text("not ours")

    r = run_cli(*args)
    assert r.returncode == 0, r.stderr
    assert f"done {len(names) - len(written)}, skipped {len(written)}, failed 0" in r.stderr
    assert [p.name for p in _outputs(out)] == names
    assert [p.name for p in _hidden(out)] == [".keep"]  # the killed run's temporary file is gone, nothing else
    for path in _outputs(out):
        _assert_complete_png(path, (192, 192))
    # Every input was done exactly once: before the kill or by the rerun. (A file finished in the instant before
    # the kill may have no "done" line; the rerun then reports it "skipped".)
    lines = _report(report.read_text())
    done = [Path(rec["output"]).name for rec in lines if rec["status"] == "done"]
    skipped = {Path(rec["output"]).name for rec in lines if rec["status"] == "skipped"}
    assert len(done) == len(set(done)) and set(done) | skipped == set(names)


def _checkpoint_epoch(run: Path) -> int:
    return torch.load(run / "last.pt", map_location="cpu", weights_only=True)["epoch"]


def _metric_epochs(run: Path) -> list[int]:
    with open(run / "metrics.csv", newline="") as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def interrupted_training(tmp_path_factory) -> dict:
    """A real ``unetcli train`` run of unet-decolorize killed with SIGKILL twice, then resumed to its end.

    First kill: during epoch 2 (just after epoch 1's checkpoint appeared). Second kill: the resumed run, while it
    writes a checkpoint (the moment its temporary checkpoint file exists). What was on disk after each kill is
    recorded for the tests. 3 training photos x 40 crops of 64 px: an epoch takes a few seconds on 2 cores.
    """
    root = tmp_path_factory.mktemp("train")
    run, log = root / "run", root / "log"
    start = ["train", "--model", "unet-decolorize", "--data", PHOTOS, "--out", run, "--epochs", "3", "--size", "64",
             "--batch-size", "2", "--val-split", "0.25", "--crops-per-photo", "40", "--workers", "0",
             "--precision", "fp32"]
    resume = ["train", "--resume", run, "--epochs", "3", "--workers", "0", "--precision", "fp32"]
    seen: dict = {"run": run}

    proc = _popen(*start, log=log)
    _wait_for(lambda: (run / "last.pt").exists(), proc, log)
    time.sleep(0.1)
    proc.kill()
    proc.wait()
    seen["epoch_after_kill"] = _checkpoint_epoch(run)
    seen["metrics_after_kill"] = _metric_epochs(run)

    proc = _popen(*resume, log=log)
    seen["temporary"] = _wait_for(lambda: next(run.glob(".last.pt.*"), None), proc, log, poll=0.002)
    proc.kill()
    proc.wait()
    seen["epoch_after_kill_in_write"] = _checkpoint_epoch(run)  # must load: last.pt is complete, old or new

    seen["final"] = run_cli(*resume)
    return seen


def test_training_killed_mid_epoch_resumes_from_its_last_checkpoint(interrupted_training):
    seen = interrupted_training
    # kill -9 during epoch 2: last.pt holds epoch 1 (0-based 0) and metrics.csv its row.
    assert seen["epoch_after_kill"] == 0 and seen["metrics_after_kill"] == [1]
    # kill -9 while the resumed run wrote a checkpoint: last.pt is the previous one or the new one, never broken.
    assert seen["temporary"].name.startswith(".last.pt.")
    assert seen["epoch_after_kill_in_write"] in (0, 1)
    r = seen["final"]
    assert r.returncode == 0, r.stderr
    assert f"resumed {seen['run']} at epoch {seen['epoch_after_kill_in_write'] + 2}" in r.stderr
    assert _metric_epochs(seen["run"]) == [1, 2, 3]  # each epoch once
    assert _checkpoint_epoch(seen["run"]) == 2
    assert (seen["run"] / "unet-decolorize.safetensors").is_file()


# --------------------------------------------------------------------------------------------------------------
# Huge photos: tiles.


def test_tile_starts_and_weights_cover_every_pixel_once():
    for length, tile, overlap, align in [(1000, 256, 64, 16), (2000, 512, 64, 16), (451, 64, 0, 1), (300, 512, 64, 16)]:
        starts = tile_starts(length, tile, overlap, align)
        assert starts[0] == 0 and all(s % align == 0 for s in starts)
        assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))  # neighbours share >= overlap
        assert starts[-1] + tile >= length
        total = torch.zeros(length)
        for s, w in zip(starts, feather_weights(starts, min(tile, length), length, overlap, overlap // 4)):
            total[s:s + len(w)] += w
            assert (w >= 0).all()
        torch.testing.assert_close(total, torch.ones(length))


def test_simple_black_tiled_equals_untiled_exactly(photo_folder, tmp_path):
    for tile in (0, 64):  # 64: the 451x300 photo is cut into 8 x 5 tiles; simple-black is per-pixel
        r = run_cli("predict", "-m", "simple-black", "--tile", tile, "--workers", "0", photo_folder,
                    tmp_path / f"t{tile}")
        assert r.returncode == 0, r.stderr
    for path in _outputs(tmp_path / "t0"):
        np.testing.assert_array_equal(np.asarray(Image.open(path)), np.asarray(Image.open(tmp_path / "t64" / path.name)))


def test_unet_tiled_output_matches_untiled_within_1_in_255(tmp_path):
    weights = shipped_weights(get_spec("unet-decolorize"))  # a well-trained model: what users tile with
    for tile in (0, 128):  # 128: each 320..384 x 213..362 photo is cut into 6 to 9 overlapping tiles
        r = run_cli("predict", "-m", "unet-decolorize", "--weights", weights, "--precision", "fp32", "--tile", tile,
                    "--workers", "0", PHOTOS, tmp_path / f"t{tile}")
        assert r.returncode == 0, r.stderr
    untiled = _outputs(tmp_path / "t0")
    assert len(untiled) == 4
    for path in untiled:
        a = np.asarray(Image.open(path), np.int16)
        b = np.asarray(Image.open(tmp_path / "t128" / path.name), np.int16)
        assert np.abs(a - b).max() <= 1, path.name  # float outputs within 1/255 -> 8-bit values within 1

    # The check has teeth: cut into the same tiles without overlap, the model's outputs show seams.
    model = load_model(get_spec("unet-decolorize"), weights)[0].float()
    x = torch.from_numpy(read_photo(PHOTOS / "route66.jpg").rgb).permute(2, 0, 1).contiguous()
    with torch.inference_mode():
        whole = model(x[None])[0]
        seams = predict_tiled(lambda t: model(t), x, 128, 0, 16)
        blended = predict_tiled(lambda t: model(t), x, 128, 64, 16)
    assert (seams - whole).abs().max() > 3 / 255
    assert (blended - whole).abs().max() <= 1 / 255


@pytest.fixture(scope="module")
def one_size_modes(tmp_path_factory) -> Path:
    """route66.jpg (384 x 288) as an RGB JPEG, an 8-bit gray JPEG, an RGBA PNG and a 16-bit gray PNG (read as
    float32, the others as uint8: predict batches them together, one padded shape), plus a 700 x 500 JPEG."""
    folder = tmp_path_factory.mktemp("one-size-modes")
    photo = Image.open(PHOTOS / "route66.jpg").convert("RGB")
    photo.save(folder / "a_rgb.jpg", quality=95)
    Image.fromarray(np.asarray(photo.convert("L"), np.uint16) * 257).save(folder / "a_gray16.png")
    photo.convert("L").save(folder / "gray.jpg", quality=95)
    rgba = photo.convert("RGBA")
    rgba.putalpha(Image.fromarray(np.tile(np.linspace(0, 255, 384).astype(np.uint8), (288, 1))))
    rgba.save(folder / "rgba.png")
    Image.open(PHOTOS / "erase_red_panda.jpg").convert("RGB").resize((700, 500)).save(folder / "wide.jpg")
    return folder


def _float32_pipeline(model: str, path: Path, tile: int, batch_size: int) -> np.ndarray:
    """The 8-bit gray output of ``model`` as ``predict`` computed it before inputs travelled as uint8: the photo as
    float32 (3, H, W) in [0, 1], one forward pass (alone), or overlapping tiles cut from the float32 photo
    (:func:`predict_tiled`) when a side is above the tile."""
    pred = Predictor.configure(model, tile=tile, batch_size=batch_size).load()
    x = torch.from_numpy(read_photo(path).rgb).permute(2, 0, 1).contiguous()
    with torch.inference_mode():
        y = (predict_tiled(pred.forward, x, tile, pred.overlap, pred.divisor, batch_size) if pred.needs_tiling(x)
             else pred.forward(x[None])[0])
    return to_uint8(y[0].numpy())


@pytest.mark.parametrize("model,tile,batch,names", [
    ("simple-black", 512, 8, None),                   # the four 384x288 photos in one batch, the 700x500 on bands
    ("simple-black", 64, 2, None),                    # every photo on bands of 64 x 64 x 2 pixels
    ("unet-decolorize", 128, 8, ["a_rgb", "a_gray16"]),  # overlapping tiles cut from uint8 / float32 inputs
])
def test_gray_outputs_equal_the_float32_pipeline_byte_for_byte(one_size_modes, tmp_path, model, tile, batch, names):
    """Inputs travel from the decoding workers as uint8 and per-pixel models run on bands of rows instead of
    tiles: not one output value may change (the reference is the float32 pipeline these replaced)."""
    source = one_size_modes if names is None else str(one_size_modes / "a_*")
    r = run_cli("predict", "-m", model, "--tile", tile, "--batch-size", batch, source, tmp_path)
    assert r.returncode == 0, r.stderr
    photos = sorted(p for p in one_size_modes.iterdir() if names is None or p.stem in names)
    assert len(_outputs(tmp_path)) == len(photos)
    for photo in photos:
        out = Image.open(tmp_path / f"{photo.stem}.png")
        gray = np.asarray(out.getchannel("L") if out.mode == "LA" else out)
        np.testing.assert_array_equal(gray, _float32_pipeline(model, photo, tile, batch), err_msg=photo.name)


# --------------------------------------------------------------------------------------------------------------
# Shell jobs: shards, lists, reports, --fail-fast.


def test_shards_cover_every_file_exactly_once(photo_folder, tmp_path):
    out = tmp_path / "out"
    inputs = sorted(str(p) for p in photo_folder.iterdir())
    taken = []
    for k in (1, 2, 3):
        report = tmp_path / f"shard{k}.jsonl"
        r = run_cli("predict", "-m", "simple-black", "--shard", f"{k}/3", "--report", report, photo_folder, out)
        assert r.returncode == 0, r.stderr
        lines = _report(report.read_text())
        assert {rec["status"] for rec in lines} == {"done"}
        taken.append([rec["input"] for rec in lines])
    assert sorted(sum(taken, [])) == inputs  # together: every file once
    assert [sorted(t) for t in taken] == [inputs[0::3], inputs[1::3], inputs[2::3]]  # deterministic split
    assert len(_outputs(out)) == len(inputs)
    # The same shard again finds all of its files done.
    r = run_cli("predict", "-m", "simple-black", "--shard", "2/3", photo_folder, out)
    assert f"done 0, skipped {len(inputs[1::3])}, failed 0" in r.stderr


def test_take_shard_partitions_any_list():
    for n_items in (0, 1, 7, 100):
        items = list(range(n_items))
        for n in (1, 2, 3, 8):
            parts = [take_shard(items, (k, n)) for k in range(1, n + 1)]
            assert sorted(sum(parts, [])) == items
            assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_report_lines_have_the_documented_fields(photo_folder, tmp_path):
    report = tmp_path / "r.jsonl"
    (tmp_path / "in").mkdir()
    shutil.copy(photo_folder / "coffee.png", tmp_path / "in" / "coffee.png")
    (tmp_path / "in" / "broken.jpg").write_text("not a JPEG")
    for _ in range(2):  # the second run appends its own lines: the first is skipped, the broken file fails again
        run_cli("predict", "-m", "simple-black", "--report", report, tmp_path / "in", tmp_path / "out")
    lines = _report(report.read_text())
    assert [(Path(rec["input"]).name, rec["status"]) for rec in lines] == [
        ("broken.jpg", "failed"), ("coffee.png", "done"), ("coffee.png", "skipped"), ("broken.jpg", "failed")]
    for rec in lines:
        assert list(rec) == ["input", "output", "status", "error", "notes", "seconds"]
        assert isinstance(rec["seconds"], float) and rec["seconds"] >= 0
        assert (rec["error"] is None) == (rec["status"] != "failed")
    assert lines[0]["error"] == "not an image file Pillow can read"
    assert lines[1]["output"] == str(tmp_path / "out" / "coffee.png") and lines[1]["seconds"] > 0


def test_files_from_a_find_pipe_mirrors_the_listed_paths(photo_folder, tmp_path):
    tree = tmp_path / "photos"
    (tree / "2024" / "summer trip").mkdir(parents=True)
    shutil.copy(photo_folder / "coffee.png", tree / "2024" / "summer trip" / "café.png")
    shutil.copy(photo_folder / "astronaut.jpg", tree / "astronaut.jpg")
    shutil.copy(photo_folder / "rocket_rgba.png", tree / "2024" / "skip-me.gif")  # not matched by find
    pipe = (f"find photos -name '*.png' -o -name '*.jpg' | {shlex.join(_command('predict', '-m', 'simple-black'))} "
            f"--files-from - photos out")
    r = subprocess.run(pipe, shell=True, cwd=tmp_path, capture_output=True, text=True, env=_env(), timeout=600)
    assert r.returncode == 0, r.stderr
    assert [str(p.relative_to(tmp_path / "out")) for p in _outputs(tmp_path / "out")] == [
        "2024/summer trip/café.png", "astronaut.png"]
    # A NUL-separated list file (find -print0) with a missing file: that file fails, the rest is done.
    listing = tmp_path / "list"
    listing.write_bytes(b"\0".join(os.fsencode(p) for p in ["photos/astronaut.jpg", "photos/gone.jpg"]) + b"\0")
    r = run_cli("predict", "-m", "simple-black", "--files-from", listing, "photos", "out2", cwd=tmp_path)
    assert r.returncode == 1
    assert "failed: photos/gone.jpg: file not found" in r.stderr and "done 1, skipped 0, failed 1" in r.stderr
    # A listed path outside INPUT would have no place under OUTPUT: an error before any work.
    r = run_cli("predict", "-m", "simple-black", "--files-from", "-", "photos/2024", "out3", cwd=tmp_path,
                input="photos/astronaut.jpg\n")
    assert r.returncode == 2 and "not inside INPUT folder photos/2024" in r.stderr
    assert not (tmp_path / "out3").exists()


def test_fail_fast_stops_at_the_first_failure(photo_folder, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a.png", "b.png", "d.png", "e.png"):
        shutil.copy(photo_folder / "coffee.png", src / name)
    (src / "c.jpg").write_bytes(b"")
    r = run_cli("predict", "-m", "simple-black", "--fail-fast", "--quiet", src, tmp_path / "out")
    assert r.returncode == 1
    # --quiet: only the error and the final count.
    assert r.stderr.splitlines() == [
        f"failed: {src / 'c.jpg'}: empty file (0 bytes)",
        f"done 2, skipped 0, failed 1, not started 2 -> {tmp_path / 'out'}  (stopped at the first failure: "
        f"--fail-fast)"]
    assert [p.name for p in _outputs(tmp_path / "out")] == ["a.png", "b.png"]
    # Without --fail-fast the same batch goes on past the failure.
    r = run_cli("predict", "-m", "simple-black", "--quiet", src, tmp_path / "out")
    assert r.returncode == 1 and "done 2, skipped 2, failed 1 ->" in r.stderr
