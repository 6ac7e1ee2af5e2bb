"""The in-process measurements of the benchmark suite, one per child process (driven by ``run_all.py``).

``run_all.py`` runs each part as ``python benchmarks/suite_parts.py PART --args JSON`` so that every figure gets
its own process: its own peak RSS (``os.wait4``'s ``ru_maxrss``), the same thread count (``OMP_NUM_THREADS`` and
``torch.set_num_threads``) and no state left over from another part. A part prints ``RESULT <json>`` as its last
line; the per-image loops (``naive-colorize``, ``pillow-gray``) also print one flushed line per finished image,
which the parent time-stamps the way it time-stamps ``unetcli predict --json`` lines.

Parts:

* ``matmul``: torch.matmul of square matrices (bf16 and fp32): the machine's peak GFLOP/s at this thread count;
  the only synthetic data of the suite.
* ``model``: unet-colorize forward only, batch of real photos prepared by the task, one ``variant``
  (``bf16-cl``: bf16 autocast + channels_last as ``predict`` runs it, ``fp32-cl``, ``fp32-nchw``, and
  ``bf16-cl-compile``: the same under ``torch.compile`` with frozen weights, as ``predict --compile`` runs it).
* ``onnx``: the same batch through onnxruntime (fp32) on a ``unetcli export`` file.
* ``train``: unet-colorize training steps (Adam, the task's loss, channels_last, ``unetcli.devices.autocast``)
  on a batch of real-photo crops made by ``unetcli.data.PhotoCrops``, bf16 or fp32.
* ``naive-colorize``: the notebook-style baseline: per photo, PIL open, to tensor, the task's ``prepare``, one
  fp32 NCHW model call, the task's ``finish``, PNG save; no DataLoader, no batching, no threads.
* ``pillow-gray``: per photo, Pillow open + ``convert("L")`` + PNG save (the floor for colour -> gray).
* ``floor-model`` / ``floor-io`` (issue 18, the floor): model-only seconds of any registry model through the real
  ``Predictor`` at the sizes predict runs (working size, or full size on 512-px tiles), and the unavoidable I/O
  (Pillow decode of each input, PNG encode of each output at predict's settings).
* ``profile-forward`` / ``profile-predict``: ``torch.profiler`` tables of the model forward and of a whole
  ``unetcli.engine.predict.predict`` run of unet-colorize, written to a file.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def set_threads(threads: int) -> None:
    """Use ``threads`` intra-op threads in torch (the parent also sets ``OMP_NUM_THREADS`` for the child)."""
    import torch

    torch.set_num_threads(threads)


def emit(result: dict) -> None:
    """Print the part's result as the last stdout line, ``RESULT <json>``."""
    print("RESULT " + json.dumps(result), flush=True)


def timed_loop(fn, warmup: int, iters: int, min_seconds: float = 0.0) -> list[float]:
    """Call ``fn`` ``warmup`` times untimed, then at least ``iters`` times (and ``min_seconds`` in all) timed.

    Returns the seconds of each timed call.
    """
    for _ in range(warmup):
        fn()
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < iters or time.perf_counter() - started < min_seconds:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def photo_paths(folder: str) -> list[Path]:
    """The photos of the benchmark folder (flat, sorted)."""
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


