"""Issue 13 for train, export, weights, summary and colorize: full disks and read-only file systems (real ones: a
small tmpfs and a read-only bind mount), weights that are not what they claim (a malicious pickle included), runs
that must not replace each other, option errors found before any photo is decoded, ``summary`` on the meta
device, and the memory of colorize's full-resolution recombination."""

from __future__ import annotations

import csv
import errno
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from typer.testing import CliRunner

from conftest import DATA, held_out_photos, run_cli
from unetcli.cli import app
from unetcli.errors import WeightsError
from unetcli.weights import load_state, sha256_file

PHOTOS = DATA / "photos"
SUFFIX = {"onnx": ".onnx", "torchscript": ".torchscript"}


# --------------------------------------------------------------------------------------------------- real file systems


def _mount(*args: str) -> None:
    r = subprocess.run(["mount", *args], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"this machine cannot mount ({r.stderr.strip() or r.returncode}): needs root or CAP_SYS_ADMIN")


@pytest.fixture
def mounts():
    """Mount helper: ``full(path, free)`` a tmpfs with about ``free`` bytes left, ``readonly(path)`` a read-only
    bind mount of a fresh folder; everything is unmounted afterwards."""
    done: list[Path] = []

    class Mounts:
        @staticmethod
        def full(path: Path, free: int = 0, size: str = "2m") -> Path:
            path.mkdir(parents=True, exist_ok=True)
            _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))
            done.append(path)
            with open(path / "filler", "wb", buffering=0) as f:  # fill it up, then give back `free` bytes
                try:
                    while True:
                        f.write(b"\0" * 65536)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
            if free:
                os.truncate(path / "filler", max(0, os.path.getsize(path / "filler") - free))
            return path

        @staticmethod
        def readonly(path: Path) -> Path:
            source = path.with_name(path.name + "-source")
            source.mkdir(parents=True)
            path.mkdir(parents=True)
            _mount("--bind", "-o", "ro", str(source), str(path))
            done.append(path)
            return path

    yield Mounts
    for path in reversed(done):
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _temporaries(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob(".*.tmp")]


def _one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr and "terminate called" not in stderr, stderr
    errors = [ln for ln in stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, stderr
    return errors[0]


class _Result:
    """What a test checks of a command run in-process (``returncode``, ``stdout``, ``stderr``)."""

    def __init__(self, r) -> None:
        assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)  # no traceback
        self.returncode, self.stdout, self.stderr = r.exit_code, r.stdout, r.stderr


def cli(*args) -> _Result:
    """The ``unetcli`` command run in-process (Typer's CliRunner: the same code as the console script, without the
    seconds of a fresh interpreter importing torch); an exception other than a clean exit fails the test."""
    return _Result(CliRunner().invoke(app, [str(a) for a in args]))


# --------------------------------------------------------------------------------------------------- class 5: export


@pytest.mark.parametrize("fmt", ["torchscript"])  # ONNX (slow to export) did this already: tests/test_export.py
def test_export_to_a_full_disk_is_one_line_exit_2_and_leaves_nothing(fmt, mounts, tmp_path):
    """TorchScript used to abort the process (C++ std::__ios_failure, exit 134) and leave its temporary file."""
    disk = mounts.full(tmp_path / "disk")
    out = disk / f"sb{SUFFIX[fmt]}"
    r = run_cli("export", "simple-black", "-f", fmt, "-o", out, "--input-size", "16")
    line = _one_error_line(r.stderr)
    assert r.returncode == 2 and str(out) in line and "No space left on device" in line, r.stderr
    assert sorted(p.name for p in disk.iterdir()) == ["filler"]


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_export_to_a_read_only_file_system_is_one_line_exit_2(fmt, mounts, tmp_path):
    """Found before the export runs (an ONNX export takes half a minute on one core)."""
    ro = mounts.readonly(tmp_path / "ro")
    out = ro / f"sb{SUFFIX[fmt]}"
    r = cli("export", "simple-black", "-f", fmt, "-o", out, "--input-size", "16")
    line = _one_error_line(r.stderr)
    assert r.returncode == 2 and str(out) in line and "Read-only file system" in line, r.stderr
    assert list(ro.iterdir()) == [] and "exporting" not in r.stderr


# --------------------------------------------------------------------------------------------------- class 5: train


def _train_args(out: Path | None, *extra, model: str = "simple-black") -> list:
    return ["train", "--model", model, "--data", PHOTOS, *(["--out", out] if out is not None else []), "--batch-size",
            "2", "--size", "64", "--val-split", "0.25", "--workers", "0", "--precision", "fp32", *extra]


