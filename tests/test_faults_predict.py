"""Issue #13, the ``predict`` side: nothing a user does, and nothing the machine does, loses a file or ends in a
traceback. Real files, real ``unetcli`` processes, real signals and, where the machine allows, real file systems
(a small tmpfs for a full disk, a read-only bind mount, ``mkfifo``, a bound Unix socket).

Classes covered here (numbers of the issue): 1 inputs are never outputs, 2 one output per input, 3 skip-existing
knows what made the file, 4 special files and unreadable folders, 5 predict's write paths (outputs, ``--report``),
7 faults mid-run, 8 two processes on one OUTPUT, 10 messages.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import socket
import struct
import subprocess
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import run_cli, skimage_photo
from test_batch import (UNPRIVILEGED, _assert_complete_png, _command, _env, _hidden, _outputs, _popen, _wait_for,
                        needs_permissions)

#: predict's record of what it wrote (``unetcli.files.OUTPUT_LOG``), a hidden file at OUTPUT's root.
MANIFEST = ".unetcli-outputs.jsonl"


def _photos(folder: Path, n: int, size: int = 48, ext: str = ".png", prefix: str = "p") -> list[Path]:
    """``n`` small distinct real photos (crops of scikit-image's astronaut)."""
    folder.mkdir(parents=True, exist_ok=True)
    rgb = skimage_photo("astronaut")
    paths = []
    for k in range(n):
        path = folder / f"{prefix}{k:02d}{ext}"
        Image.fromarray(rgb[k * 7:k * 7 + size, k * 11:k * 11 + size]).save(path)
        paths.append(path)
    return paths


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _count(stderr: str) -> tuple[int, int, int]:
    line = next(line for line in stderr.splitlines() if "done " in line and "skipped " in line)
    done, skipped, failed = (int(line.split(word + " ")[1].split(",")[0].split(" ")[0])
                             for word in ("done", "skipped", "failed"))
    return done, skipped, failed


# --------------------------------------------------------------------------------------------------------------
# 1. Inputs are never outputs.


def test_output_equal_to_input_is_refused_and_the_photos_are_untouched(tmp_path):
    src = tmp_path / "photos"
    _photos(src, 3, ext=".jpg")
    before = _snapshot(src)
    # The case of the issue: colour originals replaced by gray images, exit 0.
    r = run_cli("predict", "-m", "simple-black", "--ext", ".jpg", "--overwrite", src, src)
    assert r.returncode == 2, r.stderr
    assert len(_lines(r.stderr)) == 1 and "is the INPUT folder" in r.stderr and "--suffix" in r.stderr
    assert _snapshot(src) == before


@pytest.mark.parametrize("recursive", [[], ["-r"]])
def test_output_inside_input_is_refused(tmp_path, recursive):
    src = tmp_path / "photos"
    _photos(src, 2)
    r = run_cli("predict", "-m", "simple-black", *recursive, src, src / "gray")
    assert r.returncode == 2, r.stderr
    assert len(_lines(r.stderr)) == 1 and "is inside the INPUT folder" in r.stderr
    assert not (src / "gray").exists()


def test_an_output_path_that_is_an_input_file_is_refused(tmp_path):
    src = tmp_path / "photos"
    photo = _photos(src, 1)[0]
    before = photo.read_bytes()
    r = run_cli("predict", "-m", "simple-black", "--overwrite", photo, src)  # src/p00.png -> src/p00.png
    assert r.returncode == 2, r.stderr
    assert len(_lines(r.stderr)) == 1 and "would replace the input file" in r.stderr
    assert photo.read_bytes() == before
    # A suffix that makes an output name equal to another input's is refused too: a.png -> a_x.png, an input.
    Image.open(photo).save(src / "p00_x.png")
    r = run_cli("predict", "-m", "simple-black", "--suffix", "_x", src, src)
    assert r.returncode == 2 and "would replace the input file" in r.stderr


def test_suffix_writes_beside_the_photos_and_a_rerun_never_reads_its_outputs(tmp_path):
    src = tmp_path / "photos"
    _photos(src, 2, ext=".jpg")
    args = ("predict", "-m", "simple-black", "--suffix", "_gray", src, src)
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in _outputs(src)) == ["p00.jpg", "p00_gray.png", "p01.jpg", "p01_gray.png"]
    r = run_cli(*args)  # the outputs are not inputs: no p00_gray_gray.png
    assert r.returncode == 0 and _count(r.stderr) == (0, 2, 0), r.stderr
    assert len(_outputs(src)) == 4


