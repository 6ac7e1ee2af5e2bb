"""``unetcli train --teacher`` (issue 15): a segmenter learns another segmenter's outputs on mixed-up crops of real
composites (function matching) instead of the masks; masks still score validation.

Real data: the person composites in tests/data/person-composites (real cut-outs on real photos, LICENSES.tsv).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from conftest import DATA, run_cli
from unetcli.models.registry import get_spec
from unetcli.weights import load_pretrained_encoder, load_state, save_weights, sha256_file, weights_dir

NAME = "unet-seg-mobilenetv2"
COMPOSITES = DATA / "person-composites"
WEIGHTS = weights_dir()
FITNETS = Path(__file__).resolve().parents[1] / "examples" / "recipes" / "seg_init_fitnets.py"
COMMON = ["--model", NAME, "--data", COMPOSITES, "--size", "64", "--epochs", "2", "--workers", "0", "--batch-size",
          "4", "--crops-per-photo", "4", "--lr", "1e-2", "--val-split", "0.25", "--precision", "fp32"]


def _everyone_teacher(path) -> None:
    """A teacher that sees a person everywhere: logits layer zeroed, bias +20 (probability 1 - 2e-9 everywhere)."""
    spec = get_spec(NAME)
    torch.manual_seed(0)
    model = spec.factory()
    load_pretrained_encoder(model, spec)
    head = model.get_submodule(spec.logits_layer)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(20.0)
    save_weights(model, path, {"model": spec.name})


def _person_fraction(weights) -> float:
    """Fraction of pixels the weights mark as person over the composites, at full resolution through predict."""
    import unetcli

    predictor = unetcli.load(NAME, weights=weights, device="cpu", precision="fp32")
    masks = [np.asarray(predictor(Image.open(p))) > 127 for p in sorted((COMPOSITES / "images").glob("*.jpg"))]
    return float(np.mean([m.mean() for m in masks]))


def test_the_teachers_outputs_replace_the_masks(tmp_path):
    teacher = tmp_path / "everyone.safetensors"
    _everyone_teacher(teacher)
    masks = run_cli("train", *COMMON, "--out", tmp_path / "masks")
    taught = run_cli("train", *COMMON, "--teacher", teacher, "--out", tmp_path / "taught")
    assert masks.returncode == 0, masks.stderr
    assert taught.returncode == 0, taught.stderr
    assert "teacher" in taught.stderr and "mixed-up crops" in taught.stderr

    # Same data, seed and steps: the student of a teacher that sees a person everywhere learns to mark everything;
    # the masks (the composites are 10-30 % person) do not teach that.
    from_masks, from_teacher = _person_fraction(tmp_path / "masks" / f"{NAME}.safetensors"), _person_fraction(
        tmp_path / "taught" / f"{NAME}.safetensors")
    assert from_teacher > 0.9 and from_masks < 0.5, (from_teacher, from_masks)

    card = json.loads((tmp_path / "taught" / f"{NAME}.json").read_text())
    assert card["training"]["teacher"]["sha256"] == sha256_file(teacher)
    assert card["training"]["teacher"]["model"] == NAME
    assert card["training"]["loss"] == "bce+dice against the teacher's probabilities"
    assert "iou" in card["metrics"]["validation"]  # validation still scores the masks

    # The teacher is part of the run: resuming with another one is refused, leaving the run as it was.
    before = (tmp_path / "taught" / "last.pt").read_bytes()
    other = run_cli("train", "--resume", tmp_path / "taught", "--epochs", "3", "--teacher", tmp_path / "x.safetensors")
    assert other.returncode == 2 and "was started with teacher" in other.stderr, other.stderr
    assert (tmp_path / "taught" / "last.pt").read_bytes() == before


def test_teacher_errors_are_one_line_and_leave_no_run_folder(tmp_path):
    teacher = tmp_path / "everyone.safetensors"
    _everyone_teacher(teacher)
    no_card = tmp_path / "nocard.safetensors"
    no_card.write_bytes(teacher.read_bytes())
    three_classes = tmp_path / "three.safetensors"
    save_weights(get_spec(NAME).factory(num_classes=3), three_classes, {"model": NAME})
    cases = [(["--model", "unet-decolorize", "--data", DATA / "photos", "--teacher", teacher],
              "--teacher: distillation trains one-class segmenters"),
             ([*COMMON, "--classes", "3", "--teacher", teacher], "with 3 classes is not one"),
             ([*COMMON, "--teacher", tmp_path / "missing.safetensors"], "missing.safetensors: no such file"),
             ([*COMMON, "--teacher", no_card], "no model card nocard.json"),
             ([*COMMON, "--teacher", WEIGHTS / "unet-decolorize.safetensors"],
              "holds unet-decolorize, not a segmenter"),
             ([*COMMON, "--teacher", three_classes], "with several classes; distillation needs one")]
    for i, (args, message) in enumerate(cases):
        r = run_cli("train", *args, "--out", tmp_path / f"run{i}")
        assert r.returncode == 2 and message in r.stderr, r.stderr
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert not (tmp_path / f"run{i}").exists()


def test_fitnets_hints_train_the_seeds_encoder_only_and_are_learnt(tmp_path):
    """examples/recipes/seg_init_fitnets.py (issue 15's FitNets route): the seed unet-seg's encoder regresses the
    person segmenter's encoder features at strides 2-16 on crops of real composites; its decoder stays as it was."""
    teacher = tmp_path / "teacher.safetensors"
    spec = get_spec(NAME)
    torch.manual_seed(0)
    model = spec.factory()
    load_pretrained_encoder(model, spec)  # ImageNet features: what the hints carry
    save_weights(model, teacher, {"model": NAME})
    seed = get_spec("unet-seg")
    init = tmp_path / "init.safetensors"
    save_weights(seed.factory(), init, {"model": seed.name, "init": {"note": "random"}}, dtype=torch.float32)
    out = tmp_path / "fitnets.safetensors"
    r = subprocess.run([sys.executable, str(FITNETS), "--init", str(init),
                        "--teacher", str(teacher), "--data", str(COMPOSITES / "images"), "--out", str(out),
                        "--size", "64", "--batch-size", "4", "--steps", "60", "--log-every", "20", "--lr", "1e-3"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    before, _ = load_state(init, seed)
    after, info = load_state(out, seed)
    encoder = [k for k in before if k.startswith(("enc.", "bridge.")) and before[k].is_floating_point()]
    decoder = [k for k in before if k.startswith(("up.", "dec.", "out."))]
    assert encoder and decoder
    assert all(not torch.equal(before[k], after[k]) for k in encoder if k.endswith(".weight"))
    assert all(torch.equal(before[k], after[k]) for k in decoder)
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["init"]["steps"] == 60 and sha256_file(teacher) in card["init"]["teacher"]
    assert card["init"]["from_init"] == {"note": "random"}  # the starting weights' own provenance travels on
    # The hints are learnt: every stride's error (teacher features standardised, so 1 = knowing nothing) falls.
    first, last = card["init"]["log"][0]["mse_by_stride"], card["init"]["log"][-1]["mse_by_stride"]
    assert all(last[s] < first[s] for s in first), (first, last)
    # The weights start a run, whose card says how they were made.
    r = run_cli("train", "--model", "unet-seg", "--weights", out, "--data", COMPOSITES, "--size", "64", "--epochs", "1",
                "--batch-size", "4", "--workers", "0", "--val-split", "0.25", "--out", tmp_path / "run")
    assert r.returncode == 0, r.stderr
    trained = json.loads((tmp_path / "run" / "unet-seg.json").read_text())["training"]
    assert trained["init_weights_training"]["method"].startswith("FitNets") and trained["init_weights"] == str(out)
