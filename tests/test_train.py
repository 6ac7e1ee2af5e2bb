"""``unetcli train`` on real photos: run folder contents, metrics, model card, and resume."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import DATA, run_cli
from unetcli.weights import sha256_file

PHOTOS = DATA / "photos"


def _train(out: Path, *extra: str, model: str = "simple-black"):
    return run_cli("train", "--model", model, "--data", PHOTOS, "--out", out, "--batch-size", "2", "--size", "64",
                   "--val-split", "0.25", "--workers", "0", "--precision", "fp32", *extra)


def test_train_writes_weights_card_metrics_and_plot(tmp_path):
    r = _train(tmp_path / "run", "--epochs", "2", "--lr", "0.01")
    assert r.returncode == 0, r.stderr
    run = tmp_path / "run"
    for name in ("simple-black.safetensors", "simple-black.json", "best.safetensors", "last.pt", "metrics.csv",
                 "metrics.png", "split.json"):
        assert (run / name).is_file(), name
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert all(float(r["val_psnr"]) > 0 for r in rows)
    card = json.loads((run / "simple-black.json").read_text())
    assert card["sha256"] == sha256_file(run / "simple-black.safetensors")
    assert card["training"]["epochs"] == 2 and "--epochs 2" in card["training"]["command"]
    assert card["training"]["train_photos"] == 3 and card["training"]["val_photos"] == 1
    split = json.loads((run / "split.json").read_text())
    assert len(split["train"]) == 3 and len(split["val"]) == 1 and not set(split["train"]) & set(split["val"])
    assert all(v.dtype.is_floating_point is False or str(v.dtype) == "torch.float16"
               for v in load_file(str(run / "simple-black.safetensors")).values())
    # The trained weights are usable by predict.
    out = tmp_path / "pred"
    r = run_cli("predict", "-m", "simple-black", "--weights", run / "simple-black.safetensors", PHOTOS, out)
    assert r.returncode == 0 and len([p for p in out.iterdir() if not p.name.startswith(".")]) == 4


def test_a_run_logged_to_a_file_says_how_far_it_is_at_each_checkpoint(tmp_path):
    """stderr that is no terminal (nohup, a batch job's log) gets no progress bar; each checkpoint within an epoch
    writes one line instead: epoch, batch of the epoch, running mean loss, speed and where the checkpoint is."""
    r = _train(tmp_path / "run", "--epochs", "1", "--crops-per-photo", "4", "--save-every", "0.00001")
    assert r.returncode == 0, r.stderr
    found = re.findall(r"^epoch 1/1, batch (\d+)/(\d+): loss ([\d.e-]+), ([\d.]+) img/s; checkpoint (.+)$",
                       r.stderr, re.M)
    # Which batches get a line depends on the clock (the first may finish within --save-every): only their order
    # and count are fixed.
    steps = [int(step) for step, *_ in found]
    assert found and steps == sorted(set(steps)) and len({total for _, total, *_ in found}) == 1, r.stderr
    assert all(int(step) < int(total) and float(loss) > 0 and float(rate) > 0 and Path(last) == tmp_path / "run"
               / "last.pt" for step, total, loss, rate, last in found)


def test_resume_continues_exactly_where_an_uninterrupted_run_would_be(tmp_path):
    assert _train(tmp_path / "straight", "--epochs", "3", model="decolorize").returncode == 0
    r = _train(tmp_path / "split", "--epochs", "2", model="decolorize")
    assert r.returncode == 0, r.stderr
    r = run_cli("train", "--resume", tmp_path / "split", "--epochs", "3", "--workers", "0", "--precision", "fp32")
    assert r.returncode == 0, r.stderr
    assert "resumed" in r.stderr
    rows = list(csv.DictReader(open(tmp_path / "split" / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    training = json.loads((tmp_path / "split" / "unet-decolorize.json").read_text())["training"]
    assert "--epochs 2" in training["command"] and len(training["resume_commands"]) == 1
    assert "--resume" in training["resume_commands"][0] and "--epochs 3" in training["resume_commands"][0]
    a = load_file(str(tmp_path / "straight" / "unet-decolorize.safetensors"))
    b = load_file(str(tmp_path / "split" / "unet-decolorize.safetensors"))
    assert a.keys() == b.keys()
    assert all((a[k].float() - b[k].float()).abs().max() == 0 for k in a)


def test_ctrl_c_within_an_epoch_saves_a_checkpoint_that_resumes_to_the_same_weights(tmp_path):
    """Ctrl-C from a terminal reaches the whole process group (DataLoader workers too): the run finishes the batch
    in flight, writes last.pt within the epoch and exits 130; --resume continues at the next batch and ends with
    the weights of an uninterrupted run. SIGTERM (kill, timeout, batch schedulers) does the same."""
    model, extra = "decolorize", ("--epochs", "2", "--crops-per-photo", "10")  # 3 photos x 10 / 2: 15 batches
    assert _train(tmp_path / "straight", *extra, model=model).returncode == 0

    def interrupted_run(run: Path, sig: int, group: bool) -> tuple[subprocess.CompletedProcess, dict | None]:
        # --save-every 0.0001 min: a checkpoint after every batch, so the signal is sent once training is under way
        args = ["train", "--model", model, "--data", PHOTOS, "--out", run, "--batch-size", "2", "--size", "64",
                "--val-split", "0.25", "--precision", "fp32", "--workers", "1", "--save-every", "0.0001", *extra]
        proc = subprocess.Popen([sys.executable, "-m", "unetcli", *map(str, args)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"})
        deadline = time.monotonic() + 300
        while not (run / "last.pt").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if proc.poll() is None:  # else it ended on its own: the asserts below show its stderr
            (os.killpg if group else os.kill)(proc.pid, sig)
        out, err = proc.communicate(timeout=300)
        last = run / "last.pt"
        ckpt = torch.load(last, map_location="cpu", weights_only=True) if last.exists() else None
        return subprocess.CompletedProcess(args, proc.returncode, out, err), ckpt

    r, ckpt = interrupted_run(tmp_path / "split", signal.SIGINT, group=True)
    assert r.returncode == 130, r.stderr
    assert "interrupted: SIGINT at epoch 1, batch" in r.stderr and "Traceback" not in r.stderr
    assert ckpt["epoch"] == -1 and 1 <= ckpt["partial"]["step"] < 15, ckpt["partial"]
    assert not (tmp_path / "split" / "metrics.csv").exists()  # no epoch finished
    r = run_cli("train", "--resume", tmp_path / "split", "--epochs", "2", "--workers", "0", "--precision", "fp32")
    assert r.returncode == 0, r.stderr
    assert f"resumed {tmp_path / 'split'} at epoch 1, batch {ckpt['partial']['step'] + 1}" in r.stderr
    rows = list(csv.DictReader(open(tmp_path / "split" / "metrics.csv")))
    assert [int(row["epoch"]) for row in rows] == [1, 2]
    a = load_file(str(tmp_path / "straight" / "unet-decolorize.safetensors"))
    b = load_file(str(tmp_path / "split" / "unet-decolorize.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)

    r, ckpt = interrupted_run(tmp_path / "term", signal.SIGTERM, group=False)
    assert r.returncode == 130 and "interrupted: SIGTERM at epoch 1, batch" in r.stderr, r.stderr
    assert ckpt["partial"]["step"] >= 1


def test_resume_refuses_changed_hyper_parameters_and_finished_runs(tmp_path):
    assert _train(tmp_path / "run", "--epochs", "1").returncode == 0
    r = run_cli("train", "--resume", tmp_path / "run", "--lr", "0.5", "--epochs", "2")
    assert r.returncode == 2 and "started with lr" in r.stderr
    r = run_cli("train", "--resume", tmp_path / "run", "--epochs", "1")
    assert r.returncode == 2 and "already finished 1 epoch" in r.stderr
    r = run_cli("train", "--resume", tmp_path / "nothing", "--epochs", "1")
    assert r.returncode == 2 and "no checkpoint" in r.stderr


@pytest.mark.parametrize("args,message", [
    (["--model", "simple-black"], "needs --model and --data"),
    (["--model", "simple-black", "--data", "/nonexistent/photos"], "no such file or folder"),
    (["--model", "simple-black", "--data", str(PHOTOS), "--size", "100"], "multiple of 16"),
])
def test_train_usage_errors(tmp_path, args, message):
    r = run_cli("train", *args, "--out", tmp_path / "run")
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr
