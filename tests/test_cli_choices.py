"""Issue #17: ``train``'s one Rich progress display (epoch, loss, metric with its unit, elapsed, ETA) on a terminal
and nothing of it in a pipe, ``predict``'s bar likewise; metrics.png with whole-epoch ticks and units; options with a
fixed set of values list them in ``--help`` (from the registries), complete them, and reject others with one line."""

from __future__ import annotations

import csv
import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from conftest import DATA, run_cli
from unetcli.engine.progress import metric_label
from unetcli.engine.train import metrics_figure
from unetcli.formats import FORMATS
from unetcli.models.registry import get_spec, list_models
from unetcli.outputs import RENDERERS

PHOTOS = DATA / "photos"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
TRAIN = ("train", "--model", "simple-black", "--data", PHOTOS, "--batch-size", "2", "--size", "64", "--val-split",
         "0.25", "--workers", "0", "--precision", "fp32", "--device", "cpu", "--epochs", "2")


def _flat(text: str) -> str:
    """Help text without Rich's box characters, whitespace squashed (so wrapped cells read as one line)."""
    return " ".join(re.sub(r"[│╭╮╰╯─┃━]", " ", text).split())


def run_on_terminal(*args, columns: int = 80) -> tuple[int, str, str]:
    """Run ``python -m unetcli ARGS`` with stderr on a pseudo-terminal of ``columns`` columns and stdout on a pipe;
    returns (exit code, stdout, everything written to the terminal, escape codes included)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(columns), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "unetcli", *map(str, args)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=slave, env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    out = proc.stdout.read().decode()
    proc.stdout.close()
    return proc.wait(timeout=120), out, b"".join(chunks).decode(errors="replace")


def test_train_shows_epoch_loss_metric_with_unit_and_eta_on_a_terminal(tmp_path):
    code, out, term = run_on_terminal(*TRAIN, "--out", tmp_path / "run")
    assert code == 0, term
    assert out.strip() == str(tmp_path / "run" / "simple-black.safetensors")  # stdout: the result only
    assert "\x1b[" in term  # a live display was drawn
    shown = ANSI.sub("", term)
    frames = [f for f in re.split(r"[\r\n]", shown) if f.startswith("epoch ") and "ETA" in f]
    assert any(f.startswith("epoch 1/2 ") for f in frames) and any(f.startswith("epoch 2/2 ") for f in frames)
    # one display: epoch, the batch within the epoch, running loss, last validation PSNR in dB, elapsed and ETA
    last_psnr = [r for r in csv.DictReader(open(tmp_path / "run" / "metrics.csv"))][0]["val_psnr"]
    assert any(re.search(r"^epoch 2/2 .* \d+/\d+ loss \d\.\d+ val PSNR (\d+\.\d\d) dB \d:\d\d:\d\d ETA "
                         r"(\d:\d\d:\d\d|-:--:--)$", f) for f in frames), frames
    assert any(f"val PSNR {float(last_psnr):.2f} dB" in f for f in frames)
    assert all(len(f) <= 80 for f in frames)
    assert "epoch 2/2: train loss" in shown  # the per-epoch log lines are printed above the display


def test_train_in_a_pipe_writes_no_progress_and_a_plot_with_whole_epochs_and_units(tmp_path):
    r = run_cli(*TRAIN, "--out", tmp_path / "run")
    assert r.returncode == 0, r.stderr
    assert "\x1b" not in r.stderr and "\r" not in r.stderr and "ETA" not in r.stderr and "━" not in r.stderr
    assert [line.split(":")[0] for line in r.stderr.splitlines() if line.startswith("epoch")] == ["epoch 1/2",
                                                                                                  "epoch 2/2"]
    run = tmp_path / "run"
    assert (run / "metrics.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(open(run / "metrics.csv"))]
    loss_axes, metric_axes = metrics_figure(rows, "psnr").axes  # the figure metrics.png was drawn from
    for ax in (loss_axes, metric_axes):
        lo, hi = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
        assert ax.get_xlabel() == "epoch"
    assert "loss" in loss_axes.get_ylabel() and metric_axes.get_ylabel() == "validation PSNR (dB)"


def test_metric_labels_carry_units():
    assert metric_label("psnr") == "PSNR (dB)"
    assert metric_label("iou") == "IoU (0-1)"  # unitless fraction


def test_predict_bar_only_on_a_terminal_and_never_in_json_stdout(tmp_path):
    code, out, term = run_on_terminal("predict", "-m", "simple-black", PHOTOS, tmp_path / "out", "--json",
                                      "--workers", "0", "--device", "cpu")
    assert code == 0, term
    lines = out.splitlines()
    assert len(lines) == 4 and all(json.loads(line)["status"] == "done" for line in lines)  # clean JSON lines
    shown = ANSI.sub("", term)
    assert re.search(r"\d/4 img", shown)  # the bar, on the terminal (stderr)
    assert any(line.startswith("done 4, skipped 0, failed 0 -> ") for line in re.split(r"[\r\n]", shown))


def test_predict_quiet_shows_no_bar_on_a_terminal(tmp_path):
    code, _, term = run_on_terminal("predict", "-m", "simple-black", PHOTOS, tmp_path / "out", "-q", "--workers",
                                    "0", "--device", "cpu")
    assert code == 0, term
    assert "img" not in term and "━" not in term and "\x1b[?25l" not in term
    assert ANSI.sub("", term).strip().startswith("done 4, skipped 0, failed 0 -> ")


def _registry_models() -> list[str]:
    return [key for name in list_models() for key in (name, *get_spec(name).aliases)]


@pytest.mark.parametrize("command, choices", [
    ("predict", ["auto", "cpu", "cuda:N", "fp32", "bf16", "fp16", *RENDERERS, *_registry_models()]),
    ("train", ["auto", "cpu", "cuda:N", "fp32", "bf16", "fp16", "constant", "cosine", *_registry_models()]),
    ("export", [*FORMATS, *_registry_models()]),
    ("summary", _registry_models()),
])
def test_help_lists_the_choices_from_the_registries_and_every_default(command, choices):
    r = run_cli(command, "--help", env_extra={"COLUMNS": "80"})
    assert r.returncode == 0, r.stderr
    text = _flat(r.stdout)
    words = {w.rstrip(".,;:") for w in re.findall(r"[\w:.-]+", text)}
    for choice in choices:
        assert choice in words, choice
    # every option with a value shows its default (a literal one, or a sentence saying where it comes from)
    from typer.main import get_command

    from unetcli.cli import app

    cmd = get_command(app).commands[command]
    for param in cmd.params:
        if param.param_type_name != "option" or param.is_flag or param.name == "help":
            continue
        help_text = _flat(param.help or "")
        if "[default:" in help_text:  # a default the help explains ("[default: the model's]")
            expected = help_text[help_text.index("[default:"):].split("]")[0] + "]"
        elif param.default not in (None, ""):  # "" (e.g. no --suffix): nothing to show
            expected = f"[default: {getattr(param.default, 'value', param.default)}]"
        else:
            continue
        assert expected in text, (param.name, expected)


@pytest.mark.parametrize("args, message", [
    (["predict", "-m", "unet-nope", str(PHOTOS), "out"], "unknown model 'unet-nope'; valid names: "
                                                          + ", ".join(sorted(_registry_models()))),
    (["predict", "-m", "seg", "-t", "sketch", str(PHOTOS), "out"], "--output-type sketch: expected one of "
                                                                   + ", ".join(RENDERERS)),
    (["predict", "-m", "simple-black", "--device", "gpu", str(PHOTOS), "out"],
     "--device 'gpu': expected auto, cpu, cuda or cuda:N"),
    (["export", "simple-black", "--format", "zip"], "--format 'zip': expected " + " or ".join(FORMATS)),
    (["train", "-m", "simple-black", "--data", str(PHOTOS), "--lr-schedule", "linear"],
     "'linear' is not one of 'constant', 'cosine'"),
    (["train", "-m", "simple-black", "--data", str(PHOTOS), "--precision", "fp8"],
     "'fp8' is not one of 'auto', 'fp32', 'bf16', 'fp16'"),
])
def test_a_wrong_choice_exits_2_with_one_line_naming_the_valid_ones(tmp_path, args, message):
    r = run_cli(*args, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert any(message in line for line in r.stderr.splitlines()), r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "out").exists() and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("words, expected", [
    ("unetcli predict -t ", list(RENDERERS)),
    ("unetcli export simple-black --format ", list(FORMATS)),
    ("unetcli predict -m unet-seg", ["unet-seg", "unet-seg-mobilenetv2"]),
])
def test_shell_completion_offers_the_registries(words, expected):
    env = {"_UNETCLI_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(len(words.split(" ")) - 1)}
    r = run_cli(env_extra=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == expected