def _train(out: Path | None, *extra, model: str = "simple-black"):
    """A short real training run in a subprocess."""
    return run_cli(*_train_args(out, *extra, model=model))


def _train_here(out: Path | None, *extra, model: str = "simple-black") -> _Result:
    """The same run in-process (:func:`cli`)."""
    return cli(*_train_args(out, *extra, model=model))


def test_train_into_a_read_only_file_system_is_refused_before_decoding(mounts, tmp_path):
    ro = mounts.readonly(tmp_path / "ro")
    r = _train(ro / "run", "--epochs", "1")
    line = _one_error_line(r.stderr)
    assert r.returncode == 2 and str(ro / "run") in line and "Read-only file system" in line, r.stderr
    assert "decoded" not in r.stderr


@pytest.mark.parametrize("free, lost, extra", [
    (24_000, "metrics.png", ()),
    (4096, "last.pt", ("--crops-per-photo", "4", "--save-every", "0.00001")),
])
def test_train_on_a_disk_that_fills_up_names_the_file_and_keeps_what_was_written(free, lost, extra, mounts, tmp_path):
    """The plot at the end of the epoch (the weights of simple-black fit in 24 kB, the PNG does not) and a checkpoint
    within the first epoch (``--save-every``; only split.json fits in one page) fail with one line naming the file,
    exit 1, no temporary file left, and every file present complete. The checkpoint used to end in an obscure
    RuntimeError of torch's writer ("unexpected pos") with a traceback."""
    disk = mounts.full(tmp_path / "disk", free=free)
    r = _train(disk / "run", "--epochs", "1", *extra)
    line = _one_error_line(r.stderr)
    assert r.returncode == 1 and str(disk / "run" / lost) in line and "No space left on device" in line, r.stderr
    assert "no checkpoint was written yet" in line
    assert _temporaries(disk) == []
    assert not (disk / "run" / lost).exists()
    assert json.loads((disk / "run" / "split.json").read_text())["train"]
    if lost == "metrics.png":
        card = json.loads((disk / "run" / "best.json").read_text())
        assert card["sha256"] == sha256_file(disk / "run" / "best.safetensors")


# --------------------------------------------------------------------------------------------------- class 6: weights


class _Evil:
    """Unpickling this runs ``open(MARKER, "w")``: it creates a file."""

    marker = ""

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def bad_weights(tmp_path) -> dict[str, tuple[Path, str]]:
    """name -> (file, what the error line must say)."""
    d = tmp_path / "w"
    d.mkdir()
    _Evil.marker = str(tmp_path / "PWNED")
    torch.save({"model": _Evil()}, d / "evil.pt")  # a zip checkpoint whose pickle calls open() when loaded
    (d / "evil-plain.pt").write_bytes(pickle.dumps(_Evil()))
    (d / "empty.safetensors").write_bytes(b"")
    (d / "empty.pt").write_bytes(b"")
    rng = np.random.default_rng(0)
    (d / "random.safetensors").write_bytes(rng.bytes(4096))
    (d / "random.pt").write_bytes(rng.bytes(4096))
    torch.save(torch.zeros(3), d / "tensor.pt")
    torch.save([1, 2, 3], d / "list.pt")
    torch.save({"conv.weight": "not a tensor"}, d / "strings.pt")
    (d / "folder.safetensors").mkdir()
    return {
        "evil.pt": (d / "evil.pt", "never unpickled"),
        "evil-plain.pt": (d / "evil-plain.pt", "never unpickled"),
        "empty.safetensors": (d / "empty.safetensors", "empty file"),
        "empty.pt": (d / "empty.pt", "empty file"),
        "random.safetensors": (d / "random.safetensors", "not a safetensors file"),
        "random.pt": (d / "random.pt", "not a PyTorch checkpoint"),
        "tensor.pt": (d / "tensor.pt", "a single tensor"),
        "list.pt": (d / "list.pt", "a list"),
        "strings.pt": (d / "strings.pt", "not a tensor"),
        "folder.safetensors": (d / "folder.safetensors", "is a directory"),
    }


WEIGHT_FIXTURES = ["evil.pt", "evil-plain.pt", "empty.safetensors", "empty.pt", "random.safetensors", "random.pt",
                   "tensor.pt", "list.pt", "strings.pt", "folder.safetensors"]