def colorize_batch(folder: str, batch: int):
    """(batch, 1, size, size) float32: the first ``batch`` real photos of ``folder`` prepared by ColorizeTask."""
    import torch

    from unetcli.imageio import read_photo
    from unetcli.models.registry import get_spec
    from unetcli.tasks import make_task

    task = make_task(get_spec("unet-colorize"))
    paths = photo_paths(folder)
    paths = (paths * (batch // max(len(paths), 1) + 1))[:batch]
    return torch.stack([task.prepare(read_photo(p))[0] for p in paths])


def colorize_macs(size: int) -> int:
    """Multiply-accumulates of unet-colorize for one (1, size, size) image, as torchinfo counts them."""
    from torchinfo import summary

    from unetcli.models.registry import get_spec

    spec = get_spec("unet-colorize")
    stats = summary(spec.factory(), input_size=(1, spec.in_channels, size, size), device="meta", verbose=0)
    return int(stats.total_mult_adds)


def part_matmul(a: dict) -> dict:
    """GFLOP/s of ``torch.matmul`` of two n x n matrices, bf16 and fp32 (best of the timed calls)."""
    import torch

    torch.manual_seed(0)
    n = a["size"]
    out = {"size": n}
    for name, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        x, y = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        times = timed_loop(lambda: torch.matmul(x, y), warmup=1, iters=3, min_seconds=a.get("min_seconds", 2.0))
        out[name] = {"gflops_best": 2 * n**3 / min(times) / 1e9, "gflops_median": 2 * n**3 / statistics.median(times)
                     / 1e9, "calls": len(times)}
    return out


def _load_colorize(weights: str, dtype=None):
    """unet-colorize with ``weights`` as ``predict`` runs it (``load_backend``: eval, BatchNorm folded, weights in
    ``dtype`` under autocast, channels_last), CPU."""
    import torch

    from unetcli.engine.backends import load_backend
    from unetcli.models.registry import get_spec

    return load_backend(get_spec("unet-colorize"), weights, torch.device("cpu"), dtype)


def part_model(a: dict) -> dict:
    """unet-colorize forward-only images/s and GFLOP/s for one precision/layout variant."""
    import torch

    from unetcli.devices import autocast

    variant = a["variant"]
    dtype = torch.bfloat16 if variant.startswith("bf16") else None
    model = _load_colorize(a["weights"], dtype)
    x = colorize_batch(a["photos"], a["batch"])
    if variant.endswith("nchw"):
        model = model.to(memory_format=torch.contiguous_format)
        x = x.contiguous()
    else:
        x = x.contiguous(memory_format=torch.channels_last)
    device = torch.device("cpu")
    compile_seconds = None
    if variant.endswith("compile"):
        # `predict --compile`: torch.compile (Inductor) with weights frozen as constants, which fuses the
        # element-wise ops around the convs. Compiled on the first call.
        from unetcli.engine.predictor import compile_for_inference

        model = compile_for_inference(model)
        t0 = time.perf_counter()
        with torch.inference_mode(), autocast(device, dtype):
            model(x)
        compile_seconds = time.perf_counter() - t0

    def step():
        with torch.inference_mode(), autocast(device, dtype):
            return model(x).float()  # as predict's forward: fp32 out of the model

    times = timed_loop(step, warmup=a["warmup"], iters=a["iters"])
    macs = colorize_macs(x.shape[-1])
    best, med = min(times), statistics.median(times)
    return {"variant": variant, "batch": len(x), "size": x.shape[-1], "macs_per_image": macs,
            "compile_seconds": compile_seconds,
            "img_s_best": len(x) / best, "img_s_median": len(x) / med,
            "gflops_best": 2 * macs * len(x) / best / 1e9, "gflops_median": 2 * macs * len(x) / med / 1e9,
            "calls": len(times)}


def part_onnx(a: dict) -> dict:
    """onnxruntime (CPU, fp32) images/s on a ``unetcli export`` ONNX file of unet-colorize."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = a["threads"]
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(a["onnx"], opts, providers=["CPUExecutionProvider"])
    x = colorize_batch(a["photos"], a["batch"]).numpy()
    name = session.get_inputs()[0].name
    times = timed_loop(lambda: session.run(None, {name: x}), warmup=a["warmup"], iters=a["iters"])
    macs = colorize_macs(x.shape[-1])
    best, med = min(times), statistics.median(times)
    return {"variant": "onnxruntime-fp32", "batch": len(x), "onnxruntime": ort.__version__,
            "img_s_best": len(x) / best, "img_s_median": len(x) / med,
            "gflops_best": 2 * macs * len(x) / best / 1e9, "gflops_median": 2 * macs * len(x) / med / 1e9,
            "calls": len(times)}


def part_train(a: dict) -> dict:
    """unet-colorize training images/s: warm-up steps, then timed steps, as ``unetcli train`` runs a step."""
    import numpy as np
    import torch

    from unetcli.data import PhotoCrops
    from unetcli.devices import autocast
    from unetcli.imageio import read_photo, to_uint8
    from unetcli.models.registry import get_spec
    from unetcli.tasks import make_task
    from unetcli.weights import load_into, load_state

    spec = get_spec("unet-colorize")
    task = make_task(spec)
    size, batch = a["size"], a["batch"]
    photos = [to_uint8(read_photo(p).rgb) for p in photo_paths(a["photos"])[:batch]]
    crops = PhotoCrops(photos, task, size, train=True, full_resolution=spec.full_resolution, seed=0,
                       crops_per_photo=max(1, -(-batch // len(photos))))
    pairs = [crops[i] for i in range(batch)]
    x = torch.stack([p[0] for p in pairs]).contiguous(memory_format=torch.channels_last)
    y = torch.stack([p[1] for p in pairs])
    torch.manual_seed(0)
    model = spec.factory()
    state, _ = load_state(Path(a["weights"]), spec)
    load_into(model, state, Path(a["weights"]), spec)
    device = torch.device("cpu")
    model = model.to(device=device, memory_format=torch.channels_last).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=spec.lr)
    dtype = torch.bfloat16 if a["precision"] == "bf16" else None
    losses = []

    def step():
        with autocast(device, dtype):
            out = model(x)
        loss = task.loss(out, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))

    times = timed_loop(step, warmup=a["warmup"], iters=a["steps"])
    return {"precision": a["precision"], "batch": batch, "size": size, "steps": len(times),
            "img_s": batch * len(times) / sum(times), "img_s_best": batch / min(times),
            "step_seconds": times, "losses": [round(v, 5) for v in losses], "finite": bool(np.isfinite(losses).all())}


def part_naive_colorize(a: dict) -> dict:
    """Notebook-style colorize loop over the photo folder (one flushed line per photo written)."""
    import numpy as np
    import torch
    from PIL import Image

    from unetcli.engine.model import load_model
    from unetcli.imageio import Photo
    from unetcli.models.registry import get_spec
    from unetcli.tasks import make_task

    started = time.perf_counter()
    task = make_task(get_spec("unet-colorize"))
    # plain NCHW fp32, loaded as a notebook would (no BatchNorm folding, no bf16 weights)
    model = load_model(get_spec("unet-colorize"), a["weights"])[0].to(memory_format=torch.contiguous_format)
    out_dir = Path(a["out"])
    out_dir.mkdir(parents=True, exist_ok=True)
    loop_started = time.perf_counter()
    n = 0
    for path in photo_paths(a["photos"]):
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
        x, ctx = task.prepare(Photo(rgb=rgb, alpha=None, mode="RGB", is_gray=False))
        with torch.no_grad():
            y = model(x[None])[0]
        task.finish(y, ctx).save(out_dir / (path.stem + ".png"))
        n += 1
        print(json.dumps({"done": path.name}), flush=True)
    return {"images": n, "setup_seconds": loop_started - started, "loop_seconds": time.perf_counter() - loop_started}


def part_pillow_gray(a: dict) -> dict:
    """Pillow-only colour -> gray: open, ``convert("L")``, PNG save per photo (one flushed line per photo)."""
    from PIL import Image

    out_dir = Path(a["out"])
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    n = 0
    for path in photo_paths(a["photos"]):
        with Image.open(path) as im:
            im.convert("L").save(out_dir / (path.stem + ".png"))
        n += 1
        print(json.dumps({"done": path.name}), flush=True)
    return {"images": n, "loop_seconds": time.perf_counter() - started}


def part_floor_model(a: dict) -> dict:
    """Model-only seconds of one registry model on the photos ``predict`` would give it (issue 18's floor).

    The real :class:`unetcli.engine.predictor.Predictor` as ``predict`` configures it by default (``precision
    auto``, ``tile`` 512, batch 8, CPU), on every photo of the folder but the first (``skip`` photos are left out:
    the end-to-end figure is marginal over the same photos). Decoding (``read_photo``) and the task's ``prepare``
    run before the clock starts; then :meth:`Predictor.run_inputs` (same-padded-shape batches of ``batch``, photos
    above ``tile`` on overlapping tiles) runs ``warmup`` untimed passes and ``iters`` timed ones. The figure is the
    time spent inside :meth:`Predictor.forward` (the network calls: channels_last copy, autocast, fp32 out) in the
    best pass; the wall time of the whole pass (which adds batch padding, cutting tiles and blending them) is
    reported beside it.

    A ``warmup`` pass runs one photo of each padded shape that is not tiled, alone, and the tiles of a 1024 x 1024
    crop of the first tiled photo (a whole pass over two 6000 x 4000 photos costs minutes on one core for
    unet-decolorize). Measured on 63 photos of 13 padded shapes, unet-decolorize bf16, one thread: a cold pass
    took 21.3 s of forward, a second one 21.5 s, so oneDNN's per-shape set-up is not what the floor hinges on.
    """
    import torch

    from unetcli.engine.predictor import Predictor
    from unetcli.imageio import read_photo

    pred = Predictor.configure(a["model"], weights=a.get("weights"), device="cpu", precision="auto",
                               tile=a.get("tile", 512), batch_size=a.get("batch", 8)).load()
    paths = photo_paths(a["photos"])[a.get("skip", 1):]
    inputs = [pred.task.prepare(read_photo(p))[0] for p in paths]  # contexts (full-size gray ...) dropped
    forward = pred.forward
    spent = [0.0]

    def timed_forward(x: torch.Tensor) -> torch.Tensor:
        t0 = time.perf_counter()
        try:
            return forward(x)
        finally:
            spent[0] += time.perf_counter() - t0

    pred.forward = timed_forward  # forward_same_padded and forward_tiled look it up on the instance
    tiled = [x for x in inputs if pred.needs_tiling(x)]
    for _ in range(a.get("warmup", 1)):
        one_per_shape = {pred.padded_shape(x): x for x in inputs if not pred.needs_tiling(x)}
        pred.run_inputs(list(one_per_shape.values()))
        if tiled:
            pred.forward_tiled(tiled[0][:, :1024, :1024].contiguous(), max(pred.tile, 16), pred.batch_size)
    passes = []
    for _ in range(a.get("iters", 1)):
        spent[0] = 0.0
        t0 = time.perf_counter()
        pred.run_inputs(inputs)
        passes.append({"forward_s": spent[0], "pass_s": time.perf_counter() - t0})
    best = min(passes, key=lambda p: p["forward_s"])
    shapes = {tuple(pred.padded_shape(x)) for x in inputs if not pred.needs_tiling(x)}
    return {"model": pred.spec.name, "precision": pred.precision, "tile": pred.tile, "batch": pred.batch_size,
            "threads": torch.get_num_threads(), "images": len(inputs), "tiled_images": len(tiled),
            "padded_shapes": len(shapes), "input_shapes": sorted({tuple(x.shape) for x in inputs})[:3],
            "forward_s": best["forward_s"], "pass_s": best["pass_s"], "passes": passes,
            "img_s": len(inputs) / best["forward_s"] if best["forward_s"] > 0 else None}


def part_floor_io(a: dict) -> dict:
    """The I/O no ``predict`` run can avoid, per photo: Pillow decode of the input at full size (``Image.open`` +
    ``load``) and encode of the output ``predict`` wrote for it (re-read from ``out``, untimed), at full size, in
    predict's default format and settings (PNG with :data:`unetcli.files.SAVE_OPTIONS`, to a file in ``tmp``).

    Every photo of the folder but the first ``skip``; ``iters`` passes, the best total counts. Output files are
    found by predict's naming for a folder (input stem + ``.png``; ``stem_ext.png`` where two inputs share a stem).
    """
    from PIL import Image

    from unetcli.files import SAVE_OPTIONS

    paths = photo_paths(a["photos"])[a.get("skip", 1):]
    out, tmp = Path(a["out"]), Path(a["tmp"])
    tmp.mkdir(parents=True, exist_ok=True)
    outputs = []
    for p in paths:
        found = [out / f"{p.stem}.png", out / f"{p.stem}_{p.suffix.lstrip('.').lower()}.png"]
        src = next((f for f in found if f.is_file()), None)
        if src is None:
            raise SystemExit(f"no output of {p.name} in {out}")
        with Image.open(src) as im:
            im.load()
            outputs.append(im.copy())
    options = SAVE_OPTIONS.get("PNG", {})
    passes = []
    for _ in range(a.get("iters", 2)):
        decode = encode = 0.0
        for p, im in zip(paths, outputs):
            t0 = time.perf_counter()
            with Image.open(p) as src:
                src.load()
            t1 = time.perf_counter()
            im.save(tmp / "out.png", format="PNG", **options)
            encode += time.perf_counter() - t1
            decode += t1 - t0
        passes.append({"decode_s": decode, "encode_s": encode})
    best = min(passes, key=lambda p: p["decode_s"] + p["encode_s"])
    return {"images": len(paths), "output_modes": sorted({im.mode for im in outputs}), "png_options": options,
            "decode_s": best["decode_s"], "encode_s": best["encode_s"], "passes": passes}


def _profile_table(prof, path: Path, title: str, rows: int) -> list[dict]:
    """Write the profiler's top ops (by self CPU time) to ``path``; return them as dicts."""
    events = prof.key_averages()
    table = events.table(sort_by="self_cpu_time_total", row_limit=rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{title}\n\n{table}\n")
    total = sum(e.self_cpu_time_total for e in events) or 1
    top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:rows]
    return [{"op": e.key, "calls": e.count, "self_cpu_ms": round(e.self_cpu_time_total / 1000, 2),
             "self_cpu_pct": round(100 * e.self_cpu_time_total / total, 1)} for e in top]


def part_profile_forward(a: dict) -> dict:
    """torch.profiler over unet-colorize forwards (bf16 autocast, channels_last), top ops to a file."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from unetcli.devices import autocast

    dtype = torch.bfloat16 if a.get("precision", "bf16") == "bf16" else None
    model = _load_colorize(a["weights"], dtype)
    x = colorize_batch(a["photos"], a["batch"]).contiguous(memory_format=torch.channels_last)
    device = torch.device("cpu")

    def step():
        with torch.inference_mode(), autocast(device, dtype):
            return model(x).float()

    step()
    with profile(activities=[ProfilerActivity.CPU], record_shapes=False) as prof:
        for _ in range(a["iters"]):
            step()
    title = (f"torch.profiler: unet-colorize forward x {a['iters']}, batch {len(x)} x 1 x {x.shape[-1]} x "
             f"{x.shape[-1]}, {a.get('precision', 'bf16')} autocast, channels_last, {torch.get_num_threads()} "
             f"thread(s); sorted by self CPU time")
    return {"file": a["file"], "top": _profile_table(prof, Path(a["file"]), title, a.get("rows", 25))}


def part_profile_predict(a: dict) -> dict:
    """torch.profiler over a whole in-process ``predict`` of unet-colorize (default options), top ops to a file.

    Only the main process is seen (DataLoader workers are other processes), and only torch ops: the task's
    NumPy / scikit-image post-processing in the writer thread shows as time outside any op (see the py-spy
    profile for that part).
    """
    import torch
    from torch.profiler import ProfilerActivity, profile

    from unetcli.engine.predict import PredictOptions, predict

    opts = PredictOptions(model="unet-colorize", source=a["photos"], output=Path(a["out"]), weights=a["weights"])
    t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        summary = predict(opts, show_progress=False)
    wall = time.perf_counter() - t0
    title = (f"torch.profiler: in-process unetcli.engine.predict.predict of unet-colorize on {summary.done} photos "
             f"({summary.precision}, default options), {torch.get_num_threads()} thread(s), wall {wall:.1f} s; "
             f"main process only, torch ops only; sorted by self CPU time")
    top = _profile_table(prof, Path(a["file"]), title, a.get("rows", 25))
    return {"file": a["file"], "wall_seconds": wall, "done": summary.done, "top": top}


PARTS = {
    "matmul": part_matmul,
    "model": part_model,
    "onnx": part_onnx,
    "train": part_train,
    "naive-colorize": part_naive_colorize,
    "pillow-gray": part_pillow_gray,
    "floor-model": part_floor_model,
    "floor-io": part_floor_io,
    "profile-forward": part_profile_forward,
    "profile-predict": part_profile_predict,
}

#: Parts that do not need torch (so they do not pay for importing it).
NO_TORCH = {"pillow-gray", "floor-io"}


def main() -> None:
    """``python benchmarks/suite_parts.py PART --args JSON``: run one part, print ``RESULT <json>``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("part", choices=sorted(PARTS))
    ap.add_argument("--args", default="{}", help="the part's arguments as a JSON object")
    args = ap.parse_args()
    a = json.loads(args.args)
    if args.part not in NO_TORCH:
        set_threads(int(a.get("threads", 1)))
    sys.path.insert(0, str(ROOT))
    emit(PARTS[args.part](a))


if __name__ == "__main__":
    main()
