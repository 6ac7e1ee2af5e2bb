"""Training under torchrun: 2 CPU processes with gloo on real photos behave like one process over the same batch."""

from __future__ import annotations

import json

import torch

from conftest import DATA, run_cli

COMMON = ["--model", "simple-black", "--data", DATA / "photos", "--val-split", "0", "--epochs", "1", "--size", "64",
          "--workers", "0", "--precision", "fp32", "--lr", "0.01"]


def test_two_processes_equal_one_process_over_the_same_global_batch(tmp_path):
    single = run_cli("train", *COMMON, "--batch-size", "4", "--out", tmp_path / "single")
    assert single.returncode == 0, single.stderr
    ddp = run_cli("train", *COMMON, "--batch-size", "2", "--nproc", "2", "--out", tmp_path / "ddp",
                  env_extra={"OMP_NUM_THREADS": "1"}, timeout=300)
    assert ddp.returncode == 0, ddp.stderr
    assert "batch 2 x 2 processes = 4 effective" in ddp.stderr

    # Both ranks trained on disjoint crops that together are the single run's batch.
    [epoch] = [json.loads(line) for line in (tmp_path / "ddp" / "samples.jsonl").read_text().splitlines()]
    rank0, rank1 = epoch["ranks"]
    assert len(rank0) == len(rank1) == 2 and not set(rank0) & set(rank1)
    assert sorted(rank0 + rank1) == [0, 1, 2, 3]

    # One optimisation step over the same global batch gives the same weights (DDP averages the gradients).
    a = torch.load(tmp_path / "single" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "ddp" / "last.pt", weights_only=True)["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
    start = torch.load(tmp_path / "single" / "last.pt", weights_only=True)["history"]
    assert start[0]["train_loss"] > 0  # a real step was taken on real crops

    # Rank 0 alone wrote the run folder and reported the weights: one line each, not one per rank.
    assert ddp.stdout.count("simple-black.safetensors") == 1
    assert ddp.stderr.count("epoch 1/1:") == 1
    assert sorted(p.name for p in (tmp_path / "ddp").iterdir()) == sorted(
        ["best.json", "best.safetensors", "last.pt", "metrics.csv", "metrics.png", "samples.jsonl", "simple-black.json",
         "simple-black.safetensors", "split.json"])
    card = json.loads((tmp_path / "ddp" / "simple-black.json").read_text())
    assert card["training"]["world_size"] == 2 and card["training"]["effective_batch_size"] == 4


def test_distributed_resume(tmp_path):
    args = ["--model", "simple-black", "--data", DATA / "photos", "--size", "64", "--workers", "0", "--precision",
            "fp32", "--batch-size", "1", "--val-split", "0.25", "--nproc", "2"]
    r = run_cli("train", *args, "--epochs", "1", "--out", tmp_path / "run", env_extra={"OMP_NUM_THREADS": "1"}, timeout=300)
    assert r.returncode == 0, r.stderr
    r = run_cli("train", "--resume", tmp_path / "run", "--epochs", "2", "--nproc", "2", "--workers", "0",
                "--precision", "fp32", env_extra={"OMP_NUM_THREADS": "1"}, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "resumed" in r.stderr
    lines = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in lines[1:]] == ["1", "2"]


def test_sync_bn_on_cpu_is_a_clear_usage_error(tmp_path):
    if torch.cuda.is_available():
        return
    r = run_cli("train", *COMMON, "--sync-bn", "--out", tmp_path / "run")
    assert r.returncode == 2 and "SyncBatchNorm runs on CUDA devices only" in r.stderr
    assert not (tmp_path / "run").exists()
