"""Issue #17 (CLI polish): help at 80 columns with every default, shell completion, a torch-free ``--version``,
``models`` that never truncates, ``summary``'s short model card, and ``unetcli env``."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import run_cli
from unetcli.devices import cpu_has_fast_bf16, precision_name, resolve_precision, select_device
from unetcli.weights import read_card

COMMANDS = ("models", "summary", "env", "train", "predict", "compare", "export")


def _flat(text: str) -> str:
    """Help text without Rich's box characters, whitespace squashed (so wrapped cells read as one line)."""
    return " ".join(re.sub(r"[│╭╮╰╯─┃━]", " ", text).split())


def test_root_help_lists_commands_and_completion():
    r = run_cli("--help", env_extra={"COLUMNS": "80"})
    assert r.returncode == 0, r.stderr
    for word in (*COMMANDS, "--version", "--install-completion", "--show-completion"):
        assert word in r.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_help_fits_80_columns_without_cutting_option_names(command):
    wide = run_cli(command, "--help", env_extra={"COLUMNS": "200"})
    narrow = run_cli(command, "--help", env_extra={"COLUMNS": "80"})
    assert wide.returncode == 0 and narrow.returncode == 0, narrow.stderr
    assert "…" not in narrow.stdout
    assert max(len(line) for line in narrow.stdout.splitlines()) <= 80
    for option in set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]+", wide.stdout)):
        assert option in narrow.stdout, f"{option} cut at 80 columns"


def test_train_help_shows_every_default():
    text = _flat(run_cli("train", "--help").stdout)
    for default in ("[default: 1]", "[default: runs/MODEL, or runs/MODEL2 ... when that holds a run]",
                    "[default: 10; with --resume, the run's own]", "[default: 16]",
                    "[default: the model's, 1e-3]", "[default: the model's]", "[default: never]", "[default: 0]",
                    "[default: 0.1]", "[default: constant]", "[default: 10.0]", "[default: auto]", "[default: 2]"):
        assert default in text, default
    # the old bug: "[default: …]" inside a help string was eaten as Rich markup, leaving "Adam learning rate ."
    assert not re.search(r"\w \.( |$)", text), text


def test_choices_are_listed():
    text = _flat(run_cli("predict", "--help").stdout)
    assert "auto, fp32, bf16, fp16" in text
    r = run_cli("train", "--model", "simple-black", "--data", ".", "--precision", "fp8")
    assert r.returncode == 2 and "fp8" in r.stderr and "auto" in r.stderr and "bf16" in r.stderr