def test_overwrite_never_replaces_a_file_unetcli_did_not_write(tmp_path):
    src, out = tmp_path / "photos", tmp_path / "out"
    _photos(src, 2)
    out.mkdir()
    (out / "p00.png").write_bytes(b"the user's own file, not an output")
    r = run_cli("predict", "-m", "simple-black", "--overwrite", src, out)
    assert r.returncode == 1, r.stderr
    assert (out / "p00.png").read_bytes() == b"the user's own file, not an output"
    assert f"failed: {src / 'p00.png'}: output {out / 'p00.png'} exists and unetcli has no record of writing it" \
        in r.stderr
    assert _count(r.stderr) == (1, 0, 1)


# --------------------------------------------------------------------------------------------------------------
# 2. One output per input, always.


def test_colliding_names_get_one_output_each_and_the_count_equals_the_files(tmp_path):
    src = tmp_path / "photos"
    src.mkdir()
    rgb = skimage_photo("coffee")
    for k, name in enumerate(["a.png", "a.PNG", "a.jpg", "a_png.png", "A.png"]):
        Image.fromarray(rgb[k * 20:k * 20 + 40, :50]).save(src / name, format="PNG" if "png" in name.lower()
                                                           else "JPEG")
    out = tmp_path / "out"
    r = run_cli("predict", "-m", "simple-black", src, out)
    assert r.returncode == 0, r.stderr
    written = _outputs(out)
    assert _count(r.stderr) == (5, 0, 0) and len(written) == 5
    assert len({p.name.casefold() for p in written}) == 5  # distinct also on a case-insensitive file system
    # Across shards: the same names, every file once.
    for k in (1, 2):
        r = run_cli("predict", "-m", "simple-black", "--shard", f"{k}/2", src, tmp_path / "sharded")
        assert r.returncode == 0, r.stderr
    assert [p.name for p in _outputs(tmp_path / "sharded")] == [p.name for p in written]


# --------------------------------------------------------------------------------------------------------------
# 3. Skip-existing knows what made the file.


def test_an_output_made_by_another_model_is_reported_not_counted_done_and_overwrite_replaces_it(tmp_path):
    src, out = tmp_path / "photos", tmp_path / "out"
    _photos(src, 2)
    assert run_cli("predict", "-m", "simple-black", src, out).returncode == 0
    before = _snapshot(out)
    r = run_cli("predict", "-m", "unet-decolorize", src, out)
    assert r.returncode == 1, r.stderr
    assert _count(r.stderr) == (0, 0, 2)
    assert "exists, made with other settings (model simple-black" in r.stderr and "--overwrite replaces it" in r.stderr
    assert _snapshot(out) == before
    r = run_cli("predict", "-m", "unet-decolorize", "--overwrite", src, out)
    assert r.returncode == 0 and _count(r.stderr) == (2, 0, 0), r.stderr
    # Made by the same model, weights and options now: skipped.
    r = run_cli("predict", "-m", "unet-decolorize", src, out)
    assert r.returncode == 0 and _count(r.stderr) == (0, 2, 0), r.stderr
    records = [json.loads(line) for line in (out / MANIFEST).read_text().splitlines()]
    assert records[-1]["made_by"]["model"] == "unet-decolorize" and len(records[-1]["made_by"]["weights_sha256"]) == 64


def test_outputs_stay_byte_identical(tmp_path):
    """The record lives beside the outputs: the images are the same bytes as an encode of the same pixels."""
    src, out = tmp_path / "photos", tmp_path / "out"
    _photos(src, 1)
    assert run_cli("predict", "-m", "simple-black", src, out).returncode == 0
    with Image.open(out / "p00.png") as im:
        assert set(im.info) <= {"dpi"} and im.text == {}
        pixels = im.copy()
    redo = tmp_path / "redo.png"
    pixels.save(redo, compress_level=1)
    assert redo.read_bytes() == (out / "p00.png").read_bytes()


