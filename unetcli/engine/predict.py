"""The batch runner of ``unetcli predict``: files -> DataLoader -> :class:`~unetcli.engine.predictor.Predictor`
(same-size batches, or tiles) -> task post-processing -> atomic writer; fail-fast, report, interrupts.

Decoding and preparing run in DataLoader worker processes while the model runs; post-processing and encoding
run in writer threads (:data:`WRITER_THREADS`). Images are grouped into batches by their input shape.
Full-resolution models run photos larger than ``tile`` on overlapping tiles (:mod:`unetcli.engine.tiling`), so
memory does not grow with the photo. Every output is written to a temporary name and renamed, so an interrupted
(even ``kill -9``-ed) run leaves complete files only, and a rerun skips them and removes the killed run's
temporary files.
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
from tqdm import tqdm

from unetcli.data import Loader, PredictDataset, keep_sample
from unetcli.engine.predictor import Predictor
from unetcli.errors import UsageError
from unetcli.imageio import (ALPHA_FORMATS, collect_inputs, collect_listed, fit_for_format, image_format_for,
                             remove_stale_temporaries, save_atomic)
from unetcli.models.registry import get_spec
from unetcli.tasks import task_class


#: Threads that post-process and encode outputs while the model runs.
WRITER_THREADS = 2


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
    #: unet-seg: ``mask``, ``overlay`` or ``cutout``; ``palette`` writes masks as palette PNGs.
    output_type: str = "mask"
    palette: bool = False
    #: Paths read from ``--files-from`` (then ``source`` is the folder the outputs mirror them relative to).
    files_from: list[str] | None = None
    #: ``(K, N)`` for ``--shard K/N``: this run takes every N-th file of the sorted list, from the K-th (1-based).
    shard: tuple[int, int] | None = None
    #: Stop at the first failed file (files before it are finished, later ones are not started).
    fail_fast: bool = False
    #: Tile side for full-resolution models (a multiple of 16; 0: never tile).
    tile: int = 512
    #: Compile the PyTorch model with ``torch.compile`` (Inductor, weights frozen) before the first batch.
    compile: bool = False


@dataclass
class FileResult:
    """The outcome for one input file: status ``done``, ``skipped`` or ``failed``.

    ``seconds`` is the wall time spent on the file: decoding and preparing, plus the time from its decoded image
    reaching the model to its output being written (files in flight together overlap in time).
    """

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
    #: ``--fail-fast`` stopped the run after a failure.
    stopped: bool = False
    #: Files of this run (shard) that were neither done nor failed because the run was interrupted or stopped.
    not_started: int = 0


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


def take_shard(plan: list, shard: tuple[int, int] | None) -> list:
    """The part of the sorted ``plan`` that shard ``K/N`` processes: items K-1, K-1+N, K-1+2N ... (round robin).

    Every item belongs to exactly one of the N shards, and the split depends only on the sorted list, so N
    machines given the same inputs and ``--shard 1/N`` ... ``--shard N/N`` cover every file exactly once.
    Round robin rather than contiguous blocks spreads each folder (often photos of one size) over all shards.

    Raises:
        UsageError: not ``1 <= K <= N``.
    """
    if shard is None:
        return plan
    k, n = shard
    if not 1 <= k <= n:
        raise UsageError(f"--shard {k}/{n}: expected K/N with 1 <= K <= N, e.g. 1/4 ... 4/4")
    return plan[k - 1::n]


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
        KeyboardInterrupt: only while setting up; once files are processed an interrupt returns a summary
            with ``interrupted`` set (files in flight finished, nothing half-written left).
    """
    get_spec(opts.model)  # an unknown model is the first error
    fmt = image_format_for(opts.ext)
    if opts.batch_size < 1:
        raise UsageError(f"--batch-size {opts.batch_size}: must be at least 1")
    predictor = Predictor.configure(opts.model, weights=opts.weights, device=opts.device, precision=opts.precision,
                                    tile=opts.tile, size=opts.size, compile=opts.compile, batch_size=opts.batch_size,
                                    **task_options(opts))
    renderer = predictor.task.renderer
    if renderer is not None and renderer.alpha and fmt not in ALPHA_FORMATS:
        raise UsageError(f"--output-type {renderer.name} writes an alpha channel, which {fmt} cannot store; "
                         f"use --ext .png, .webp or .tif")
    inputs = (collect_listed(opts.files_from, opts.source) if opts.files_from is not None
              else collect_inputs(opts.source, opts.recursive))
    # Output names are planned on the whole sorted list, so every shard names every file the same way.
    plan = take_shard(plan_outputs(inputs, Path(opts.output), opts.ext), opts.shard)
    check_writable(Path(opts.output))
    predictor.load()  # PyTorch weights, or an .onnx / TorchScript export

    summary = PredictSummary(device=str(predictor.device), precision=predictor.precision)
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
    remove_stale_temporaries([dst for _, dst in todo])  # left by a run killed while writing these outputs

    loader = Loader(PredictDataset([s for s, _ in todo], predictor.task), batch_size=None,
                        collate_fn=keep_sample, num_workers=max(0, opts.workers),
                        pin_memory=predictor.device.type == "cuda")
    runner = _BatchRunner(opts, predictor, fmt, todo, summary, report)
    runner.run(loader, show_progress)
    summary.stopped = runner.stop
    summary.not_started = len(todo) - summary.done - summary.failed
    return summary


def task_options(opts: PredictOptions) -> dict:
    """The task options ``predict`` passes on: ``threshold`` to tasks that take one (other tasks ignore it, as
    before), ``output_type`` / ``palette`` only when set (a task without output types refuses them)."""
    options = {"threshold": opts.threshold} if "threshold" in task_class(get_spec(opts.model)).options else {}
    if opts.output_type != "mask" or opts.palette:
        options.update(output_type=opts.output_type, palette=opts.palette)
    return options


