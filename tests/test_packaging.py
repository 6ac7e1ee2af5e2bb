"""The README's set-up commands are what CI runs, and the installed package carries the shipped weights."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _readme_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    setup = readme.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^```(?:bash|sh)\n(.+?)\n```", setup, flags=re.M | re.S)


def test_readme_has_exactly_two_setup_commands_and_ci_runs_the_test_one():
    commands = _readme_commands()
    assert len(commands) == 2, commands
    install_and_run, install_and_test = commands
    assert "unetcli predict" in install_and_run and "examples/" in install_and_run
    assert "-c constraints.txt" in install_and_run and "-c constraints.txt" in install_and_test
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert install_and_test in ci, "the last command of .ci/run must be the README's test command, word for word"


def test_constraints_pin_torch_to_the_tested_release():
    pins = dict(line.split("==", 1) for line in (ROOT / "constraints.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    assert pins["torch"] == "2.13.0"
    for package in ("typer", "rich", "pillow", "numpy", "scikit-image", "torchinfo", "safetensors"):
        assert package in pins, package


def test_every_shipped_weights_file_has_a_card_with_its_sha256():
    import json

    from unetcli.weights import sha256_file

    files = sorted((ROOT / "weights").glob("*.safetensors"))
    assert files, "weights/ holds the shipped weights"
    for f in files:
        card = json.loads(f.with_suffix(".json").read_text())
        assert card["sha256"] == sha256_file(f), f
        assert card["dtype"] == "float16"
        for key in ("architecture", "training", "metrics", "input"):
            assert key in card, (f, key)


def test_every_extra_package_is_pinned_in_constraints():
    # `pip install -c constraints.txt '.[bench]'` (or any extra) must install tested versions only.
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    pins = {line.split("==", 1)[0].lower().replace("_", "-") for line in
            (ROOT / "constraints.txt").read_text().splitlines() if "==" in line and not line.startswith("#")}
    for extra, requirements in extras.items():
        for requirement in requirements:
            name = re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")
            if name != "unetcli":
                assert name in pins, (extra, requirement)