# --------------------------------------------------------------------------------------------------------------
# 4. Special files and unreadable folders.


def test_fifo_and_socket_are_reported_and_never_opened(tmp_path):
    src, out = tmp_path / "photos", tmp_path / "out"
    _photos(src, 1)
    os.mkfifo(src / "pipe.jpg")  # opening it for reading would block until a writer appears
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(src / "sock.png"))
    try:
        r = run_cli("predict", "-m", "simple-black", "--workers", "0", src, out, timeout=60)
    finally:
        sock.close()
    assert r.returncode == 1, r.stderr
    assert f"failed: {src / 'pipe.jpg'}: a named pipe (FIFO), not a regular file: not opened" in r.stderr
    assert f"failed: {src / 'sock.png'}: a socket, not a regular file: not opened" in r.stderr
    assert _count(r.stderr) == (1, 0, 2) and "Traceback" not in r.stderr
    # A FIFO given as INPUT itself: a usage error, not a hang.
    r = run_cli("predict", "-m", "simple-black", src / "pipe.jpg", out, timeout=60)
    assert r.returncode == 2 and "a named pipe (FIFO)" in r.stderr


@needs_permissions
def test_unreadable_sub_folder_under_recursive_is_reported(tmp_path):
    src, out = tmp_path / "photos", tmp_path / "out"
    _photos(src, 1)
    _photos(src / "locked", 1, prefix="q")
    (src / "locked").chmod(0o000)
    try:
        r = subprocess.run([*UNPRIVILEGED, *_command("predict", "-m", "simple-black", "-r", src, out)],
                           capture_output=True, text=True, timeout=120, env=_env())
    finally:
        (src / "locked").chmod(0o755)
    assert r.returncode == 1, r.stderr
    assert (f"failed: {src / 'locked'}: cannot list the folder (permission denied): its files were not read"
            in r.stderr.splitlines())
    assert _count(r.stderr) == (1, 0, 1)


# --------------------------------------------------------------------------------------------------------------
# 5. Write paths of predict: outputs and --report.


@contextlib.contextmanager
def _mounted(*args: str, target: Path):
    target.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", *args, str(target)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount here ({r.stderr.strip()})")
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], capture_output=True)