def test_shell_completion():
    # --show-completion detects the shell it runs under (shellingham): run it from bash
    # (not bash's last command, which bash would exec in its own place)
    r = subprocess.run(["bash", "-c", f"'{sys.executable}' -m unetcli --show-completion; exit $?"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "_UNETCLI_COMPLETE=complete_bash" in r.stdout and "complete -o default -F" in r.stdout
    env = {"_UNETCLI_COMPLETE": "complete_bash", "COMP_WORDS": "unetcli train --precision ", "COMP_CWORD": "3"}
    r = run_cli(env_extra=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["auto", "fp32", "bf16", "fp16"]
    r = run_cli(env_extra={**env, "COMP_WORDS": "unetcli mo", "COMP_CWORD": "1"})
    assert r.stdout.split() == ["models"]


def test_version_does_not_import_torch():
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "unetcli", "--version"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip().startswith("unetcli ")
    modules = {line.rsplit("|", 1)[-1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")}
    assert "typer" in modules or "rich" in modules  # the import log was read
    assert not {m for m in modules if m == "torch" or m.startswith("torch.")}


@pytest.mark.parametrize("columns", ["80", "40"])
def test_models_never_truncates_names_or_numbers_in_a_pipe(columns):
    rows = json.loads(run_cli("models", "--json").stdout)
    r = run_cli("models", env_extra={"COLUMNS": columns})  # stdout is a pipe here
    assert r.returncode == 0, r.stderr
    assert "…" not in r.stdout
    lines = r.stdout.splitlines()
    for row in rows:
        line = next(line for line in lines if line.split() and line.split()[0] == row["name"])
        assert f"{row['params']:,}" in line
        assert row["task"] in line.split()
        if row["weights"] and row["weights_epochs"]:
            assert f"{row['weights_epochs']} epochs" in line
    decolor = [line for line in lines if "decolor" in line]  # `unetcli models | grep decolor`
    assert any(line.split()[:3] == ["unet-decolorize", "decolorize", "decolorize"] for line in decolor)


def test_summary_prints_a_short_model_card():
    info = json.loads(run_cli("summary", "unet-decolorize", "--json").stdout)
    card = info["weights"]["card"]
    r = run_cli("summary", "unet-decolorize", env_extra={"COLUMNS": "80"})
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "Units." not in out and re.search(r"Total mult-adds \([KMGT]\):", out)
    tail = out[out.index("unet-decolorize.safetensors (shipped)"):]
    assert max(len(line) for line in tail.splitlines()) < 200  # no 3,000-character JSON line
    assert info["weights"]["sha256"] in tail and "unet-decolorize.safetensors (shipped)" in tail
    assert f"{card['training']['epochs_done']} epochs" in _flat(tail)
    assert "Key metrics" in tail
    held_out = card["metrics"]["evaluation"]["held_out_fp32"]["psnr"]
    assert f"{held_out['mean']:.2f}" in tail and f"{held_out['min']:.2f}" in tail
    # no paths of the machine that trained it: the card says ../shared/data/photos
    assert "../" not in out and "shared" not in tail and str(Path.cwd()) not in out
    assert "on photos" in _flat(tail)


def test_summary_hides_the_trainers_absolute_paths(tmp_path):
    src = Path(json.loads(run_cli("summary", "simple-black", "--json").stdout)["weights"]["path"])
    weights = tmp_path / "simple-black.safetensors"
    shutil.copy(src, weights)
    card = read_card(src)
    card["training"]["data"] = "/home/alice/private/photos"
    card["training"]["command"] = ("unetcli train --model simple-black --data /home/alice/private/photos "
                                   "--weights=/mnt/alice/start.safetensors --out runs/simple-black")
    card["training"]["init_weights"] = "/mnt/alice/start.safetensors"
    weights.with_suffix(".json").write_text(json.dumps(card))
    r = run_cli("summary", "simple-black", "--weights", weights, env_extra={"COLUMNS": "80"})
    assert r.returncode == 0, r.stderr
    assert "alice" not in r.stdout and "private" not in r.stdout
    text = _flat(r.stdout)
    assert "--data photos" in text and "--weights=start.safetensors" in text and "runs/simple-black" in text
    # --json stays the card as written, for scripts
    raw = json.loads(run_cli("summary", "simple-black", "--weights", weights, "--json").stdout)
    assert raw["weights"]["card"]["training"]["data"] == "/home/alice/private/photos"
    assert "table" not in raw and isinstance(raw["mult_adds"], int)


def test_summary_without_weights_says_so():
    r = run_cli("summary", "unet-seg", "--depth", "1")
    assert r.returncode == 0 and "none shipped for unet-seg" in r.stdout


def test_env_json_matches_this_machine():
    r = run_cli("env", "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["torch"] == torch.__version__
    device = select_device("auto")
    assert info["auto"]["device"] == str(device)
    assert info["auto"]["precision"] == precision_name(resolve_precision("auto", device))
    assert info["cpu"]["fast_bf16"] == cpu_has_fast_bf16()
    assert len(info["cuda"]) == (torch.cuda.device_count() if torch.cuda.is_available() else 0)
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]
        if names:
            assert info["cpu"]["model"] == names[0]
    if device.type == "cpu" and not cpu_has_fast_bf16():
        assert info["auto"]["precision"] == "fp32"
        assert "no AMX/AVX512-BF16" in info["auto"]["precision_reason"]
    assert info["auto"]["device_reason"] and info["threads"]["intra_op"] >= 1


def test_env_table_at_80_columns():
    r = run_cli("env", env_extra={"COLUMNS": "80"})
    assert r.returncode == 0, r.stderr
    text = _flat(r.stdout)
    assert f"torch {torch.__version__}" in text
    assert "--device auto" in text and "--precision auto" in text and "…" not in r.stdout