class _BatchRunner:
    """The processing loop of :func:`predict`: decoded samples -> same-size batches (or tiles) -> model ->
    writer threads, reporting each file once it is written or has failed.

    Writes are settled in submission order, so results are reported in the order files reached the model, and at
    most ``2 * batch_size`` outputs (one for full-size tiled outputs) wait for the writers: memory stays bounded.
    """

    def __init__(self, opts: PredictOptions, predictor: Predictor, fmt: str, todo: list[tuple[Path, Path]],
                 summary: PredictSummary, report: Callable[[FileResult], None]) -> None:
        self.opts, self.predictor, self.task, self.fmt = opts, predictor, predictor.task, fmt
        self.todo, self.summary, self.report = todo, summary, report
        self.started = {i: 0.0 for i in range(len(todo))}
        self.pending: list[tuple[Future, int, list[str]]] = []
        self.buckets: dict[tuple, list[dict]] = defaultdict(list)
        self.stop = False  # a file failed under --fail-fast
        self.bar: tqdm | None = None
        self.writer: ThreadPoolExecutor | None = None

    def run(self, loader: Loader, show_progress: bool | None) -> None:
        """Process every sample of ``loader``; an interrupt finishes the writes in flight and sets
        ``summary.interrupted``."""
        opts = self.opts
        self.bar = tqdm(total=len(self.todo), unit="img", dynamic_ncols=True, leave=False,
                        disable=(not show_progress) if show_progress is not None else None)
        # Two writer threads: post-processing (numpy, scikit-image) and encoding (zlib) release the GIL, and for
        # working-size models they cost more per image than the forward pass (benchmarks/README.md, profile).
        self.writer = ThreadPoolExecutor(max_workers=WRITER_THREADS, thread_name_prefix="unetcli-writer")
        try:
            for sample in loader:
                i = sample["index"]
                self.started[i] = time.perf_counter() - sample.get("seconds", 0.0)
                if sample["error"] is not None:
                    self.fail(i, sample["error"])
                elif self.predictor.needs_tiling(sample["input"]):
                    self.run_tiled(sample)
                else:
                    key = self.predictor.padded_shape(sample["input"])
                    self.buckets[key].append(sample)
                    if len(self.buckets[key]) >= opts.batch_size:
                        self.run_batch(self.buckets.pop(key))
                    elif sum(len(b) for b in self.buckets.values()) >= 2 * opts.batch_size:
                        # Many different sizes: run the fullest bucket so memory stays bounded.
                        self.run_batch(self.buckets.pop(max(self.buckets, key=lambda k: len(self.buckets[k]))))
                if self.stop:
                    break  # --fail-fast: later files are not started; decoded earlier ones are finished below
            for key in list(self.buckets):
                self.run_batch(self.buckets.pop(key))
            self.settle(block_until=0)
        except KeyboardInterrupt:
            self.summary.interrupted = True
            # Files already handed to the writer are finished (each is complete or absent); the rest is dropped.
            self.settle(block_until=0)
        finally:
            self.writer.shutdown(wait=True)
            self.bar.close()

    def fail(self, i: int, error: str) -> None:
        """Report file ``i`` as failed (and stop the run under --fail-fast)."""
        self.summary.failed += 1
        src, dst = self.todo[i]
        self.report(FileResult(str(src), str(dst), "failed", error=error,
                               seconds=time.perf_counter() - self.started[i]))
        self.bar.update(1)
        self.stop = self.stop or self.opts.fail_fast

    def settle(self, block_until: int) -> None:
        """Collect finished writes; wait for the oldest until at most ``block_until`` are in flight."""
        while self.pending and (len(self.pending) > block_until or self.pending[0][0].done()):
            future, i, notes = self.pending[0]  # popped only once settled: an interrupt while waiting keeps it
            src, dst = self.todo[i]
            try:
                notes = notes + future.result()
            except Exception as exc:  # noqa: BLE001 - reported per file, the batch goes on
                self.pending.pop(0)
                self.fail(i, f"could not write output ({exc})")
                continue
            self.pending.pop(0)
            self.summary.done += 1
            self.report(FileResult(str(src), str(dst), "done", notes=notes,
                                   seconds=time.perf_counter() - self.started[i]))
            self.bar.update(1)

    def finish_and_write(self, output: torch.Tensor, ctx: dict, dst: Path) -> list[str]:
        """Writer thread: the task's post-processing, then an atomic save; returns notes for the file."""
        image, notes = fit_for_format(self.task.finish(output, ctx), self.fmt)
        save_atomic(image, dst, self.fmt)
        return notes

    def run_batch(self, samples: list[dict]) -> None:
        """Samples of one padded shape -> one forward pass -> one write each."""
        for s, out in zip(samples, self.predictor.forward_same_padded([s["input"] for s in samples])):
            self.submit(s, out)
        self.settle(block_until=2 * self.opts.batch_size)

    def submit(self, sample: dict, out: torch.Tensor) -> None:
        """Hand one output to the writer threads."""
        self.pending.append((self.writer.submit(self.finish_and_write, out, sample["ctx"],
                                                self.todo[sample["index"]][1]),
                             sample["index"], sample["notes"]))

    def run_tiled(self, sample: dict) -> None:
        """A photo larger than one tile: overlapping tiles, a batch of tiles at a time, blended back."""
        out = self.predictor.forward_tiled(sample["input"])
        sample["input"] = None  # the full-size input is the largest buffer: free it before the next photo
        self.submit(sample, out)
        self.settle(block_until=1)  # at most one full-size output waits for the writer