def _noise_photos(folder: Path, n: int, side: int = 96) -> None:
    """Photos whose gray outputs do not compress (about side*side bytes each)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for k in range(n):
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(folder / f"n{k:02d}.png")


def test_full_disk_stops_with_one_line_and_leaves_only_complete_outputs(tmp_path):
    src = tmp_path / "photos"
    _noise_photos(src, 12)  # ~9 KB outputs: a 64 KB file system holds about six
    with _mounted("-t", "tmpfs", "-o", "size=64k", "tmpfs", target=tmp_path / "disk") as disk:
        out = disk / "out"
        r = run_cli("predict", "-m", "simple-black", "--workers", "0", "--batch-size", "1", src, out)
        assert r.returncode == 1, r.stderr
        assert "Traceback" not in r.stderr
        failed = [line for line in r.stderr.splitlines() if line.startswith("failed:")]
        assert failed and all(": no space left on device" in line and str(out) in line for line in failed)
        assert "(OUTPUT cannot be written: no space left on device)" in r.stderr.splitlines()[-1]
        done, _, _ = _count(r.stderr)
        written = _outputs(out)
        assert len(written) == done > 0
        for path in written:
            _assert_complete_png(path, (96, 96))
        assert _hidden(out) == []  # no temporary file left


def test_read_only_output_file_system_is_an_error_before_any_work(tmp_path):
    src, ro = tmp_path / "photos", tmp_path / "ro"
    _photos(src, 1)
    (tmp_path / "backing").mkdir()
    with _mounted("--bind", "-o", "ro", str(tmp_path / "backing"), target=ro):
        if os.access(ro, os.W_OK) and subprocess.run(["touch", str(ro / "x")]).returncode == 0:
            pytest.skip("the bind mount is not read-only here")
        r = run_cli("predict", "-m", "simple-black", src, ro / "out")
    assert r.returncode == 2
    assert r.stderr.splitlines() == [f"error: output folder {ro / 'out'} is not writable (Read-only file system)"]


def test_a_file_where_an_output_folder_should_be_fails_that_file_only(tmp_path):
    src, out = tmp_path / "photos", tmp_path / "out"
    _photos(src, 1)
    _photos(src / "sub", 1, prefix="q")
    out.mkdir()
    (out / "sub").write_text("a file, not a folder")
    r = run_cli("predict", "-m", "simple-black", "-r", src, out)
    assert r.returncode == 1, r.stderr
    assert (f"failed: {src / 'sub' / 'q00.png'}: could not write {out / 'sub' / 'q00.png'}: a file is where a folder "
            f"should be") in r.stderr.splitlines()
    assert _count(r.stderr) == (1, 0, 1) and "Traceback" not in r.stderr


def test_report_on_a_full_disk_stops_with_one_line_and_keeps_whole_lines(tmp_path):
    src = tmp_path / "photos"
    _photos(src, 3)
    with _mounted("-t", "tmpfs", "-o", "size=16k", "tmpfs", target=tmp_path / "disk") as disk:
        with contextlib.suppress(OSError), open(disk / "filler", "wb") as f:
            while True:  # fill the file system up
                f.write(b"x" * 512)
                f.flush()
        report = disk / "run.jsonl"
        report.touch()
        r = run_cli("predict", "-m", "simple-black", "--workers", "0", "--report", report, src, tmp_path / "out")
        assert r.returncode == 1, r.stderr
        assert "Traceback" not in r.stderr
        assert f"(--report {report} cannot be written: no space left on device)" in r.stderr.splitlines()[-1]
        assert report.read_bytes() == b""  # no partial line
    for path in _outputs(tmp_path / "out"):
        _assert_complete_png(path)


# --------------------------------------------------------------------------------------------------------------
# 7. Faults mid-run.


@pytest.fixture
def slow_run(tmp_path, random_weights):
    """Arguments of a slow run (unet-decolorize, one 128-px photo a batch) over 16 photos, and its folders."""
    src, out = tmp_path / "photos", tmp_path / "out"
    _photos(src, 16, size=128)
    args = ["predict", "-m", "unet-decolorize", "--weights", random_weights("unet-decolorize"), "--batch-size", "1",
            "--precision", "fp32"]
    return args, src, out


def _assert_interrupted_cleanly(text: str, out: Path, n: int) -> None:
    assert "Traceback" not in text and "Exception ignored" not in text, text
    written = _outputs(out)
    assert 0 < len(written) < n
    assert f"interrupted: done {len(written)}, skipped 0, failed 0, not started {n - len(written)}" in text
    assert _hidden(out) == []
    for path in written:
        _assert_complete_png(path, (128, 128))


def test_sigterm_behaves_like_ctrl_c(slow_run, tmp_path):
    args, src, out = slow_run
    log = tmp_path / "log"
    proc = _popen(*args, "--workers", "1", src, out, log=log)
    _wait_for(lambda: out.is_dir() and len(_outputs(out)) >= 2, proc, log)
    proc.send_signal(signal.SIGTERM)  # what kill, systemd and job schedulers send
    assert proc.wait(timeout=60) == 130, log.read_text()
    _assert_interrupted_cleanly(log.read_text(), out, 16)


def test_second_ctrl_c_still_prints_a_correct_count(slow_run, tmp_path):
    args, src, out = slow_run
    log = tmp_path / "log"
    proc = _popen(*args, "--workers", "1", src, out, log=log, start_new_session=True)
    _wait_for(lambda: out.is_dir() and len(_outputs(out)) >= 2, proc, log)
    os.killpg(proc.pid, signal.SIGINT)
    time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # impatient: again, while the files in flight are finished
    assert proc.wait(timeout=60) == 130, log.read_text()
    _assert_interrupted_cleanly(log.read_text(), out, 16)


def test_closed_stdout_pipe_ends_the_run_quietly(slow_run, tmp_path):
    args, src, out = slow_run
    cmd = " ".join(f"'{a}'" for a in _command(*args, "--workers", "1", "--json", src, out))
    r = subprocess.run(["bash", "-c", f"{cmd} 2>{tmp_path / 'err'} | head -1; echo ${{PIPESTATUS[0]}}"],
                       capture_output=True, text=True, timeout=300, env=_env())
    first, code = r.stdout.splitlines()
    assert json.loads(first)["status"] == "done"
    assert code == "130"
    text = (tmp_path / "err").read_text()
    assert "(stdout was closed)" in text
    _assert_interrupted_cleanly(text, out, 16)


def _children(pid: int) -> list[int]:
    with contextlib.suppress(OSError):
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return []


def test_a_killed_decoding_worker_costs_nothing(slow_run, tmp_path):
    args, src, out = slow_run
    log = tmp_path / "log"
    proc = _popen(*args, "--workers", "2", src, out, log=log)
    _wait_for(lambda: out.is_dir() and len(_outputs(out)) >= 1 and len(_children(proc.pid)) >= 2, proc, log)
    os.kill(_children(proc.pid)[0], signal.SIGKILL)  # what the out-of-memory killer does
    assert proc.wait(timeout=300) == 0, log.read_text()
    text = log.read_text()
    assert "Traceback" not in text
    assert "done 16, skipped 0, failed 0" in text
    assert len(_outputs(out)) == 16 and _hidden(out) == []


def test_a_worker_socket_gone_during_the_hand_over_counts_as_a_worker_death(tmp_path):
    """A Ctrl-C to the whole process group can end a decoding worker while the main process fetches a sample's
    shared memory from it; multiprocessing then fails to connect to the worker's socket (FileNotFoundError, seen in
    CI once): a worker death (retried, or the interrupt's count), not a traceback. The same error from anything
    else stays an error."""
    from multiprocessing.connection import Client

    from unetcli.engine.predict import _worker_died

    with pytest.raises(FileNotFoundError) as gone:
        Client(str(tmp_path / "worker-socket"))  # what resource_sharer does, to a socket that no longer exists
    assert _worker_died(gone.value) == "it exited unexpectedly"
    with pytest.raises(FileNotFoundError) as other:
        open(tmp_path / "photo.jpg", "rb")
    assert _worker_died(other.value) is None


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs CPU affinity (Linux)")
def test_on_one_core_the_default_is_one_decoding_worker_and_a_killed_worker_costs_nothing(slow_run, tmp_path):
    """No --workers, in a process that may use one core (what taskset or a cpuset gives): one decoding worker
    process (not --workers 0, though faster there: a crashed decoder must cost one file, not the run)."""
    args, src, out = slow_run
    log, core = tmp_path / "log", min(os.sched_getaffinity(0))

    def one_core():
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.sched_setaffinity(0, {core})

    with open(log, "ab") as f:
        proc = subprocess.Popen(_command(*args, src, out), stdout=f, stderr=subprocess.STDOUT, env=_env(),
                                preexec_fn=one_core)
    _wait_for(lambda: out.is_dir() and len(_outputs(out)) >= 1 and _children(proc.pid), proc, log)
    workers = _children(proc.pid)
    os.kill(workers[0], signal.SIGKILL)  # what the out-of-memory killer, or a codec's segfault, does
    assert proc.wait(timeout=300) == 0, log.read_text()
    assert len(workers) == 1
    text = log.read_text()
    assert "Traceback" not in text
    assert "done 16, skipped 0, failed 0" in text
    assert len(_outputs(out)) == 16 and _hidden(out) == []


class _OutOfMemoryAbove(torch.nn.Module):
    """Wraps the real model; raises torch's real out-of-memory error for batches of several images or more than
    ``pixels`` pixels (what a GPU does on a too-large batch), and always for an all-red image."""

    def __init__(self, model: torch.nn.Module, pixels: int) -> None:
        super().__init__()
        self.model, self.pixels = model, pixels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        red = bool((x[:, 0] > 0.99).all() and (x[:, 1] < 0.01).all())
        if red or x.shape[0] > 1 or x.shape[2] * x.shape[3] > self.pixels:
            raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {x.numel() * 4} bytes (test)")
        return self.model(x)


def test_out_of_memory_retries_one_image_then_tiles_and_fails_only_what_cannot_fit(tmp_path, photo_folder,
                                                                                     monkeypatch):
    """In-process: the error is injected by wrapping the model (a real OOM cannot be made reliably here), the rest
    (batching, retries, tiling, writing, counting) is the real predict."""
    from unetcli.engine import predict as engine
    from unetcli.engine import predictor as predictor_module

    src = tmp_path / "photos"
    src.mkdir()
    for p in photo_folder.iterdir():
        (src / p.name).write_bytes(p.read_bytes())
    Image.new("RGB", (40, 30), (255, 0, 0)).save(src / "red.png")
    reference = tmp_path / "reference"
    results = []
    opts = engine.PredictOptions(model="simple-black", source=str(src), output=reference, workers=0, batch_size=4)
    engine.predict(opts)
    real_load = predictor_module.load_backend
    monkeypatch.setattr(predictor_module, "load_backend",
                        lambda *a, **k: _OutOfMemoryAbove(real_load(*a, **k), 64 * 64))
    out = tmp_path / "out"
    opts = engine.PredictOptions(model="simple-black", source=str(src), output=out, workers=0, batch_size=4)
    summary = engine.predict(opts, on_result=results.append)
    failed = {Path(r.input).name: r.error for r in results if r.status == "failed"}
    assert failed == {"red.png": "out of memory in the model on cpu, even on its smallest tiles"}
    assert summary.done == len(list(src.iterdir())) - 1 and summary.failed == 1
    for path in _outputs(reference):  # retried alone and on tiles: the same pixels (simple-black is per-pixel)
        if path.name != "red.png":
            assert np.array_equal(np.asarray(Image.open(path)), np.asarray(Image.open(out / path.name))), path.name


# --------------------------------------------------------------------------------------------------------------
# 8. Two processes on one OUTPUT.


def test_live_temporary_files_of_another_process_are_kept_stale_ones_removed(tmp_path):
    src, out = tmp_path / "photos", tmp_path / "out"
    _photos(src, 2)
    out.mkdir()
    other = subprocess.Popen(["sleep", "60"])  # another live writer into OUTPUT
    gone = subprocess.Popen(["true"])
    gone.wait()  # a writer killed earlier: its PID is free
    live_tmp, stale_tmp = out / f".p00.png.{other.pid}.tmp", out / f".p01.png.{gone.pid}.tmp"
    try:
        live_tmp.write_bytes(b"being written by another process")
        stale_tmp.write_bytes(b"half a PNG")
        r = run_cli("predict", "-m", "simple-black", src, out)
        assert r.returncode == 0, r.stderr
        assert live_tmp.exists() and not stale_tmp.exists()
    finally:
        other.kill()
        other.wait()
    r = run_cli("predict", "-m", "simple-black", src, out)  # its writer is gone now
    assert r.returncode == 0 and not live_tmp.exists()


def test_a_rerun_cleans_up_after_a_killed_overwrite_run(tmp_path):
    src, out = tmp_path / "photos", tmp_path / "out"
    _photos(src, 2)
    assert run_cli("predict", "-m", "simple-black", src, out).returncode == 0
    gone = subprocess.Popen(["true"])
    gone.wait()
    # What kill -9 of an --overwrite run leaves: a temporary file beside an output that exists.
    (out / f".p00.png.{gone.pid}.tmp").write_bytes(b"half a PNG")
    r = run_cli("predict", "-m", "simple-black", src, out)  # nothing to do: every output exists
    assert r.returncode == 0 and _count(r.stderr) == (0, 2, 0), r.stderr
    assert _hidden(out) == []


# --------------------------------------------------------------------------------------------------------------
# 10. Messages.


def test_control_characters_in_file_names_cannot_forge_lines(tmp_path):
    src, out = tmp_path / "photos", tmp_path / "out"
    _photos(src, 1)
    evil = "x.jpg: fine\nfailed: forged.jpg: \x1b[2Jgone.jpg"
    (src / evil).write_text("not an image")
    (src / os.fsdecode(b"bad-\xff-bytes.jpg")).write_text("not an image")
    r = run_cli("predict", "-m", "simple-black", src, out)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr and "\x1b" not in r.stderr
    failed = [line for line in r.stderr.splitlines() if line.startswith("failed:")]
    assert len(failed) == 2 and not any(line.startswith("failed: forged") for line in r.stderr.splitlines())
    assert f"failed: {src}/x.jpg: fine\\nfailed: forged.jpg: \\x1b[2Jgone.jpg: not an image file" in r.stderr
    assert f"failed: {src}/bad-\\xff-bytes.jpg: not an image file Pillow can read" in r.stderr


def test_decoder_internals_are_translated(tmp_path):
    src = tmp_path / "photos"
    src.mkdir()
    data = (tmp_path / "x.bmp")
    Image.new("RGB", (8, 8)).save(data)
    (src / "cut.bmp").write_bytes(data.read_bytes()[:10])
    r = run_cli("predict", "-m", "simple-black", src, tmp_path / "out")
    assert r.returncode == 1
    assert "unpack_from" not in r.stderr and "buffer" not in r.stderr
    assert f"failed: {src / 'cut.bmp'}: corrupt image header (BMP: a header is cut short or malformed)" in r.stderr


def _corrupt_exif_jpeg(path: Path) -> None:
    """A JPEG whose EXIF block claims 200 entries and holds none (Pillow warns "Corrupt EXIF data")."""
    import io
    exif = Image.Exif()
    exif[0x010F] = "Camera"
    buf = io.BytesIO()
    Image.fromarray(skimage_photo("coffee")[:40, :60]).save(buf, "JPEG", exif=exif.tobytes())
    jpeg = buf.getvalue()
    at = jpeg.index(b"Exif\0\0")
    order = "<" if jpeg[at + 6:at + 8] == b"II" else ">"
    path.write_bytes(jpeg[:at + 14] + struct.pack(order + "H", 200) + jpeg[at + 16:])


def test_pillow_warnings_become_notes_naming_the_file(tmp_path):
    src = tmp_path / "photos"
    src.mkdir()
    _corrupt_exif_jpeg(src / "odd.jpg")
    r = run_cli("predict", "-m", "simple-black", src, tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert "UserWarning" not in r.stderr and "warnings.warn" not in r.stderr
    assert any(line.startswith(f"note: {src / 'odd.jpg'}: Pillow warned: Corrupt EXIF data")
               for line in r.stderr.splitlines()), r.stderr


@pytest.mark.parametrize("orientation", [0, 1, 9])
def test_exif_note_only_when_the_image_was_really_turned(tmp_path, orientation):
    src = tmp_path / "photos"
    src.mkdir()
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(skimage_photo("coffee")[:40, :60]).save(src / "photo.jpg", exif=exif.tobytes())
    r = run_cli("predict", "-m", "simple-black", src, tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert "EXIF orientation applied" not in r.stderr
    assert Image.open(tmp_path / "out" / "photo.png").size == (60, 40)


def test_a_bomb_names_one_limit(tmp_path):
    src = tmp_path / "photos"
    src.mkdir()
    side = math.isqrt(2 * Image.MAX_IMAGE_PIXELS) + 1  # past twice the limit: Pillow's error, not its warning

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    z = zlib.compressobj(9)
    idat = b"".join(z.compress(bytes(side + 1)) for _ in range(side)) + z.flush()
    (src / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0,
                                                                                      0, 0))
                                   + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    r = run_cli("predict", "-m", "simple-black", src, tmp_path / "out")
    assert r.returncode == 1
    line = next(line for line in r.stderr.splitlines() if line.startswith("failed:"))
    assert f"{Image.MAX_IMAGE_PIXELS:,} pixels" in line and f"{side * side:,} pixels" in line
    assert str(2 * Image.MAX_IMAGE_PIXELS) not in line and f"{2 * Image.MAX_IMAGE_PIXELS:,}" not in line