@pytest.mark.parametrize("name", WEIGHT_FIXTURES)
def test_weights_that_are_not_weights_are_named_for_what_they_are(name, bad_weights, tmp_path):
    from unetcli.models.registry import get_spec

    path, what = bad_weights[name]
    with pytest.raises(WeightsError) as exc:
        load_state(path, get_spec("simple-black"))
    assert str(path) in exc.value.message and what in exc.value.message
    assert not (tmp_path / "PWNED").exists()  # the pickle was never executed


@pytest.mark.parametrize("name", ["evil.pt", "random.pt", "folder.safetensors"])
def test_predict_with_weights_that_are_not_weights_exits_2_with_one_line(name, bad_weights, tmp_path):
    path, what = bad_weights[name]
    r = run_cli("predict", "-m", "simple-black", "-w", path, PHOTOS, tmp_path / "out", "--workers", "0")
    line = _one_error_line(r.stderr)
    assert r.returncode == 2 and str(path) in line and what in line, r.stderr
    assert not (tmp_path / "PWNED").exists()  # the pickle was never executed
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_train_weights_and_summary_weights_are_checked_the_same_way(bad_weights, tmp_path):
    path, what = bad_weights["tensor.pt"]
    for r in (_train_here(tmp_path / "run", "--weights", path), cli("summary", "simple-black", "-w", path)):
        line = _one_error_line(r.stderr)
        assert r.returncode == 2 and str(path) in line and what in line, r.stderr
    assert "decoded" not in r.stderr


def test_resume_of_a_plain_state_dict_or_a_malicious_pickle_is_refused(bad_weights, tmp_path):
    torch.save({"conv1.weight": torch.zeros(2, 3, 1, 1)}, tmp_path / "weights.pt")
    r = cli("train", "--resume", tmp_path / "weights.pt")
    line = _one_error_line(r.stderr)
    assert r.returncode == 2 and "weights.pt" in line and "state dict" in line and "--weights" in line, r.stderr
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(tmp_path / "weights.pt", run / "last.pt")
    r = cli("train", "--resume", run)
    line = _one_error_line(r.stderr)
    assert r.returncode == 2 and str(run / "last.pt") in line and "state dict" in line, r.stderr
    shutil.copy(bad_weights["evil.pt"][0], run / "last.pt")
    r = run_cli("train", "--resume", run)  # a real process: nothing of the pickle may run
    line = _one_error_line(r.stderr)
    assert r.returncode == 2 and "never unpickled" in line and not (tmp_path / "PWNED").exists(), r.stderr


# --------------------------------------------------------------------------------------------------- class 9: runs


def test_a_new_run_never_replaces_an_existing_one(tmp_path, monkeypatch):
    """An explicit --out that holds a run is refused (the user named it: writing elsewhere would surprise scripts
    that read RUN/MODEL.safetensors); the default runs/MODEL gets the next free name, runs/MODEL2, as ultralytics
    does (nobody chose it, so a new run must neither fail nor replace the last one)."""
    assert _train_here(tmp_path / "run", "--epochs", "1").returncode == 0
    before = {p.name: sha256_file(p) for p in (tmp_path / "run").iterdir() if p.is_file()}
    r = _train_here(tmp_path / "run", "--epochs", "1")
    line = _one_error_line(r.stderr)
    assert r.returncode == 2 and "already holds a run" in line and f"--resume {tmp_path / 'run'}" in line, r.stderr
    assert "decoded" not in r.stderr
    assert {p.name: sha256_file(p) for p in (tmp_path / "run").iterdir() if p.is_file()} == before

    monkeypatch.chdir(tmp_path)
    assert _train_here(None, "--epochs", "1").returncode == 0
    r = _train_here(None, "--epochs", "1")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "runs" / "simple-black" / "simple-black.safetensors").is_file()
    assert (tmp_path / "runs" / "simple-black2" / "simple-black.safetensors").is_file()
    assert r.stdout.strip() == str(Path("runs") / "simple-black2" / "simple-black.safetensors")


def test_resume_continues_to_the_runs_own_epochs_unless_given(tmp_path):
    run = tmp_path / "run"
    assert _train_here(run, "--epochs", "3").returncode == 0
    # Make it a run that stopped after its first epoch (as Ctrl-C between epochs leaves it).
    ckpt = torch.load(run / "last.pt", weights_only=True)
    ckpt.update(epoch=0, history=ckpt["history"][:1])
    torch.save(ckpt, run / "last.pt")
    r = cli("train", "--resume", run, "--workers", "0", "--precision", "fp32")
    assert r.returncode == 0, r.stderr
    assert [int(row["epoch"]) for row in csv.DictReader(open(run / "metrics.csv"))] == [1, 2, 3]
    r = cli("train", "--resume", run)  # finished: say so, do not train 7 more epochs
    line = _one_error_line(r.stderr)
    assert r.returncode == 2 and "finished all its 3 epochs" in line and "--epochs" in line, r.stderr


