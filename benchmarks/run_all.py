"""The speed benchmark suite (issue 7, "fast on the machine it runs on"): every figure a ratio measured side by side.

One command runs everything and writes ``--out`` (JSON), a Markdown table beside it (``.md``) and the profiles::

    python benchmarks/run_all.py --out benchmarks/results.json          # full: 64 photos, roughly 10-15 min on 2 cores
    python benchmarks/run_all.py --quick --out runs/bench/results.json  # smoke: 16 photos, ~3 min

A plain script, not a test (pytest collects ``tests/`` only). Every measurement runs in its own child process
with the same thread count (``--threads``, passed as ``OMP_NUM_THREADS`` and ``torch.set_num_threads``), so each
has its own peak RSS (``os.wait4``'s ``ru_maxrss``; the sum of ``Pss`` over the process tree is sampled every
50 ms too, for runs with DataLoader workers). Photos are real (``--photos``, default ``../shared/data/photos``,
a seeded sample of ``--n-photos`` of mixed sizes, longest side <= 1024); the matmul peak is the only synthetic
input. unet-colorize runs on ``--colorize-weights``, else on freshly initialised weights of its architecture
(speed does not depend on the values); simple-black and unet-decolorize on their shipped weights.

Figures (target in brackets):

1. ``unetcli predict --model colorize`` (real subprocess, default options) vs a notebook-style loop (per photo:
   PIL open, task ``prepare``, one fp32 NCHW model call, task ``finish``, save), whole-command wall time [>= 5x].
2. unet-colorize forward at 128x128, batch 8: bf16 autocast + channels_last GFLOP/s over the bf16
   ``torch.matmul`` peak [>= 50 %]; fp32 (NCHW and channels_last) over the fp32 peak; for information also
   onnxruntime fp32 and bf16 under ``torch.compile`` (neither is what predict runs; both skipped by ``--quick``).
   FLOPs = 2 x torchinfo's mult-adds per image.
3. end-to-end colorize images/s over model-only bf16 images/s [>= 85 %]. End-to-end throughput is marginal:
   each end-to-end command also runs on the folder's first photo alone, and (n - 1) / (wall(n) - wall(1))
   leaves out start-up, loading the weights and the first batch.
4. training images/s, bf16 vs fp32, unet-colorize, batch 16 at 128x128 [>= 3x].
5. ``unetcli predict`` simple-black and unet-decolorize (shipped weights) vs Pillow open + ``convert("L")`` +
   save, whole-command wall time [>= 0.5x].
6. peak memory of each of the above.
7. colorize on 6000x4000 photos (issue 13): peak RSS of ``unetcli predict --model colorize --workers 0`` on one
   such photo and on four, minus the same command on one ordinary photo: the memory a 24-Mpixel photo in flight
   costs [<= 1.5 GB per photo, reported as 1.5 GB over the measured cost, >= 1x]. ``--only colorize-memory`` runs
   this figure alone (about a minute) and prints its rows.
8. end to end over the floor (issue 18), for each of simple-black, unet-decolorize, unet-colorize and unet-seg
   (shipped weights; ``--colorize-weights``; random weights of the architecture where none ship): ``unetcli
   predict`` marginal images/s over the floor = (n - 1) / (model s + I/O s) on the same photos, where model s is
   the time inside the real ``Predictor.forward`` at the sizes predict runs (working size, or each photo's own
   size on 512-px tiles; ``--precision auto``) and I/O s is Pillow's full-size decode of each input plus the PNG
   encode (``SAVE_OPTIONS``) of the output predict wrote [>= 85 %]; the notebook-loop ratio for colorize beside
   it (ceiling floor / notebook). Photo set: the run's photos plus ``--floor-big`` 6000x4000 ones (figure 7's
   kind; default 2, quick 0). ``--only floor`` runs it alone (with a py-spy line per model unless
   ``--no-profile``) and prints the CPU (AMX / AVX512-BF16) and thread count; ``--floor-models`` picks some of
   the four.

The profile step writes ``torch.profiler`` top-op tables of the model forward and of an in-process predict, and,
where ``py-spy`` is installed (``pip install -c constraints.txt '.[bench]'``), a sampled profile of the real
``unetcli predict`` command with its threads and DataLoader workers, summarised by stage and function.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from bench_memory import _pss_kb, _tree, make_photo  # noqa: E402  (same folder; shared helpers)

PARTS = HERE / "suite_parts.py"
DEFAULT_PHOTOS = ROOT.parent / "shared" / "data" / "photos"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
#: Predict's default --batch-size: the model-only figures use the same batch.
PREDICT_BATCH = 8
#: Seconds between the PSS samples of :func:`run_child`. ``--only floor`` samples once a second: its figure reports
#: no memory, and on the one core it runs on, reading /proc every 50 ms took 12-16 % of ``predict``'s time and a
#: quarter of the model-only part's (issue 18, measured).
PSS_INTERVAL_S = 0.05


# --------------------------------------------------------------------------------------------------- running


def run_child(cmd: list[str], threads: int, cwd: Path = ROOT, timeout: float = 3600) -> dict:
    """Run ``cmd`` with ``threads`` OMP threads; time-stamp its stdout lines; measure its memory.

    Returns a dict: ``rc``, ``wall`` (seconds), ``maxrss_mb`` (peak RSS of the command's own process, from
    ``os.wait4``), ``tree_pss_mb`` (largest sampled sum of PSS over its process tree), ``line_times`` (seconds
    after start at which each stdout line arrived, ``RESULT`` line excluded), ``result`` (the parsed
    ``RESULT`` JSON of a suite part, or None), ``stderr_tail``.
    """
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd, env=env, text=True)
    line_times: list[float] = []
    result: list[dict] = []
    stderr: list[str] = []
    peak_pss = 0
    done = threading.Event()

    def read_stdout() -> None:
        for line in proc.stdout:
            if line.startswith("RESULT "):
                result.append(json.loads(line[7:]))
            else:
                line_times.append(time.perf_counter() - t0)

    def read_stderr() -> None:
        stderr.extend(proc.stderr)

    def sample() -> None:
        nonlocal peak_pss
        while not done.is_set():
            peak_pss = max(peak_pss, sum(_pss_kb(p) for p in _tree(proc.pid)))
            time.sleep(PSS_INTERVAL_S)

    threads_ = [threading.Thread(target=f, daemon=True) for f in (read_stdout, read_stderr, sample)]
    for t in threads_:
        t.start()
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
        time.sleep(0.02)
    wall = time.perf_counter() - t0
    done.set()
    for t in threads_:
        t.join(timeout=10)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"cmd": cmd, "rc": proc.returncode, "wall": wall, "maxrss_mb": usage.ru_maxrss / 1024,
            "tree_pss_mb": peak_pss / 1024, "line_times": line_times, "result": result[-1] if result else None,
            "stderr_tail": "".join(stderr[-5:]).strip()}


def part(name: str, threads: int, **kwargs) -> dict:
    """Run one part of ``suite_parts.py`` in a child process (see :func:`run_child`)."""
    args = {"threads": threads, **kwargs}
    r = run_child([sys.executable, str(PARTS), name, "--args", json.dumps(args)], threads)
    if r["rc"] != 0 or r["result"] is None:
        raise RuntimeError(f"suite part {name} failed (rc {r['rc']}): {r['stderr_tail']}")
    return r


def predict_cmd(model: str, photos: Path, out: Path, weights: Path | None = None) -> list[str]:
    """The real ``unetcli predict`` command with default options (``--json``: one flushed line per output)."""
    return [sys.executable, "-m", "unetcli", "predict", "-m", model, *(["--weights", str(weights)] if weights else []),
            "--json", str(photos), str(out)]


def run_predict(model: str, photos: Path, out: Path, threads: int, n: int, weights: Path | None = None) -> dict:
    """``unetcli predict`` in a subprocess; checks every photo was written."""
    r = run_child(predict_cmd(model, photos, out, weights), threads)
    written = len(list(out.glob("*.png"))) if out.is_dir() else 0
    if r["rc"] != 0 or written != n:
        raise RuntimeError(f"unetcli predict -m {model} failed (rc {r['rc']}, {written}/{n} written): "
                           f"{r['stderr_tail']}")
    return r


def steady_rate(line_times: list[float], skip: int) -> float | None:
    """Images/s from the ``skip``-th output line to the last (start-up, loading and the first batch excluded)."""
    skip = min(skip, len(line_times) // 2)
    if len(line_times) - skip < 2:
        return None
    span = line_times[-1] - line_times[skip - 1] if skip else line_times[-1] - line_times[0]
    return (len(line_times) - max(skip, 1)) / span if span > 0 else None


# --------------------------------------------------------------------------------------------------- photos


def select_photos(source: Path, n: int, seed: int = 0) -> list[Path]:
    """A seeded random sample of ``n`` image files found (recursively) under ``source``, sorted."""
    pool = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if len(pool) < n:
        raise SystemExit(f"{source}: {len(pool)} photos, {n} needed")
    return sorted(random.Random(seed).sample(pool, n))


def stage_photos(paths: list[Path], dest: Path) -> dict[str, int]:
    """Copy ``paths`` flat into ``dest`` (``folder__name``); return a histogram of their sizes ("WxH": count)."""
    from PIL import Image

    dest.mkdir(parents=True, exist_ok=True)
    sizes: collections.Counter = collections.Counter()
    for p in paths:
        shutil.copy2(p, dest / f"{p.parent.name}__{p.name}")
        with Image.open(p) as im:
            sizes[f"{im.width}x{im.height}"] += 1
    return dict(sizes.most_common())


def in_child(code: str, *args: str) -> dict:
    """Run Python ``code`` in a child process (which prints one JSON object) and return that object.

    The suite's own process never imports torch: a child's ``ru_maxrss`` starts from the RSS of the process it
    was spawned from (Linux carries the pre-exec high-water mark over), so a lean parent keeps every child's
    peak RSS honest (the floor is this script's own ~30 MB).
    """
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(HERE)})
    if r.returncode != 0:
        raise RuntimeError(r.stderr.strip().splitlines()[-1:] or r.returncode)
    return json.loads(r.stdout.strip().splitlines()[-1])


def random_colorize_weights(folder: Path) -> Path:
    """Freshly initialised unet-colorize weights (seed 0) as safetensors; speed does not depend on the values."""
    return Path(in_child("import json, sys; from pathlib import Path; from bench_memory import random_weights; "
                         "print(json.dumps(str(random_weights(Path(sys.argv[1]), 'unet-colorize'))))",
                         str(folder)))


def environment() -> dict:
    """Machine, versions and which models have shipped weights, found by a child process."""
    return in_child("""
import json, os, platform, torch
from bench_memory import machine
from unetcli.devices import cpu_has_fast_bf16, describe_environment
from unetcli.models.registry import get_spec, list_models
from unetcli.weights import shipped_weights
cpu = describe_environment()["cpu"]
print(json.dumps({"machine": machine(), "platform": platform.platform(), "torch": torch.__version__,
                  "fast_bf16": cpu_has_fast_bf16(),
                  "cpu": {k: cpu[k] for k in ("model", "capability", "amx", "avx512_bf16", "fast_bf16",
                                              "usable_cores")},
                  "shipped": {m: str(shipped_weights(get_spec(m)) or "") for m in list_models()}}))
""")


def cpu_line(env: dict, threads: int) -> str:
    """One line naming the CPU, its bf16 hardware (AMX / AVX512-BF16, which set the bf16 speed) and the threads."""
    cpu = env.get("cpu", {})
    yes = lambda v: "yes" if v else ("no" if v is not None else "unknown")  # noqa: E731
    return (f"CPU {cpu.get('model', '?')} (AMX: {yes(cpu.get('amx'))}, AVX512-BF16: {yes(cpu.get('avx512_bf16'))}, "
            f"ATen capability {cpu.get('capability') or '?'}; {cpu.get('usable_cores', '?')} usable core(s)); "
            f"{threads} thread(s)")


# --------------------------------------------------------------------------------------------------- py-spy


def py_spy() -> str | None:
    """The ``py-spy`` executable (beside this Python, else on PATH), or None."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.is_file() else shutil.which("py-spy")


#: Leaf frames of threads blocked in a wait. py-spy (without ``--idle``) drops idle threads by a heuristic that
#: here still reports these (e.g. unet-decolorize's writer threads and queue feeders, 23 % of all samples of a run
#: whose end to end was 95 % of the floor on one core): they get the stage :data:`IDLE_STAGE`, left out of the
#: shares that :func:`non_model_line` reports.
IDLE_LEAVES = ("Condition.wait (", "Event.wait (", "_worker (concurrent/futures/thread.py", "SocketListener.accept (",
               "socket.accept (", "_PollLikeSelector.select (")
IDLE_STAGE = "idle: blocked in a wait (py-spy still samples it)"
#: The command's main thread with no Python frame left, or in ``torch.library`` teardown: the interpreter exiting
#: (about 1 s of C++ destructors after ``import torch`` alone on this machine). A fixed cost per command, like
#: start-up, left out of the shares that :func:`non_model_line` reports.
EXIT_STAGE = "shut-down: interpreter exit (torch teardown)"


def classify_sample(pid: int, root_pid: int, funcs: list[str], main_thread: bool = False) -> tuple[str, str]:
    """(process/thread role, stage of a predict run) of one sampled stack (``funcs``: root frame first;
    ``main_thread``: the sample is of a process's main thread)."""
    has = lambda *names: any(n in f for f in funcs for n in names)  # noqa: E731
    if pid == root_pid and main_thread and (not funcs or has("_del_library (")):
        return "main process: main thread", EXIT_STAGE
    idle = bool(funcs) and funcs[-1].startswith(IDLE_LEAVES)
    role, stage = _classify_busy(pid, root_pid, funcs, has)
    return role, IDLE_STAGE if idle else stage


def _classify_busy(pid: int, root_pid: int, funcs: list[str], has) -> tuple[str, str]:
    """:func:`classify_sample` for a sample that is not a wait."""
    if pid != root_pid:
        role = "DataLoader worker processes"
        stage = ("workers: task.prepare (resize, luminance, to tensor)" if has(".prepare (") else
                 "workers: decode (read_photo)" if has("read_photo", "__getitem__") else
                 "workers: queues, pickling, start-up")
    elif has("concurrent/futures/thread.py"):
        role = "main process: writer thread"
        stage = ("writer: PNG encode + rename (save_atomic)" if has("save_atomic") else
                 "writer: task.finish (post-processing)" if has("finish") else "writer: idle / other")
    elif funcs and funcs[0].startswith(("_run_module_as_main", "<module>")):
        role = "main process: main thread"
        stage = ("start-up: imports, weights, set-up" if has("_find_and_load", "load_backend", "load_model",
                                                             "load_state", "collect_inputs") else
                 "main: model forward (torch)" if has("Predictor.forward (", "_call_impl") else
                 "main: tiling (cut tiles, blend; bands of rows)" if has("predict_tiled", "predict_rows") else
                 "main: batch padding / stacking" if has("forward_same_padded") else
                 "main: read_metadata (EXIF, ICC)" if has("read_metadata") else
                 "main: DataLoader receive (unpickling)" if has("dataloader.py", "multiprocessing") else
                 "main: other")
    else:
        role, stage = "main process: other threads", "other threads (queue feeders, unnamed)"
    return role, stage


def summarise_py_spy(raw: Path, rows: int = 25) -> tuple[str, dict]:
    """Summarise py-spy's ``--format raw`` (collapsed stacks) output: samples per process role, stage, function.

    Returns (text with Markdown tables, dict of the same). Every sample is one thread seen on a CPU (py-spy
    without ``--idle``), so the counts say where CPU time went. The command's own process is the smallest pid;
    the others are its DataLoader worker processes (py-spy ``--subprocesses`` prefixes their stacks with the
    parent's ``process`` frame).
    """
    samples = []
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        # A child's stacks start "process PARENT:...;process CHILD:...": the last process frame is the sampled one.
        pids = [int(m.group(1)) for m in (re.match(r"process (\d+):", f) for f in frames) if m]
        if not stack or not count.isdigit() or not pids:
            continue
        funcs = [f for f in frames if not f.startswith(("thread", "process "))]
        main_thread = any(f.startswith("thread") and f.endswith(": MainThread") for f in frames)
        samples.append((pids[-1], funcs, int(count), main_thread))
    root_pid = min((pid for pid, *_ in samples), default=0)
    by_role: collections.Counter = collections.Counter()
    by_stage: collections.Counter = collections.Counter()
    by_leaf: collections.Counter = collections.Counter()
    for pid, funcs, n, main_thread in samples:
        role, stage = classify_sample(pid, root_pid, funcs, main_thread)
        by_role[role] += n
        by_stage[stage] += n
        by_leaf[re.sub(r":\d+\)$", ")", funcs[-1]) if funcs else "?"] += n
    total = sum(by_role.values()) or 1

    def table(title: str, counter: collections.Counter, limit: int) -> list[str]:
        lines = [f"| {title} | samples | share |", "|---|---|---|"]
        lines += [f"| {k} | {v} | {100 * v / total:.1f} % |" for k, v in counter.most_common(limit)]
        return lines

    text = "\n".join(["py-spy (sampling, all threads and DataLoader worker processes, on-CPU samples only)", "",
                      *table("process / thread", by_role, 10), "",
                      *table("stage", by_stage, 12), "",
                      *table("leaf Python function (native code is charged to its caller)", by_leaf, rows)])
    pct = lambda c: {k: round(100 * v / total, 1) for k, v in c.most_common()}  # noqa: E731
    return text + "\n", {"samples": total, "by_stage_pct": pct(by_stage), "by_role_pct": pct(by_role),
                         "top_leaf": [[k, round(100 * v / total, 1)] for k, v in by_leaf.most_common(rows)]}


def profile_with_py_spy(photos: Path, out: Path, weights: Path | None, threads: int, profile_dir: Path,
                        model: str = "unet-colorize", raw_dir: Path | None = None) -> dict:
    """Sample a real ``unetcli predict --model MODEL`` run with py-spy; write the raw stacks (to ``raw_dir``,
    default ``profile_dir``) and a summary (``predict_<model without unet->_pyspy.txt``). ``weights`` None: the
    shipped ones."""
    exe = py_spy()
    if exe is None:
        return {"skipped": "py-spy not installed (pip install -c constraints.txt '.[bench]')"}
    slug = model.removeprefix("unet-")
    raw = (raw_dir or profile_dir) / f"predict_{slug}_pyspy.raw.txt"
    cmd = [exe, "record", "--subprocesses", "--threads", "--rate", "100", "--format", "raw", "--output", str(raw),
           "--", *predict_cmd(model, photos, out, weights)]
    r = run_child(cmd, threads)
    if not raw.is_file():
        return {"skipped": f"py-spy failed (rc {r['rc']}): {r['stderr_tail'][-300:]}"}
    text, data = summarise_py_spy(raw)
    summary = profile_dir / f"predict_{slug}_pyspy.txt"
    summary.write_text(f"unetcli predict --model {slug} on {len(list(photos.iterdir()))} photos, default options, "
                       f"OMP_NUM_THREADS={threads}, wall {r['wall']:.1f} s (sampling slows it)\n\n{text}")
    return {"file": str(summary), "raw": str(raw), "wall": r["wall"], **data}


# --------------------------------------------------------------------------------------------------- report


def figure(fid: str, name: str, value: float | None, target: float | None, unit: str, how: str) -> dict:
    """One headline figure: a ratio with its target (met when ``value >= target``; no target: for information)."""
    return {"id": fid, "figure": name, "value": value, "target": target, "unit": unit,
            "met": None if value is None or target is None else value >= target, "how": how}


def fmt_value(v: float | None, unit: str) -> str:
    """A ratio as ``3.2x`` or ``47 %``."""
    if v is None:
        return "n/a"
    return f"{100 * v:.0f} %" if unit == "%" else f"{v:.2f}x"


def ratio(a: float | None, b: float | None) -> str:
    """``a / b`` as ``1.23x``, or ``n/a`` when either is missing."""
    return f"{a / b:.2f}x" if a and b else "n/a"


def markdown(results: dict) -> str:
    """The results as Markdown: headline ratios, then every run's throughput, wall time and peak memory."""
    m = results["meta"]
    lines = [f"Run {m['date']} on {m['machine']}; {m['threads']} thread(s) (`OMP_NUM_THREADS`), "
             f"{m['n_photos']} photos, load average {m['loadavg_start'][0]:.2f} at start / "
             f"{m['loadavg_end'][0]:.2f} at end{'; QUICK (smoke) run' if m['quick'] else ''}.", "",
             "| # | figure | measured | target | met | how |", "|---|---|---|---|---|---|"]
    for f in results["figures"]:
        met = "-" if f["met"] is None else ("yes" if f["met"] else "**no**")
        target = "-" if f["target"] is None else ">= " + fmt_value(f["target"], f["unit"])
        lines.append(f"| {f['id']} | {f['figure']} | {fmt_value(f['value'], f['unit'])} | "
                     f"{target} | {met} | {f['how']} |")
    lines += ["", "| run | throughput | wall (s) | peak RSS, one process (MB) | peak PSS, process tree (MB) |",
              "|---|---|---|---|---|"]
    for name, r in results["runs"].items():
        lines.append(f"| {name} | {r.get('throughput', '')} | {r['wall']:.1f} | {r['maxrss_mb']:.0f} | "
                     f"{r['tree_pss_mb']:.0f} |")
    if results.get("floor"):
        lines += ["", "Figure 8, end to end over the floor:", "",
                  floor_markdown({**m, **m.get("floor_photos", {})}, results["floor"]).rstrip("\n")]
    return "\n".join(lines) + "\n"


def _keep(r: dict, throughput: str, **extra) -> dict:
    """What a run keeps in the results file."""
    return {"throughput": throughput, "wall": round(r["wall"], 2), "maxrss_mb": round(r["maxrss_mb"], 1),
            "tree_pss_mb": round(r["tree_pss_mb"], 1), "cmd": " ".join(map(str, r["cmd"][1:]))[:300],
            **({"result": r["result"]} if r.get("result") else {}), **extra}


# --------------------------------------------------------------------------------------------------- big photos

#: Side lengths of the large photo of figure 7 (a 24-Mpixel camera's 3:2 frame) and the budget per photo in flight.
BIG_PHOTO = (6000, 4000)
BIG_PHOTO_BUDGET_MB = 1536


def colorize_memory(tmp: Path, photos: Path, threads: int, weights: Path, runs: dict) -> list[dict]:
    """Figure 7: peak RSS of ``unetcli predict --model colorize`` (one process: ``--workers 0``) on one ordinary
    photo, on one 6000x4000 JPEG upscaled from it, and on four copies of that (batched together, two writer
    threads); the cost per large photo in flight is the difference to the ordinary photo (start-up, weights and
    the model are in both). Also the default ``--workers 2`` on the four, as the PSS sum of the process tree."""
    source = sorted(p for p in photos.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[0]
    folders = {name: tmp / f"big-{name}" for name in ("small", "one", "four")}
    for folder in folders.values():
        folder.mkdir()
    shutil.copy2(source, folders["small"] / source.name)
    big = make_photo(folders["one"], BIG_PHOTO, source)
    for i in range(4):
        shutil.copy2(big, folders["four"] / f"{i}_{big.name}")
    peaks = {}
    for name, extra in (("small", ["--workers", "0"]), ("one", ["--workers", "0"]), ("four", ["--workers", "0"]),
                        ("four-workers", [])):
        folder = folders[name.split("-")[0]]
        cmd = predict_cmd("unet-colorize", folder, tmp / f"out-big-{name}", weights)
        r = run_child(cmd[:-2] + extra + cmd[-2:], threads)
        n = len(list(folder.iterdir()))
        if r["rc"] != 0:
            raise RuntimeError(f"colorize on {name} failed (rc {r['rc']}): {r['stderr_tail']}")
        peaks[name] = r
        label = {"small": f"one {source.name} photo", "one": "one 6000x4000 photo",
                 "four": "four 6000x4000 photos", "four-workers": "four 6000x4000 photos, --workers 2"}[name]
        runs[f"unetcli predict --model unet-colorize, {label}"] = _keep(
            r, f"{n / r['wall']:.2f} img/s")
    base = peaks["small"]["maxrss_mb"]
    one, four = peaks["one"]["maxrss_mb"] - base, (peaks["four"]["maxrss_mb"] - base) / 4
    return [figure("7", "colorize, one 6000x4000 photo: memory per photo in flight (budget over cost)",
                   BIG_PHOTO_BUDGET_MB / one if one > 0 else None, 1.0, "x",
                   f"{one:.0f} MB over one ordinary photo (peak RSS {peaks['one']['maxrss_mb']:.0f} vs {base:.0f} "
                   f"MB, --workers 0); budget {BIG_PHOTO_BUDGET_MB} MB"),
            figure("7", "colorize, four 6000x4000 photos: memory per photo (budget over cost)",
                   BIG_PHOTO_BUDGET_MB / four if four > 0 else None, 1.0, "x",
                   f"peak RSS {peaks['four']['maxrss_mb']:.0f} MB (--workers 0), {four:.0f} MB per photo; with "
                   f"--workers 2 the process tree's PSS peaks at {peaks['four-workers']['tree_pss_mb']:.0f} MB")]


# --------------------------------------------------------------------------------------------------- floor (issue 18)

#: The models of the floor figure, in the order they run: the four seed models and the default colorizer.
FLOOR_MODELS = ("simple-black", "unet-decolorize", "unet-colorize", "unet-colorize-mobilenetv2", "unet-seg")
#: Issue 18's target: ``unetcli predict`` marginal images/s over the floor.
FLOOR_TARGET = 0.85


def stage_floor_photos(photos: Path, dest: Path, big: int) -> dict[str, int]:
    """The floor figure's photo set in ``dest``: every photo of ``photos`` (hard links, else copies) plus ``big``
    6000x4000 JPEGs upscaled from the 2nd, 3rd ... of them as figure 7 makes its large photo
    (:func:`bench_memory.make_photo`). They are named ``zz-big<i>__...`` to sort last, so the first photo, which
    the marginal rate runs alone, stays an ordinary one. Returns a histogram of the sizes ("WxH": count)."""
    from PIL import Image

    dest.mkdir(parents=True, exist_ok=True)
    sources = sorted(p for p in photos.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    for p in sources:
        try:
            os.link(p, dest / p.name)
        except OSError:
            shutil.copy2(p, dest / p.name)
    for i, source in enumerate(sources[1:1 + big], 1):
        work = dest.parent / f"{dest.name}-big{i}"
        work.mkdir()
        made = make_photo(work, BIG_PHOTO, source)
        made.rename(dest / f"zz-big{i}__{source.stem}_{BIG_PHOTO[0]}x{BIG_PHOTO[1]}.jpg")
        work.rmdir()
    sizes: collections.Counter = collections.Counter()
    for p in sorted(dest.iterdir()):
        with Image.open(p) as im:
            sizes[f"{im.width}x{im.height}"] += 1
    return dict(sizes.most_common())


def marginal_pair(run, photos: Path, tmp: Path, slug: str) -> tuple[dict, dict]:
    """``run(folder, out, n)`` on the first photo of ``photos`` alone, then on all ``n`` of them; the full run gets
    ``marginal_img_s`` = (n - 1) / (wall(n) - wall(1)): start-up, weights and the first photo left out."""
    paths = sorted(p for p in photos.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    one = tmp / f"{photos.name}-first"
    if not one.is_dir():
        one.mkdir()
        shutil.copy2(paths[0], one / paths[0].name)
    single = run(one, tmp / f"out-{slug}-1", 1)
    full = run(photos, tmp / f"out-{slug}", len(paths))
    delta = full["wall"] - single["wall"]
    full["marginal_img_s"] = (len(paths) - 1) / delta if len(paths) > 1 and delta > 0 else None
    full["one_photo_wall"] = single["wall"]
    return single, full


def floor_weights(model: str, env: dict, tmp: Path, colorize_weights: Path | None) -> Path | None:
    """The weights the floor figure runs ``model`` on: ``--colorize-weights`` for unet-colorize, else the shipped
    weights (None: predict finds them itself), else freshly initialised ones of the architecture (unet-seg ships
    none; speed does not depend on the values, though PNG sizes of its masks do: noted in the table)."""
    if model == "unet-colorize" and colorize_weights:
        return colorize_weights
    if env["shipped"].get(model):
        return None
    return Path(in_child("import json, sys; from pathlib import Path; from bench_memory import random_weights; "
                         "print(json.dumps(str(random_weights(Path(sys.argv[1]), sys.argv[2]))))", str(tmp), model))


def non_model_line(profile: dict, rows: int = 4) -> str:
    """Where a py-spy profile's on-CPU samples went besides the model forward and start-up, largest first."""
    if "by_stage_pct" not in profile:
        return profile.get("skipped", "no profile")
    stages = dict(profile["by_stage_pct"])
    startup = stages.pop("start-up: imports, weights, set-up", 0.0) + stages.pop(EXIT_STAGE, 0.0)
    idle = stages.pop(IDLE_STAGE, 0.0)
    # shares of the busy samples after start-up, before shut-down (what the marginal rate sees)
    scale = 100.0 / max(100.0 - startup - idle, 1e-9)
    forward = stages.pop("main: model forward (torch)", 0.0) * scale
    return (f"model forward {forward:.0f} % of the busy samples after start-up (of all samples {startup:.0f} % "
            f"start-up and shut-down, {idle:.0f} % waits); besides it: "
            + ", ".join(f"{k} {v * scale:.0f} %" for k, v in list(stages.items())[:rows]))


def floor_figures(photos: Path, tmp: Path, threads: int, env: dict, runs: dict, colorize_weights: Path | None,
                  quick: bool, log, profile_dir: Path | None = None,
                  models: tuple[str, ...] = FLOOR_MODELS) -> tuple[list[dict], dict]:
    """Figure 8 (issue 18): for each of :data:`FLOOR_MODELS`, ``unetcli predict`` marginal images/s over the
    floor = (n - 1) / (model-only seconds + unavoidable I/O seconds) on the same n - 1 photos, all measured in this
    run with ``threads`` threads; for unet-colorize also the notebook loop (its marginal rate, the ratio of
    predict to it, and the ceiling floor / notebook). With ``profile_dir``, each model's predict run is sampled by
    py-spy once more and one line says where its non-model time goes. ``models``: a subset of
    :data:`FLOOR_MODELS` (``--floor-models``).

    Returns (figures, details per model for the results file and the floor table).
    """
    figures, details = [], {}
    n = len([p for p in photos.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES])
    for model in models:
        weights = floor_weights(model, env, tmp, colorize_weights)
        slug = f"floor-{model}"
        log(f"floor, {model}: unetcli predict (first photo alone, then all {n})")
        single, full = marginal_pair(lambda folder, out, k, m=model, w=weights: run_predict(m, folder, out, threads,
                                                                                            k, w), photos, tmp, slug)
        log(f"floor, {model}: model only")
        mo = part("floor-model", threads, model=model, weights=str(weights) if weights else None,
                  photos=str(photos), skip=1, batch=PREDICT_BATCH, tile=512, warmup=1,
                  iters=1 if quick or model == "unet-decolorize" else 2)["result"]
        log(f"floor, {model}: decode + encode")
        io = part("floor-io", threads, photos=str(photos), out=str(tmp / f"out-{slug}"), tmp=str(tmp / "floor-io"),
                  skip=1, iters=1 if quick else 2)["result"]
        io_s = io["decode_s"] + io["encode_s"]
        floor_img_s = (n - 1) / (mo["forward_s"] + io_s)
        marginal = full["marginal_img_s"]
        d = {"weights": str(weights) if weights else "shipped", "precision": mo["precision"], "images": n,
             "marginal_img_s": marginal, "one_photo_wall_s": round(single["wall"], 2), "whole_wall_s": full["wall"],
             "model_only_img_s": mo["img_s"], "model_s": mo["forward_s"], "model_pass_s": mo["pass_s"],
             "tiled_images": mo["tiled_images"], "decode_s": io["decode_s"], "encode_s": io["encode_s"],
             "output_modes": io["output_modes"], "io_img_s": (n - 1) / io_s, "floor_img_s": floor_img_s,
             "ratio": marginal / floor_img_s if marginal else None,
             "model_share_of_floor": mo["forward_s"] / (mo["forward_s"] + io_s)}
        runs[f"floor: unetcli predict --model {model}"] = _keep(
            full, f"{n / full['wall']:.2f} img/s; marginal {marginal or 0:.2f}", marginal_img_s=marginal,
            one_photo_wall=round(single["wall"], 2))
        if model == "unet-colorize":
            log("floor, unet-colorize: notebook loop")
            _, naive = marginal_pair(lambda folder, out, k, w=weights: part(
                "naive-colorize", threads, weights=str(w or env["shipped"]["unet-colorize"]), photos=str(folder),
                out=str(out)), photos, tmp, "floor-naive")
            d["notebook_marginal_img_s"] = naive["marginal_img_s"]
            runs["floor: naive loop, colorize"] = _keep(naive, f"{n / naive['wall']:.2f} img/s; marginal "
                                                               f"{naive['marginal_img_s'] or 0:.2f}",
                                                        marginal_img_s=naive["marginal_img_s"])
        if profile_dir is not None:
            log(f"floor, {model}: unetcli predict under py-spy")
            d["profile"] = profile_with_py_spy(photos, tmp / f"out-{slug}-pyspy", weights, threads, profile_dir, model,
                                               raw_dir=tmp)
            d["non_model"] = non_model_line(d["profile"])
        details[model] = d
        share = f"model {100 * d['model_share_of_floor']:.0f} % of the floor's time"
        figures.append(figure(
            "8", f"{model}: `unetcli predict` marginal vs floor (model-only {d['precision']} + decode + PNG encode)",
            d["ratio"], FLOOR_TARGET, "%",
            f"{marginal or 0:.2f} vs {floor_img_s:.2f} img/s on {n - 1} photos ({share}: model only "
            f"{mo['img_s']:.1f} img/s, I/O only {d['io_img_s']:.1f} img/s); start-up {single['wall']:.1f} s"))
        if model == "unet-colorize" and d.get("notebook_marginal_img_s"):
            nb = d["notebook_marginal_img_s"]
            figures.append(figure("8", "unet-colorize: `unetcli predict` vs notebook loop, marginal (ceiling: "
                                       "floor / notebook)", (marginal or 0) / nb, 5.0, "x",
                                  f"{marginal or 0:.2f} vs {nb:.2f} img/s; ceiling on this CPU "
                                  f"{floor_img_s / nb:.2f}x"))
    return figures, details


def floor_markdown(meta: dict, details: dict) -> str:
    """The floor figure as its own Markdown table (``--only floor`` prints and writes this)."""
    lines = [f"Run {meta['date']}, {meta['cpu_line']}; {meta['n_photos']} photos ({meta['photo_sizes_note']}), "
             f"load average {meta['loadavg_start'][0]:.2f} at start / {meta['loadavg_end'][0]:.2f} at end"
             f"{'; QUICK (smoke) run' if meta.get('quick') else ''}.", "",
             "| model | precision | model only (img/s) | decode + encode only (img/s) | floor (img/s) | model share of "
             "floor | `predict` marginal (img/s) | **predict / floor** | >= 85 % | start-up, 1 photo (s) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for model, d in details.items():
        ratio_ = d["ratio"]
        lines.append(f"| {model} | {d['precision']} | {d['model_only_img_s']:.2f} | {d['io_img_s']:.2f} | "
                     f"{d['floor_img_s']:.2f} | {100 * d['model_share_of_floor']:.0f} % | "
                     f"{d['marginal_img_s'] or 0:.2f} | **{fmt_value(ratio_, '%')}** | "
                     f"{'-' if ratio_ is None else ('yes' if ratio_ >= FLOOR_TARGET else '**no**')} | "
                     f"{d['one_photo_wall_s']:.1f} |")
    colorize = details.get("unet-colorize", {})
    if colorize.get("notebook_marginal_img_s"):
        nb = colorize["notebook_marginal_img_s"]
        lines += ["", f"Notebook loop (unet-colorize, fp32 NCHW, one photo at a time), marginal {nb:.2f} img/s: "
                      f"`predict` is {(colorize['marginal_img_s'] or 0) / nb:.2f}x it; the ceiling on this CPU "
                      f"(floor / notebook) is {colorize['floor_img_s'] / nb:.2f}x."]
    profiled = {m: d["non_model"] for m, d in details.items() if "non_model" in d}
    if profiled:
        lines += ["", "Where `predict`'s on-CPU time goes besides the model (py-spy, all threads and workers):", ""]
        lines += [f"* {m}: {line}" for m, line in profiled.items()]
    return "\n".join(lines) + "\n"


def only_floor(args) -> None:
    """``--only floor``: figure 8 alone on ``--n-photos`` of ``--photos`` (default 64, quick 16) plus
    ``--floor-big`` 6000x4000 photos (default 2, quick 0); prints its table (and, with ``--out``, writes the JSON
    and the table beside it, profiles in ``--profile-dir`` or ``profile-floor/`` beside ``--out``)."""
    global PSS_INTERVAL_S
    PSS_INTERVAL_S = 1.0
    started = time.time()
    quick = args.quick
    n_photos = args.n_photos or (16 if quick else 64)
    big = args.floor_big if args.floor_big is not None else (0 if quick else 2)
    write = "--out" in sys.argv
    env = environment()
    meta = {"date": dt.datetime.now().isoformat(timespec="seconds"), "machine": env["machine"], "cpu": env["cpu"],
            "cpu_line": cpu_line(env, args.threads), "threads": args.threads, "quick": quick,
            "photos": str(args.photos), "loadavg_start": os.getloadavg(), "batch": PREDICT_BATCH, "tile": 512}

    def log(msg: str) -> None:
        print(f"[{time.time() - started:6.0f} s] {msg}", file=sys.stderr, flush=True)

    log(meta["cpu_line"])
    runs: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="unetcli-bench-") as tmp:
        tmp = Path(tmp)
        stage_photos(select_photos(args.photos, n_photos), tmp / "photos")
        meta["photo_sizes"] = stage_floor_photos(tmp / "photos", tmp / "photos-floor", big)
        meta["n_photos"] = sum(meta["photo_sizes"].values())
        meta["photo_sizes_note"] = (f"{n_photos} real, longest side <= 1024" + (
            f", + {big} of {BIG_PHOTO[0]}x{BIG_PHOTO[1]} upscaled from real ones" if big else ""))
        profile_dir = None
        if not args.no_profile:
            profile_dir = args.profile_dir or (args.out.parent / "profile-floor" if write else tmp / "profile")
            profile_dir.mkdir(parents=True, exist_ok=True)
        figures, details = floor_figures(tmp / "photos-floor", tmp, args.threads, env, runs, args.colorize_weights,
                                         quick, log, profile_dir, tuple(args.floor_models))
    meta["loadavg_end"] = os.getloadavg()
    meta["seconds"] = round(time.time() - started, 1)
    results = {"meta": meta, "figures": figures, "floor": details, "runs": runs}
    md = floor_markdown(meta, details)
    if write:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        args.out.with_suffix(".md").write_text(md)
        log(f"wrote {args.out} and {args.out.with_suffix('.md')}")
    print(md)


# --------------------------------------------------------------------------------------------------- main


def main() -> None:
    """Parse options, run every measurement, print the Markdown table, write the JSON and Markdown files."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=HERE / "results.json", help="results JSON (a .md is written beside)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 16 photos, fewer steps/iterations, no ONNX")
    ap.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS, help="folder of real photos (searched recursively)")
    ap.add_argument("--n-photos", type=int, help="photos to sample (default 64, quick 16)")
    ap.add_argument("--colorize-weights", type=Path, help="unet-colorize weights (default: random, written to a "
                                                          "temporary folder)")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1),
                    help="intra-op threads for every run (default: $OMP_NUM_THREADS, else the core count)")
    ap.add_argument("--matmul-size", type=int, help="side of the square matmul (default 4096, quick 2048)")
    ap.add_argument("--train-steps", type=int, help="timed training steps per precision (default 5, quick 2)")
    ap.add_argument("--no-onnx", action="store_true", help="skip the onnxruntime figure (skipped in --quick)")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile model-only variant (skipped "
                                                              "in --quick; compiling takes ~1 min)")
    ap.add_argument("--no-profile", action="store_true", help="skip the profile step")
    ap.add_argument("--profile-dir", type=Path, help="where profiles go (default: profile/ beside --out)")
    ap.add_argument("--floor-big", type=int, help="6000x4000 photos added to the floor figure's photo set (default 2, "
                                                  "quick 0)")
    ap.add_argument("--floor-models", nargs="+", choices=FLOOR_MODELS, default=list(FLOOR_MODELS), metavar="MODEL",
                    help="the models of the floor figure (default: all four: %(choices)s)")
    ap.add_argument("--only", choices=["colorize-memory", "floor"],
                    help="run one figure alone and print its rows (nothing is written unless --out is given "
                         "explicitly)")
    args = ap.parse_args()
    if args.only == "colorize-memory":
        return only_colorize_memory(args)
    if args.only == "floor":
        return only_floor(args)
    quick = args.quick
    n_photos = args.n_photos or (16 if quick else 64)
    threads = args.threads
    matmul_size = args.matmul_size or (2048 if quick else 4096)
    train_steps = args.train_steps or (2 if quick else 5)
    model_iters, model_warmup = (3, 1) if quick else (10, 2)
    profile_dir = args.profile_dir or args.out.parent / "profile"
    do_onnx = not (quick or args.no_onnx)
    do_compile = not (quick or args.no_compile)

    started = time.time()
    env = environment()
    meta = {"date": dt.datetime.now().isoformat(timespec="seconds"), "machine": env["machine"],
            "platform": env["platform"], "fast_bf16": env["fast_bf16"], "cpu": env["cpu"],
            "cpu_line": cpu_line(env, threads), "threads": threads, "quick": quick,
            "n_photos": n_photos,
            "photos": str(args.photos), "loadavg_start": os.getloadavg(), "batch": PREDICT_BATCH}
    runs: dict[str, dict] = {}
    figures: list[dict] = []

    def log(msg: str) -> None:
        print(f"[{time.time() - started:6.0f} s] {msg}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="unetcli-bench-") as tmp:
        tmp = Path(tmp)
        photos = tmp / "photos"
        meta["photo_sizes"] = stage_photos(select_photos(args.photos, n_photos), photos)
        weights = args.colorize_weights or random_colorize_weights(tmp)
        meta["colorize_weights"] = str(args.colorize_weights) if args.colorize_weights else "random (seed 0)"

        # -- 2. matmul peak (before and after the model runs; the higher counts) and model-only throughput
        log(f"matmul peak, {matmul_size}x{matmul_size}")
        mm = [part("matmul", threads, size=matmul_size)]
        runs["matmul peak (start)"] = _keep(mm[0], f"bf16 {mm[0]['result']['bf16']['gflops_best']:.0f} / fp32 "
                                                   f"{mm[0]['result']['fp32']['gflops_best']:.0f} GFLOP/s")
        model = {}
        for variant in ("bf16-cl", "fp32-cl", "fp32-nchw") + (("bf16-cl-compile",) if do_compile else ()):
            log(f"model-only unet-colorize {variant}")
            r = part("model", threads, variant=variant, weights=str(weights), photos=str(photos),
                     batch=PREDICT_BATCH, warmup=model_warmup, iters=model_iters)
            model[variant] = r["result"]
            runs[f"unet-colorize forward, {variant}, batch {PREDICT_BATCH}"] = _keep(
                r, f"{r['result']['img_s_best']:.1f} img/s, {r['result']['gflops_best']:.0f} GFLOP/s")
        if do_onnx:
            try:
                log("onnx export + onnxruntime")
                onnx = tmp / "unet-colorize.onnx"
                ex = run_child([sys.executable, "-m", "unetcli", "export", "unet-colorize", "--weights", str(weights),
                                "-o", str(onnx)], threads)
                if ex["rc"] != 0:
                    raise RuntimeError(ex["stderr_tail"])
                r = part("onnx", threads, onnx=str(onnx), photos=str(photos), batch=PREDICT_BATCH,
                         warmup=model_warmup, iters=model_iters)
                model["onnxruntime-fp32"] = r["result"]
                runs[f"unet-colorize forward, onnxruntime fp32, batch {PREDICT_BATCH}"] = _keep(
                    r, f"{r['result']['img_s_best']:.1f} img/s, {r['result']['gflops_best']:.0f} GFLOP/s")
            except Exception as exc:  # noqa: BLE001 - optional figure
                log(f"onnx skipped: {exc}")
        mm.append(part("matmul", threads, size=matmul_size))
        runs["matmul peak (end)"] = _keep(mm[1], f"bf16 {mm[1]['result']['bf16']['gflops_best']:.0f} / fp32 "
                                                 f"{mm[1]['result']['fp32']['gflops_best']:.0f} GFLOP/s")
        peak = {p: max(m["result"][p]["gflops_best"] for m in mm) for p in ("bf16", "fp32")}

        # -- 4. training bf16 vs fp32
        train = {}
        for precision in ("bf16", "fp32"):
            log(f"training unet-colorize {precision}, batch 16, {train_steps} steps")
            r = part("train", threads, precision=precision, weights=str(weights), photos=str(photos), batch=16,
                     size=128, warmup=1, steps=train_steps)
            train[precision] = r["result"]
            runs[f"unet-colorize training, {precision}, batch 16"] = _keep(r, f"{r['result']['img_s']:.2f} img/s")

        # -- 1 and 3. end-to-end colorize vs the naive loop and vs model-only; 5. gray models vs Pillow.
        # Each command runs on the whole folder and on its first photo alone: the difference of the two wall times
        # is the marginal cost of the other n - 1 photos, start-up (imports, weights) and the first batch excluded.
        one = tmp / "photos-1"
        one.mkdir()
        first = sorted(photos.iterdir())[0]
        shutil.copy2(first, one / first.name)

        def end_to_end(label: str, slug: str, run) -> dict:
            single = run(one, tmp / f"out-{slug}-1", 1)
            full = run(photos, tmp / f"out-{slug}", n_photos)
            delta = full["wall"] - single["wall"]
            full["marginal_img_s"] = (n_photos - 1) / delta if n_photos > 1 and delta > 0 else None
            rate = f"{n_photos / full['wall']:.2f} img/s; marginal {full['marginal_img_s'] or 0:.2f}"
            runs[label] = _keep(full, rate,
                                marginal_img_s=full["marginal_img_s"], one_photo_wall=round(single["wall"], 2),
                                line_steady_img_s=steady_rate(full["line_times"], PREDICT_BATCH))
            return full

        log("unetcli predict --model unet-colorize")
        e2e = end_to_end("unetcli predict --model unet-colorize", "colorize",
                         lambda folder, out, n: run_predict("unet-colorize", folder, out, threads, n, weights))
        log("naive notebook-style colorize loop")
        naive = end_to_end("naive loop, colorize (fp32 NCHW, one photo at a time)", "naive",
                           lambda folder, out, n: part("naive-colorize", threads, weights=str(weights),
                                                       photos=str(folder), out=str(out)))
        gray = {}
        for model_name in ("simple-black", "unet-decolorize"):
            if not env["shipped"].get(model_name):
                log(f"{model_name}: no shipped weights, skipped")
                continue
            log(f"unetcli predict --model {model_name}")
            gray[model_name] = end_to_end(
                f"unetcli predict --model {model_name}", model_name,
                lambda folder, out, n, m=model_name: run_predict(m, folder, out, threads, n))
        log("Pillow open + convert('L') + save")
        pil = end_to_end("Pillow open + convert('L') + PNG save", "pillow",
                         lambda folder, out, n: part("pillow-gray", threads, photos=str(folder), out=str(out)))

        # -- 8. end to end over the floor (model only + unavoidable I/O), the four models (issue 18)
        floor_big = args.floor_big if args.floor_big is not None else (0 if quick else 2)
        floor_meta = {"photo_sizes": stage_floor_photos(photos, tmp / "photos-floor", floor_big)}
        floor_meta["n_photos"] = sum(floor_meta["photo_sizes"].values())
        floor_meta["photo_sizes_note"] = (f"{n_photos} real, longest side <= 1024" + (
            f", + {floor_big} of {BIG_PHOTO[0]}x{BIG_PHOTO[1]} upscaled from real ones" if floor_big else ""))
        floor_figs, floor = floor_figures(tmp / "photos-floor", tmp, threads, env, runs, args.colorize_weights, quick,
                                          log, models=tuple(args.floor_models))

        # -- 7. colorize memory on 6000x4000 photos
        log("colorize memory, 6000x4000 photos")
        big_figures = colorize_memory(tmp, photos, threads, weights, runs)

        # -- profiles
        profiles = {}
        if not args.no_profile:
            profile_dir.mkdir(parents=True, exist_ok=True)
            log("profile: model forward (torch.profiler)")
            r = part("profile-forward", threads, weights=str(weights), photos=str(photos), batch=PREDICT_BATCH,
                     iters=2 if quick else 5, file=str(profile_dir / "forward_colorize_bf16.txt"))
            profiles["forward"] = r["result"]
            log("profile: in-process predict (torch.profiler)")
            r = part("profile-predict", threads, weights=str(weights), photos=str(photos),
                     out=str(tmp / "out-profile"), file=str(profile_dir / "predict_colorize_torch.txt"))
            profiles["predict_torch"] = r["result"]
            log("profile: unetcli predict under py-spy")
            profiles["predict_py_spy"] = profile_with_py_spy(photos, tmp / "out-pyspy", weights, threads, profile_dir)

    # -- figures
    bf16 = model["bf16-cl"]
    figures.append(figure("1", "colorize: `unetcli predict` vs naive notebook loop (whole-command wall time)",
                          naive["wall"] / e2e["wall"], 5.0, "x",
                          f"{n_photos} photos: {e2e['wall']:.1f} vs {naive['wall']:.1f} s; marginal (start-up "
                          f"excluded) {ratio(e2e['marginal_img_s'], naive['marginal_img_s'])}"))
    figures.append(figure("2", "colorize forward bf16+channels_last, share of bf16 matmul peak",
                          bf16["gflops_best"] / peak["bf16"], 0.5, "%",
                          f"{bf16['gflops_best']:.0f} of {peak['bf16']:.0f} GFLOP/s; "
                          f"{2 * bf16['macs_per_image'] / 1e9:.2f} GFLOP/img (2 x torchinfo MACs), batch "
                          f"{PREDICT_BATCH} at 128x128"))
    if "bf16-cl-compile" in model:
        c = model["bf16-cl-compile"]
        figures.append(figure("2", "colorize forward bf16+channels_last under torch.compile (`predict --compile`), "
                                   "share of bf16 matmul peak", c["gflops_best"] / peak["bf16"], None, "%",
                              f"{c['gflops_best']:.0f} GFLOP/s, {c['img_s_best'] / bf16['img_s_best']:.2f}x eager; "
                              f"compiling took {c['compile_seconds']:.0f} s"))
    for variant in ("fp32-cl", "fp32-nchw", "onnxruntime-fp32"):
        if variant in model:
            figures.append(figure("2", f"colorize forward {variant}, share of fp32 matmul peak",
                                  model[variant]["gflops_best"] / peak["fp32"], None, "%",
                                  f"{model[variant]['gflops_best']:.0f} of {peak['fp32']:.0f} GFLOP/s; "
                                  f"bf16 is {bf16['img_s_best'] / model[variant]['img_s_best']:.1f}x faster"))
    figures.append(figure("3", "colorize end-to-end (marginal, start-up excluded) vs model-only bf16 images/s",
                          (e2e["marginal_img_s"] / bf16["img_s_best"]) if e2e["marginal_img_s"] else None, 0.85, "%",
                          f"{e2e['marginal_img_s'] or 0:.2f} vs {bf16['img_s_best']:.1f} img/s; whole command "
                          f"{n_photos / e2e['wall']:.2f} img/s"))
    figures.append(figure("4", "training images/s, bf16 vs fp32 (unet-colorize, batch 16, 128x128)",
                          train["bf16"]["img_s"] / train["fp32"]["img_s"], 3.0, "x",
                          f"{train['bf16']['img_s']:.2f} vs {train['fp32']['img_s']:.2f} img/s, "
                          f"{train_steps} steps after 1 warm-up"))
    for model_name, r in gray.items():
        figures.append(figure("5", f"{model_name}: `unetcli predict` vs Pillow open+convert('L')+save "
                                   "(whole-command wall time)", pil["wall"] / r["wall"], 0.5, "x",
                              f"{r['wall']:.1f} s vs {pil['wall']:.1f} s for {n_photos} photos; marginal (start-up "
                              f"excluded) {ratio(r['marginal_img_s'], pil['marginal_img_s'])}"))
    figures += big_figures
    figures += floor_figs
    meta["loadavg_end"] = os.getloadavg()
    meta["seconds"] = round(time.time() - started, 1)
    meta["floor_photos"] = floor_meta
    results = {"meta": meta, "figures": figures, "runs": runs, "model_only": model, "matmul": [m["result"] for m in mm],
               "training": train, "profiles": profiles, "floor": floor}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    md = markdown(results)
    args.out.with_suffix(".md").write_text(md)
    print(md)
    log(f"wrote {args.out} and {args.out.with_suffix('.md')}"
        + ("" if args.no_profile else f"; profiles in {profile_dir}"))


def only_colorize_memory(args) -> None:
    """``--only colorize-memory``: figure 7 alone, on the first of ``--photos``'s seeded sample."""
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="unetcli-bench-") as tmp:
        tmp = Path(tmp)
        photos = tmp / "photos"
        stage_photos(select_photos(args.photos, 1), photos)
        weights = args.colorize_weights or random_colorize_weights(tmp)
        runs: dict[str, dict] = {}
        figures = colorize_memory(tmp, photos, args.threads, weights, runs)
    env = environment()
    results = {"meta": {"date": dt.datetime.now().isoformat(timespec="seconds"), "machine": env["machine"],
                        "threads": args.threads, "seconds": round(time.time() - started, 1),
                        "colorize_weights": str(args.colorize_weights or "random (seed 0)")},
               "figures": figures, "runs": runs}
    if "--out" in sys.argv:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
