"""Prediction: DataLoader -> same-size batches -> model -> task post-processing -> atomic writer.

Decoding and preparing run in DataLoader worker processes while the model runs; post-processing and encoding
run in a writer thread. Images are grouped into batches by their input shape. Every output is written to a
temporary name and renamed, so an interrupted run leaves complete files only, and a rerun skips them.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from unetcli.data import PredictDataset, keep_sample
from unetcli.devices import autocast, precision_name, resolve_precision, select_device
from unetcli.engine.backends import is_exported, load_backend
from unetcli.errors import UsageError
from unetcli.imageio import collect_inputs, fit_for_format, image_format_for, save_atomic
from unetcli.models.registry import get_spec
from unetcli.tasks import make_task


@dataclass
class PredictOptions:
    """What ``unetcli predict`` was asked to do (see ``unetcli predict --help`` for each option)."""

    model: str
    source: str
    output: Path
    weights: str | None = None
    device: str = "auto"
    precision: str = "auto"
    batch_size: int = 8
    workers: int = 2
    size: int | None = None
    ext: str = ".png"
    recursive: bool = False
    overwrite: bool = False
    threshold: float = 0.5


@dataclass
class FileResult:
    """The outcome for one input file: status ``done``, ``skipped`` or ``failed``."""

    input: str
    output: str
    status: str
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class PredictSummary:
    """Counts for the final line, plus how the run was set up."""

    done: int = 0
    skipped: int = 0
    failed: int = 0
    device: str = ""
    precision: str = ""
    interrupted: bool = False


def plan_outputs(items: list[tuple[Path, Path]], out_dir: Path, ext: str) -> list[tuple[Path, Path]]:
    """(input file, relative path) -> (input file, output file) mirroring the relative path, suffix ``ext``.

    Two inputs that would map to the same output (``a.jpg`` and ``a.png``) keep their input suffix in the
    name (``a_jpg.png``, ``a_png.png``) instead of overwriting each other.
    """
    ext = ext if ext.startswith(".") else "." + ext
    targets = [out_dir / rel.with_suffix(ext) for _, rel in items]
    counts: dict[Path, int] = defaultdict(int)
    for t in targets:
        counts[t] += 1
    plan = []
    for (src, rel), target in zip(items, targets):
        if counts[target] > 1:
            target = out_dir / rel.with_name(f"{rel.stem}_{rel.suffix.lstrip('.').lower()}{ext}")
        plan.append((src, target))
    return plan


def check_writable(out_dir: Path) -> None:
    """Create ``out_dir`` and prove a file can be written there, before any work.

    Raises:
        UsageError: the folder cannot be created or written to.
    """
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".unetcli-write-test.{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"output folder {out_dir} is not writable ({exc.strerror or exc})") from exc


def predict(opts: PredictOptions, on_result: Callable[[FileResult], None] | None = None,
            show_progress: bool | None = None) -> PredictSummary:
    """Run a registry model over a file, folder or glob and write one output per input.

    Args:
        opts: the run's options.
        on_result: called once per input file with its :class:`FileResult` (failures, notes, timings).
        show_progress: force the progress bar on/off; None shows it only when stderr is a terminal.

    Returns:
        The counts. Failed files do not raise; set-up problems do.

    Raises:
        UsageError / WeightsError: bad option, no inputs, output folder not writable, missing weights,
            unavailable device; raised before any file is processed.
    """
    spec = get_spec(opts.model)
    fmt = image_format_for(opts.ext)
    if opts.batch_size < 1:
        raise UsageError(f"--batch-size {opts.batch_size}: must be at least 1")
    device = select_device(opts.device)
    dtype = resolve_precision(opts.precision, device, auto_ok=spec.bf16_faithful and not is_exported(opts.weights))
    task = make_task(spec, **({"size": opts.size} | ({"threshold": opts.threshold} if spec.task == "segment" else {})))
    plan = plan_outputs(collect_inputs(opts.source, opts.recursive), Path(opts.output), opts.ext)
    check_writable(Path(opts.output))
    model = load_backend(spec, opts.weights, device, dtype)  # PyTorch weights, or an .onnx / TorchScript export

    summary = PredictSummary(device=str(device), precision=precision_name(dtype))
    report = on_result or (lambda r: None)
    todo = []
    for src, dst in plan:
        if dst.exists() and not opts.overwrite:
            summary.skipped += 1
            report(FileResult(str(src), str(dst), "skipped", notes=["output exists (use --overwrite)"]))
        else:
            todo.append((src, dst))
    if not todo:
        return summary

    loader = DataLoader(PredictDataset([s for s, _ in todo], task), batch_size=None, collate_fn=keep_sample,
                        num_workers=max(0, opts.workers), pin_memory=device.type == "cuda")
    started = {i: 0.0 for i in range(len(todo))}
    pending: list[tuple[Future, int, list[str]]] = []
    buckets: dict[tuple, list[dict]] = defaultdict(list)
    bar = tqdm(total=len(todo), unit="img", disable=(not show_progress) if show_progress is not None else None,
               dynamic_ncols=True, leave=False)

    def settle(block_until: int) -> None:
        """Collect finished writes; wait for the oldest until at most ``block_until`` are in flight."""
        while pending and (len(pending) > block_until or pending[0][0].done()):
            future, i, notes = pending.pop(0)
            src, dst = todo[i]
            try:
                notes = notes + future.result()
                summary.done += 1
                report(FileResult(str(src), str(dst), "done", notes=notes, seconds=time.perf_counter() - started[i]))
            except Exception as exc:  # noqa: BLE001 - reported per file, the batch goes on
                summary.failed += 1
                report(FileResult(str(src), str(dst), "failed", error=f"could not write output ({exc})",
                                  seconds=time.perf_counter() - started[i]))
            bar.update(1)

    def finish_and_write(output: torch.Tensor, ctx: dict, dst: Path) -> list[str]:
        image, notes = fit_for_format(task.finish(output, ctx), fmt)
        save_atomic(image, dst, fmt)
        return notes

    divisor = getattr(spec.factory, "size_divisor", 16)

    def padded_shape(x: torch.Tensor) -> tuple[int, int, int]:
        c, h, w = x.shape
        return c, h + (-h) % divisor, w + (-w) % divisor

    def run_batch(samples: list[dict]) -> None:
        # Images of different sizes with the same padded size share a batch: each is padded here exactly as the
        # model would pad it alone (edge replication at the bottom/right), and its output is cropped back.
        _, hp, wp = padded_shape(samples[0]["input"])
        x = torch.stack([F.pad(s["input"][None], (0, wp - s["input"].shape[2], 0, hp - s["input"].shape[1]),
                               mode="replicate")[0] for s in samples])
        x = x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), autocast(device, dtype):
            y = model(x)
        y = y.float().cpu()
        for s, out in zip(samples, y):
            out = out[:, : s["input"].shape[1], : s["input"].shape[2]]
            pending.append((writer.submit(finish_and_write, out, s["ctx"], todo[s["index"]][1]), s["index"],
                            s["notes"]))
        settle(block_until=2 * opts.batch_size)

    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="unetcli-writer")
    try:
        for sample in loader:
            i = sample["index"]
            started[i] = time.perf_counter()
            if sample["error"] is not None:
                summary.failed += 1
                report(FileResult(str(todo[i][0]), str(todo[i][1]), "failed", error=sample["error"]))
                bar.update(1)
                continue
            key = padded_shape(sample["input"])
            buckets[key].append(sample)
            if len(buckets[key]) >= opts.batch_size:
                run_batch(buckets.pop(key))
            elif sum(len(b) for b in buckets.values()) >= 2 * opts.batch_size:
                # Many different sizes: run the fullest bucket so memory stays bounded.
                run_batch(buckets.pop(max(buckets, key=lambda k: len(buckets[k]))))
        for key in list(buckets):
            run_batch(buckets.pop(key))
        settle(block_until=0)
    except KeyboardInterrupt:
        summary.interrupted = True
        # Files already handed to the writer are finished (each is complete or absent); the rest is dropped.
        settle(block_until=0)
    finally:
        writer.shutdown(wait=True)
        bar.close()
    return summary