@pytest.fixture
def data_with_a_corrupt_photo(tmp_path) -> Path:
    """The test photos plus one that cannot be decoded: decoding it prints a ``skipped`` line."""
    data = tmp_path / "data"
    shutil.copytree(PHOTOS, data)
    (data / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    return data


@pytest.mark.parametrize("args, message", [
    (["--lr", "0"], "--lr 0"),
    (["--lr", "nan"], "--lr nan"),
    (["--lr", "inf"], "--lr inf"),
    (["--lr", "-1e-3"], "--lr -0.001"),
    (["--out", "FILE"], "is a file"),
])
def test_train_option_errors_are_found_before_any_photo_is_decoded(args, message, data_with_a_corrupt_photo,
                                                                    tmp_path):
    (tmp_path / "FILE").write_text("a file, not a folder")
    args = [str(tmp_path / "FILE") if a == "FILE" else a for a in args]
    out = [] if "--out" in args else ["--out", str(tmp_path / "run")]
    r = cli("train", "--model", "simple-black", "--data", data_with_a_corrupt_photo, *out, *args)
    line = _one_error_line(r.stderr)
    assert r.returncode == 2 and message in line, r.stderr
    assert "skipped" not in r.stderr and "decoded" not in r.stderr
    assert not (tmp_path / "run").exists() and (tmp_path / "FILE").read_text() == "a file, not a folder"


@pytest.mark.parametrize("ext", [".grib", ".xbm"])
def test_predict_ext_that_pillow_cannot_write_is_refused_before_any_photo_is_decoded(ext, tmp_path):
    data = tmp_path / "photos"
    shutil.copytree(PHOTOS, data)
    r = cli("predict", "-m", "simple-black", "--ext", ext, data, tmp_path / "out", "--workers", "0")
    line = _one_error_line(r.stderr)
    assert r.returncode == 2 and f"--ext {ext}" in line, r.stderr
    assert "failed" not in r.stderr and not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------------------------- class 10: summary


#: Runs the CLI in a fresh interpreter and prints its peak RSS (VmHWM, kB) last on stderr. VmHWM belongs to the
#: process's own address space; ``wait4``'s ``ru_maxrss`` would not do: Linux carries the high-water mark across
#: exec, so a child of a large pytest process reports at least the parent's size.
_PEAK_RSS_WRAPPER = """
import re, runpy, sys
sys.argv = ["unetcli", *sys.argv[1:]]
try:
    runpy.run_module("unetcli", run_name="__main__")
finally:
    status = open("/proc/self/status").read()
    print("VmHWM", re.search(r"VmHWM:\\s+(\\d+) kB", status)[1], file=sys.stderr)
"""


def _peak_rss_mb(*args: str) -> tuple[subprocess.CompletedProcess, float, str]:
    proc = subprocess.run([sys.executable, "-c", _PEAK_RSS_WRAPPER, *args], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    *lines, last = proc.stderr.rstrip("\n").split("\n")
    assert last.startswith("VmHWM "), proc.stderr
    return proc, int(last.split()[1]) / 1024, "\n".join(lines)


def test_summary_at_a_huge_input_size_runs_on_the_meta_device(tmp_path):
    """A 20000 x 20000 input would be 1.6 GB as a real tensor; on the meta device it costs nothing."""
    proc, peak, stderr = _peak_rss_mb("summary", "unet-colorize", "--input-size", "20000", "--json")
    assert proc.returncode == 0, stderr
    assert peak < 1000, f"summary peaked at {peak:.0f} MB"


def test_summary_says_plainly_when_a_model_cannot_run_on_the_meta_device():
    from unetcli.engine.summary import summarize
    from unetcli.errors import UnetcliError
    from unetcli.models import ModelSpec, register_model, unregister_model

    class NeedsValues(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 1, 1)

        def forward(self, x):
            return self.conv(x) * float(x.max())  # data-dependent: needs real values

    spec = ModelSpec(name="needs-values", aliases=(), task="decolorize", factory=NeedsValues, in_channels=3,
                     out_channels=1, params=4, seed="test", train_size=32, full_resolution=True, loss="mae",
                     size_divisor=1, tile_overlap=0, bf16_faithful=False, description="test")
    register_model(spec)
    try:
        with pytest.raises(UnetcliError, match="meta device"):
            summarize("needs-values")
    finally:
        unregister_model("needs-values")


# --------------------------------------------------------------------------------------------------- class 11: colorize


def _colorize_task():
    from unetcli.models.registry import get_spec
    from unetcli.tasks import make_task

    return make_task(get_spec("unet-colorize"), size=64)


@pytest.mark.parametrize("photo", held_out_photos(), ids=lambda p: p.stem)
def test_colorize_recombination_in_strips_writes_what_the_whole_photo_did(photo, monkeypatch):
    """Strips much smaller than the photo give the 8-bit values of recombining the whole photo at once, on real
    photos, with saturated colours (out of gamut: the chroma bisection). (Issue 18: both float32 torch now; that
    they match the float64 scikit-image recombination is tested in tests/test_colorize.py.)"""
    from unetcli.imageio import read_photo
    from unetcli.tasks import lab as cielab

    task = _colorize_task()
    p = read_photo(photo)
    x, ctx = task.prepare(p)
    small = torch.from_numpy(np.asarray(Image.open(photo).convert("RGB").resize((64, 64)), np.float32) / 255)
    output = ((small.permute(2, 0, 1) - 0.5) * 1.6 + 0.5)  # more saturated than the photo: out of gamut too
    monkeypatch.setattr(cielab, "STRIP_PIXELS", p.size[0] * p.size[1])
    whole = np.asarray(task.finish(output, ctx)).astype(int)
    monkeypatch.setattr(cielab, "STRIP_PIXELS", 5_000)
    got = np.asarray(task.finish(output, ctx)).astype(int)
    # per pixel in both; float32 kernels may round a vector's tail differently (measured: identical)
    assert (got == whole).mean() >= 0.9999 and np.abs(got - whole).max() <= 1


_RECOMBINATION_PEAK = """
import re, sys
import torch
from unetcli.models.registry import get_spec
from unetcli.tasks import colorize

def status(key):
    return int(re.search(key + r":\\s+(\\d+) kB", open("/proc/self/status").read())[1]) << 10

task = colorize.ColorizeTask(get_spec("unet-colorize"), size=64)
h, w = 2000, 3000
gray = torch.linspace(0, 1, w).repeat(h, 1)
output = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(0))
task.finish(output, {"gray": gray[:8, :8].contiguous(), "alpha": None})  # lazy imports (kornia) first
try:
    open("/proc/self/clear_refs", "w").write("5")  # peak RSS := RSS now
except OSError:
    pass
before = status("VmRSS")
assert status("VmHWM") - before < 16 << 20, "an earlier peak would hide the one measured"
task.finish(output, {"gray": gray, "alpha": None})
print((status("VmHWM") - before) / (h * w))
"""


def test_colorize_recombination_memory_does_not_grow_with_strips_of_the_photo():
    """Peak RSS growth of one 3000 x 2000 recombination, in a subprocess (torch's buffers are not seen by
    tracemalloc): the photo's own buffers (the uint8 result 3, the image 4 bytes per pixel) plus one strip (a/b are
    upsampled strip by strip since issue 18), about 10 bytes per pixel measured; the whole photo at once took about
    160 (170 in float64 before issue 13)."""
    r = subprocess.run([sys.executable, "-c", _RECOMBINATION_PEAK], capture_output=True, text=True,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    per_pixel = float(r.stdout)
    # at least the result and the image, which the peak must hold (so the measurement sees numpy's memory)
    assert 7 <= per_pixel < 20, f"{per_pixel:.0f} bytes per pixel"


def test_writes_in_flight_are_bounded_by_bytes():
    from unetcli.tasks.base import IN_FLIGHT_BYTES, writes_in_flight

    def photo(h: int, w: int) -> dict:  # a context as ColorizeTask.prepare makes it, without the memory
        return {"gray": np.broadcast_to(np.zeros(1, np.float32), (h, w)), "alpha": None}

    assert writes_in_flight([photo(100, 100)] * 8, most=16) == 16
    assert writes_in_flight([photo(100, 100), photo(4000, 6000)], most=16) == IN_FLIGHT_BYTES // (4000 * 6000 * 4)
    assert writes_in_flight([photo(40_000, 40_000)], most=16) == 1
