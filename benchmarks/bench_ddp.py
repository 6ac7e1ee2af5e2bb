"""Training throughput of `unetcli train` with 1 process vs 2 processes (DDP, gloo) on this machine.

Usage (from the repository root, on an otherwise idle machine):
    python benchmarks/bench_ddp.py [--model unet-decolorize] [--epochs 2]

Both runs train the same model on the same photos (tests/data/photos, real photos) with the same effective batch
(16 = 16 x 1 = 8 x 2) and the same total number of threads (all cores: 1 process x N threads, or 2 processes x N/2
threads, via OMP_NUM_THREADS), so the ratio shows what data parallelism buys on one machine. Throughput is read
from each run's metrics.csv (images/s of the last epoch, after warm-up), so start-up is not counted.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(nproc: int, model: str, epochs: int, out: Path) -> float:
    cores = os.cpu_count() or 1
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, cores // nproc))}
    cmd = [sys.executable, "-m", "unetcli", "train", "--model", model, "--data", str(ROOT / "tests/data/photos"),
           "--out", str(out), "--epochs", str(epochs), "--size", "64", "--crops-per-photo", "64",
           "--batch-size", str(16 // nproc), "--val-split", "0", "--workers", "0", "--nproc", str(nproc)]
    subprocess.run(cmd, check=True, env=env, capture_output=True)
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    return float(rows[-1]["images_per_s"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="unet-decolorize")
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        one = run(1, args.model, args.epochs, Path(tmp) / "one")
        two = run(2, args.model, args.epochs, Path(tmp) / "two")
    print(f"{args.model}: 1 process {one:.1f} img/s, 2 processes (DDP, gloo) {two:.1f} img/s, ratio {two / one:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
