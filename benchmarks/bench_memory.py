"""Peak memory of ``unetcli predict`` on a 6000x4000 photo, tiled (the default) and untiled (``--tile 0``).

A plain script, not a test (pytest collects ``tests/`` only). It upscales a real photo from ``tests/data/photos``
to 6000x4000 with Pillow (a JPEG, as a camera writes), runs the real command in a subprocess for each
configuration and prints one Markdown table row per run, for ``benchmarks/README.md``:

* with ``--workers 0`` everything happens in the one process, so its peak RSS (``os.wait4``'s ``ru_maxrss``)
  is the command's whole peak;
* with DataLoader workers (``predict``'s default: 2, or 1 on one usable core) memory is spread over processes that share pages, so
  the script samples the proportional set size (``Pss`` of ``/proc/PID/smaps_rollup``) of the process tree
  every 50 ms and reports the largest sum.

Usage::

    python benchmarks/bench_memory.py                       # shipped weights where they exist
    python benchmarks/bench_memory.py --decolorize-weights runs/unet-decolorize/best.safetensors --untiled

Models without shipped weights run on random weights (memory does not depend on weight values). Working-size
models (unet-colorize, unet-seg) are never tiled; ``--models unet-colorize,unet-seg`` measures them too.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PHOTO = ROOT / "tests" / "data" / "photos" / "categorization_tajMahal.jpg"  # 320x213, about 3:2


def make_photo(folder: Path, size: tuple[int, int], source: Path = PHOTO) -> Path:
    """A ``size`` (width, height) JPEG upscaled (Lanczos) from a real photo (``source``)."""
    from PIL import Image

    path = folder / f"photo_{size[0]}x{size[1]}.jpg"
    with Image.open(source) as im:
        im.convert("RGB").resize(size, Image.Resampling.LANCZOS).save(path, quality=90)
    return path


def random_weights(folder: Path, model: str) -> Path:
    """Weights of a freshly initialised ``model`` (for models without shipped weights; memory does not depend
    on the values)."""
    import torch

    from unetcli.models.registry import get_spec
    from unetcli.weights import save_weights

    torch.manual_seed(0)
    path = folder / f"{model}-random.safetensors"
    save_weights(get_spec(model).factory(), path, {"model": model})
    return path


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return pids


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def measure(cmd: list[str]) -> dict:
    """Run ``cmd``; its exit code, wall seconds, peak RSS (own process) and peak PSS sum of its process tree."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak_tree = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_tree
        while not done.is_set():
            peak_tree = max(peak_tree, sum(_pss_kb(p) for p in _tree(proc.pid)))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    done.set()
    sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"rc": proc.returncode, "seconds": time.perf_counter() - t0, "maxrss_mb": usage.ru_maxrss / 1024,
            "tree_pss_mb": peak_tree / 1024, "stderr": stderr.decode(errors="replace").strip().splitlines()[-1:]}


def machine() -> str:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    import torch

    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, Python {platform.python_version()}, torch {torch.__version__}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="6000x4000", help="W x H of the test photo")
    ap.add_argument("--decolorize-weights", help="unet-decolorize weights (default: shipped, else random)")
    ap.add_argument("--tiles", default="512", help="--tile values to run (--untiled adds 0)")
    ap.add_argument("--untiled", action="store_true", help="also run --tile 0 (needs ~10 GB for unet-decolorize)")
    ap.add_argument("--precision", default="fp32", help="--precision for every run (fp32: the largest activations)")
    ap.add_argument("--models", default="simple-black,unet-decolorize")
    ap.add_argument("--workers", default="0,2", help="--workers values to run")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))

    from unetcli.models.registry import get_spec
    from unetcli.weights import shipped_weights

    print(f"<!-- {dt.datetime.now().isoformat(timespec='seconds')} on {machine()} -->")
    print("| model | --tile | --workers | peak RSS, one process (MB) | peak PSS, process tree (MB) | wall (s) |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        photo = make_photo(tmp, (w, h))
        for model in args.models.split(","):
            weights = []
            if model == "unet-decolorize" and args.decolorize_weights:
                weights = ["--weights", args.decolorize_weights]
            elif shipped_weights(get_spec(model)) is None:
                weights = ["--weights", str(random_weights(tmp, model))]
            tiles = args.tiles.split(",") + (["0"] if args.untiled else [])
            for tile in (tiles if get_spec(model).full_resolution else ["0"]):
                for workers in args.workers.split(","):
                    cmd = [sys.executable, "-m", "unetcli", "predict", "-m", model, *weights, "--tile", tile,
                           "--workers", workers, "--precision", args.precision, "--overwrite", "-q", str(photo),
                           str(tmp / "out")]
                    r = measure(cmd)
                    print(f"| {model} | {tile} | {workers} | {r['maxrss_mb']:.0f} | {r['tree_pss_mb']:.0f} | "
                          f"{r['seconds']:.1f} |" + ("" if r["rc"] == 0 else f" rc {r['rc']}: {r['stderr']}"),
                          flush=True)
                    print(f"<!-- {shlex.join(cmd[1:])} -->", flush=True)


if __name__ == "__main__":
    main()
