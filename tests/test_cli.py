"""``unetcli models`` and ``unetcli summary``, the device selector and precision choice."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import run_cli
from unetcli.devices import cpu_has_fast_bf16, resolve_precision, select_device
from unetcli.errors import UsageError


def test_models_json_lists_registry_with_params_and_weights():
    r = run_cli("models", "--json")
    assert r.returncode == 0, r.stderr
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    assert {n: rows[n]["params"] for n in rows} == {"unet-colorize": 31_042_499, "unet-decolorize": 1_944_049,
                                                    "unet-seg": 31_043_521, "simple-black": 12,
                                                    "unet-seg-mobilenetv2": 6_628_945,
                                                    "unet-colorize-mobilenetv2": 6_629_090}
    assert rows["simple-black"]["weights"].endswith("simple-black.safetensors")
    assert rows["unet-colorize-mobilenetv2"]["aliases"] == ["colorize"] and rows["unet-colorize"]["aliases"] == []


def test_models_table():
    r = run_cli("models")
    assert r.returncode == 0 and "unet-colorize" in r.stdout and "31,042,499" in r.stdout


def test_summary_table_matches_seed_001():
    r = run_cli("summary", "unet-colorize", "--batch-size", "32")
    assert r.returncode == 0, r.stderr
    assert "Total params: 31,042,499" in r.stdout
    assert "436.66" in r.stdout


def test_summary_json_for_scripts_with_input_size_and_weights():
    r = run_cli("summary", "simple-black", "--json", "--input-size", "96x128", "--batch-size", "2")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["input_size"] == [2, 3, 96, 128]
    assert info["total_params"] == 12
    assert info["mult_adds"] == 2 * 96 * 128 * 12  # two 1x1 convs: 9 + 3 MACs per pixel
    assert len(info["weights"]["sha256"]) == 64
    assert info["weights"]["card"]["model"] == "simple-black"


def test_summary_decolorize_mult_adds_scale_with_pixels():
    small = json.loads(run_cli("summary", "decolorize", "--json", "--input-size", "64").stdout)
    large = json.loads(run_cli("summary", "decolorize", "--json", "--input-size", "128").stdout)
    assert large["mult_adds"] == pytest.approx(4 * small["mult_adds"], rel=0.01)


def test_summary_usage_errors():
    r = run_cli("summary", "unet-colorize", "--input-size", "big")
    assert r.returncode == 2 and "expected N or HxW" in r.stderr
    r = run_cli("summary", "nope")
    assert r.returncode == 2 and "unknown model" in r.stderr


def test_device_selector():
    assert select_device("cpu") == torch.device("cpu")
    assert select_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(UsageError, match="expected auto, cpu, cuda"):
        select_device("tpu")
    if not torch.cuda.is_available():
        for spec in ("cuda", "cuda:0", "cuda:1"):
            with pytest.raises(UsageError, match="CUDA is not available"):
                select_device(spec)


def test_precision_choice_on_cpu():
    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu) is None
    assert resolve_precision("bf16", cpu) is torch.bfloat16
    assert resolve_precision("auto", cpu) is (torch.bfloat16 if cpu_has_fast_bf16() else None)
    assert resolve_precision("auto", cpu, auto_ok=False) is None
    with pytest.raises(UsageError, match="fp16 is for CUDA"):
        resolve_precision("fp16", cpu)


def test_version_and_help():
    assert run_cli("--version").stdout.startswith("unetcli ")
    r = run_cli("--help")
    assert r.returncode == 0 and all(c in r.stdout for c in ("predict", "train", "summary", "models"))
