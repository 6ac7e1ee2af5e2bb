"""The batch runner of ``unetcli predict``: files -> DataLoader -> :class:`~unetcli.engine.predictor.Predictor`
(same-size batches, or tiles) -> task post-processing -> atomic writer; fail-fast, report, interrupts.

Decoding and preparing run in DataLoader worker processes while the model runs (:func:`default_workers` of
them unless ``--workers`` says otherwise); post-processing and encoding run in writer threads
(:func:`writer_threads`). Images are grouped into batches by their input shape.
Full-resolution models run photos larger than ``tile`` on overlapping tiles (:mod:`unetcli.engine.tiling`), so
memory does not grow with the photo. Every output is written to a temporary name and renamed, so an interrupted
(even ``kill -9``-ed) run leaves complete files only, and a rerun skips them and removes the killed run's
temporary files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import multiprocessing
import os
import re
import signal
import threading
import time
import traceback
from collections import Counter, defaultdict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import torch

from unetcli.data import Loader, PredictDataset, keep_sample
from unetcli.devices import usable_cores
from unetcli.engine.predictor import Predictor
from unetcli.engine.progress import ProgressDisplay, file_progress
from unetcli.errors import UsageError, WeightsError
from unetcli.files import OutputLog, ensure_writable_folder, remove_stale_temporaries, save_atomic
from unetcli.imageio import (ALPHA_FORMATS, QUALITY_FORMATS, auto_output_ext, check_output_format, fit_for_format,
                             image_format_for, printable, writable_format)
from unetcli.inputs import collect_inputs, collect_listed, is_image_name
from unetcli.metadata import InputMetadata, carried_metadata, read_metadata
from unetcli.models.registry import get_spec
from unetcli.tasks import task_class
from unetcli.tasks.base import writes_in_flight
from unetcli.weights import sha256_file, shipped_weights


def default_workers(cores: int | None = None) -> int:
    """The DataLoader worker processes that decode photos when ``--workers`` is not given, for ``cores`` usable
    cores (None: :func:`usable_cores`): 1 on one core, else 2.

    Decoding stays in a worker process even on one core, although ``--workers 0`` is faster there for models whose
    forward pass is cheap (simple-black: 13-24 % more photos/s; unet-seg: none): a decoder that crashes (a codec's
    segmentation fault, the out-of-memory killer) then costs its file, retried alone, not the run. A second worker
    on one core is no faster (measured) and one process more; from two cores on, two decode while the model runs.
    """
    cores = usable_cores() if cores is None else cores
    return 1 if cores <= 1 else 2


def writer_threads(cores: int | None = None) -> int:
    """Threads that post-process and encode outputs while the model runs, for ``cores`` usable cores (None:
    :func:`usable_cores`): 1 on one core (a second thread has no core to run on), else 2 (post-processing with
    numpy and scikit-image and encoding with zlib release the GIL, and for working-size models they cost more per
    image than the forward pass: benchmarks/README.md)."""
    cores = usable_cores() if cores is None else cores
    return 1 if cores <= 1 else 2


@dataclass
class PredictOptions:
    """What ``unetcli predict`` was asked to do (see ``unetcli predict --help`` for each option)."""

    #: Registry name or alias; None: the model that ``weights`` records (its card, export metadata, checkpoint).
    model: str | None
    source: str
    #: A folder; or the output file when ``source`` is one file and this has an extension Pillow writes.
    output: Path
    weights: str | None = None
    device: str = "auto"
    precision: str = "auto"
    batch_size: int = 8
    #: DataLoader worker processes decoding photos (0: in the main process); None: :func:`default_workers`.
    workers: int | None = None
    size: int | None = None
    #: Output extension (format): None is ``.png`` for a folder and OUTPUT's own extension for one output file;
    #: ``"auto"``: each output in its input's format (:func:`unetcli.imageio.auto_output_ext`).
    ext: str | None = None
    #: JPEG / WebP / AVIF encoder quality 1-100 (None: Pillow's default).
    quality: int | None = None
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
    #: Added to every output's stem (``photo.jpg`` -> ``photo_out.png`` with ``_out``), as Real-ESRGAN's ``--suffix``.
    suffix: str = ""


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
    #: Why the run stopped early (``--fail-fast``, a full disk, stdout closed ...), for the final line.
    stop_reason: str = ""


class StopRun(Exception):
    """Raised by an ``on_result`` callback to end the run the way an interrupt does (the files in flight are
    finished, the rest not started): its consumer is gone (stdout closed) or its log cannot be written.

    Args:
        reason: for the final line.
        interrupted: report the run as interrupted (exit 130) rather than stopped (exit 1).
    """

    def __init__(self, reason: str, interrupted: bool = False) -> None:
        super().__init__(reason)
        self.reason, self.interrupted = reason, interrupted


def plan_outputs(items: list[tuple[Path, Path]], out_dir: Path, ext: str | Callable[[Path], str],
                 suffix: str = "") -> list[tuple[Path, Path]]:
    """(input file, relative path) -> (input file, output file) mirroring the relative path: stem + ``suffix`` +
    ``ext`` (an extension, or a function of the input file giving its output's: ``--ext auto``).

    Every output name is distinct, also on case-insensitive file systems (names are compared case-folded): inputs
    that would share an output (``a.jpg`` and ``a.png``) keep their input suffix in the name (``a_jpg.png``,
    ``a_png.png``), and a name still taken (``a.png`` and ``a.PNG``, or an input ``a_png.png``) gets a number
    (``a_png_2.png``). The plan depends only on the whole sorted list, so every shard and writer thread names every
    file the same way and no two inputs ever write one file.
    """
    ext_of = ext if callable(ext) else (lambda src, e=ext if ext.startswith(".") else "." + ext: e)
    exts = [ext_of(src) for src, _ in items]
    wanted = [rel.with_name(rel.stem + suffix + e) for (_, rel), e in zip(items, exts)]
    counts = Counter(str(w).casefold() for w in wanted)
    taken = {str(w).casefold() for w in wanted if counts[str(w).casefold()] == 1}
    plan = []
    for (src, rel), target, ext in zip(items, wanted, exts):
        if counts[str(target).casefold()] > 1:
            base, n = f"{rel.stem}_{rel.suffix.lstrip('.').lower()}", 1
            target = rel.with_name(base + suffix + ext)
            while str(target).casefold() in taken:
                n += 1
                target = rel.with_name(f"{base}_{n}{suffix}{ext}")
            taken.add(str(target).casefold())
        plan.append((src, out_dir / target))
    return plan


def refuse_inputs_as_outputs(opts: PredictOptions, plan: list[tuple[Path, Path]]) -> None:
    """Refuse, before any work, a run whose outputs could replace its inputs.

    OUTPUT equal to or inside an INPUT folder is refused unless ``--suffix`` is given (then outputs are written
    beside the inputs under new names); and no planned output may be an existing input file (the same file,
    by device and inode: also through symbolic or hard links).

    Raises:
        UsageError: one line saying why and what to do instead.
    """
    out_dir = Path(opts.output)
    folder = opts.source if opts.files_from is not None or Path(opts.source).is_dir() else None
    if folder is not None and not opts.suffix:
        rel = os.path.relpath(os.path.realpath(out_dir), os.path.realpath(folder))
        if rel == os.curdir or not (rel == os.pardir or rel.startswith(os.pardir + os.sep)):
            where = "is the INPUT folder" if rel == os.curdir else f"is inside the INPUT folder {printable(folder)}"
            raise UsageError(f"OUTPUT {printable(str(out_dir))} {where}: outputs could replace the photos and later "
                             f"runs would read them as inputs; choose an OUTPUT folder outside INPUT, or add --suffix "
                             f"(e.g. --suffix _out) to write beside the photos under new names")
    inputs: dict[tuple[int, int], Path] | None = None
    for src, dst in plan:
        try:
            st = os.stat(dst)
        except OSError:
            continue  # no file there: it cannot be an input
        if inputs is None:
            inputs = {}
            for s, _ in plan:
                with contextlib.suppress(OSError):
                    ist = os.stat(s)
                    inputs[(ist.st_dev, ist.st_ino)] = s
        if (st.st_dev, st.st_ino) in inputs:
            raise UsageError(f"output {printable(str(dst))} would replace the input file "
                             f"{printable(str(inputs[(st.st_dev, st.st_ino)]))}; choose an OUTPUT folder outside "
                             f"INPUT, or a --suffix that gives outputs names no input has")


def quality_for(opts: PredictOptions, fmt: str) -> int | None:
    """``--quality`` for an output written as ``fmt`` (JPEG, WebP, AVIF take one), else None."""
    return opts.quality if fmt in QUALITY_FORMATS else None


def made_by(predictor: Predictor, opts: PredictOptions, formats: set[str]) -> dict[str, dict]:
    """What makes an output's pixels, recorded with it (:class:`~unetcli.files.OutputLog`), for each output
    format of the run (``--ext auto`` writes several; the weights are hashed once): the model, the weights' sha256
    and the options that change pixels or bytes (format, precision, tiling, working size, task options, and
    ``quality`` when it is given and the format takes it: absent otherwise, so the records of runs without it are
    what they were). Device, batch size, workers and ``--compile`` are left out: they change speed, not the
    result."""
    spec, task = predictor.spec, predictor.task
    weights = Path(opts.weights) if opts.weights else shipped_weights(spec)
    digest = sha256_file(weights) if weights else None
    common = {"precision": predictor.precision, "tile": predictor.tile,
              "size": None if spec.full_resolution else task.size}
    common.update({k: getattr(task, k, None) for k in task_class(spec).options})
    made = {}
    for fmt in formats:
        options = {"format": fmt, **common}
        if (quality := quality_for(opts, fmt)) is not None:
            options["quality"] = quality
        made[fmt] = {"model": spec.name, "weights_sha256": digest, "options": options}
    return made


def _differences(old: dict, new: dict) -> str:
    """What differs between two :func:`made_by` records, in words (``model simple-black, precision bf16``)."""
    diffs = [f"model {old.get('model')}"] if old.get("model") != new["model"] else []
    if old.get("weights_sha256") != new["weights_sha256"]:
        diffs.append(f"weights sha256 {str(old.get('weights_sha256'))[:12]}...")
    old_options = old.get("options") or {}
    keys = list(new["options"]) + [k for k in old_options if k not in new["options"]]
    diffs += [f"{k} {old_options.get(k)}" for k in keys if old_options.get(k) != new["options"].get(k)]
    return ", ".join(diffs) or "other settings"


def sort_existing(plan: list[tuple[Path, Path]], log: OutputLog, made: dict | Callable[[Path], dict],
                  overwrite: bool) -> tuple[list[tuple[Path, Path]], list[FileResult]]:
    """Split the plan into the files to process and the results known before any work.

    ``made`` is the :func:`made_by` record of the outputs, or a function giving it for an output path (a run that
    writes several formats).

    An existing output that unetcli wrote with the same model, weights and options is skipped (replaced with
    ``overwrite``); one it wrote with other settings is reported as failed unless ``overwrite``; a file it has no
    record of writing is never replaced (failed, also with ``overwrite``).
    """
    todo, results = [], []
    for src, dst in plan:
        if not os.path.lexists(dst):
            todo.append((src, dst))
            continue
        old = log.made_by(dst)
        made_here = made(dst) if callable(made) else made
        if old is not None and (overwrite or old == made_here):
            if overwrite:
                todo.append((src, dst))
            else:
                results.append(FileResult(str(src), str(dst), "skipped", notes=["output exists (use --overwrite)"]))
        elif old is not None:
            results.append(FileResult(str(src), str(dst), "failed", error=(
                f"output {printable(str(dst))} exists, made with other settings ({_differences(old, made_here)}); "
                f"--overwrite replaces it")))
        else:
            results.append(FileResult(str(src), str(dst), "failed", error=(
                f"output {printable(str(dst))} exists and unetcli has no record of writing it (in "
                f"{printable(str(log.path))}): it is never replaced, not even with --overwrite; move it away or "
                f"choose another OUTPUT")))
    return todo, results


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


def predict(opts: PredictOptions, on_result: Callable[[FileResult], None] | None = None,
            show_progress: bool | None = None) -> PredictSummary:
    """Run a registry model over a file, folder or glob and write one output per input.

    Args:
        opts: the run's options.
        on_result: called once per input file with its :class:`FileResult` (failures, notes, timings); it may
            raise :class:`StopRun` to end the run early.
        show_progress: force the progress bar on/off; None shows it only when stderr is a terminal.

    Returns:
        The counts. Failed files do not raise; set-up problems do.

    Raises:
        UsageError / WeightsError: bad option, no inputs, OUTPUT that could replace inputs, output folder not
            writable, missing weights, unavailable device; raised before any file is processed.
        KeyboardInterrupt: only while setting up; once files are processed an interrupt (SIGINT, or SIGTERM when
            called from the main thread) returns a summary with ``interrupted`` set (files in flight finished,
            nothing half-written left).
    """
    opts = with_model(opts)  # -m, or the model the --weights file records (an unknown model is the first error)
    out_file = output_file(opts)
    auto = opts.ext is not None and opts.ext.lower() == "auto"
    if opts.batch_size < 1:
        raise UsageError(f"--batch-size {opts.batch_size}: must be at least 1")
    if any(sep and sep in opts.suffix for sep in (os.sep, os.altsep, "\0")):
        raise UsageError(f"--suffix {opts.suffix!r}: a suffix is added to file names and cannot hold a path separator")
    if opts.quality is not None and not 1 <= opts.quality <= 100:
        raise UsageError(f"--quality {opts.quality}: expected 1 (smallest files) to 100 (best quality)")
    if out_file is not None:
        fmt = single_output_format(opts, out_file, auto)
    else:
        fmt = None if auto else image_format_for(opts.ext or ".png")
    if fmt is not None and opts.quality is not None and fmt not in QUALITY_FORMATS:
        raise _no_quality(fmt)
    predictor = Predictor.configure(opts.model, weights=opts.weights, device=opts.device, precision=opts.precision,
                                    tile=opts.tile, size=opts.size, compile=opts.compile, batch_size=opts.batch_size,
                                    **task_options(opts))
    mode = predictor.task.output_mode
    if fmt is not None:  # --ext auto picks, per input, a format that can store the output (PNG if none)
        where = "OUTPUT " + printable(str(out_file)) if out_file is not None else "--ext " + (opts.ext or ".png")
        renderer = predictor.task.renderer
        if renderer is not None and renderer.alpha and fmt not in ALPHA_FORMATS:
            raise UsageError(f"--output-type {renderer.name} writes an alpha channel, which {fmt} cannot store; "
                             f"use .png, .webp or .tif" + (" (--ext)" if out_file is None else " for OUTPUT"))
        check_output_format(fmt, mode, opts.ext or ".png", what=where)  # e.g. .grib, .xbm: before any decoding
    out_dir = Path(opts.output) if out_file is None else out_file.parent
    unreadable: list[tuple[Path, str]] = []
    log = OutputLog(out_dir)
    whole_plan = _whole_plan(opts, out_file, log, mode, auto, unreadable)
    formats = {dst: fmt or writable_format(dst.suffix) for _, dst in whole_plan}
    if opts.quality is not None and not QUALITY_FORMATS & set(formats.values()):
        raise _no_quality(*sorted(set(formats.values())))
    plan = take_shard(whole_plan, opts.shard)
    notes = {}
    if auto:  # inputs whose format cannot hold the output: why they were written as PNG
        notes = {dst: [note] for src, dst in plan if (note := auto_output_ext(src, mode)[1])}
    ensure_writable_folder(out_dir, "output folder")
    predictor.load()  # PyTorch weights, or an .onnx / TorchScript export
    made = made_by(predictor, opts, set(formats.values()))

    summary = PredictSummary(device=str(predictor.device), precision=predictor.precision)
    source = Path(opts.source)
    early = [FileResult(str(folder), str(out_dir / os.path.relpath(folder, source)), "failed", error=reason)
             for folder, reason in unreadable]
    remove_stale_temporaries([dst for _, dst in plan])  # left by a run killed while writing these outputs
    todo, known = sort_existing(plan, log, lambda dst: made[formats[dst]], opts.overwrite)
    early += known
    summary.skipped = sum(r.status == "skipped" for r in early)
    summary.failed = sum(r.status == "failed" for r in early)
    runner = _BatchRunner(opts, predictor, formats, todo, summary, on_result or (lambda r: None), log, made, notes)
    try:
        runner.run(early, show_progress)
    finally:
        log.close()
    summary.stopped = runner.stop
    summary.not_started = len(todo) - summary.done - (summary.failed - sum(r.status == "failed" for r in early))
    return summary


def _whole_plan(opts: PredictOptions, out_file: Path | None, log: OutputLog, mode: str, auto: bool,
                unreadable: list[tuple[Path, str]]) -> list[tuple[Path, Path]]:
    """(input, output) for every input of the run, before sharding: the one file and OUTPUT file, or the inputs
    found (``unreadable`` receives the sub-folders that could not be listed) with their planned output names.

    Raises:
        UsageError: OUTPUT is the INPUT file itself; no inputs (besides outputs of earlier runs); outputs that could
            replace inputs (:func:`refuse_inputs_as_outputs`).
    """
    if out_file is not None:
        src = collect_inputs(opts.source)[0][0]  # one file: named, so taken even if an earlier run wrote it
        if os.path.lexists(out_file) and _same_file(src, out_file):
            raise UsageError(f"OUTPUT {printable(str(out_file))} is the INPUT file itself: the photo would be "
                             f"replaced; name another output file (e.g. {printable(src.stem)}_out{out_file.suffix})")
        whole_plan = [(src, out_file)]
    else:
        inputs = (collect_listed(opts.files_from, opts.source) if opts.files_from is not None
                  else collect_inputs(opts.source, opts.recursive, unreadable=unreadable))
        inputs = [(src, rel) for src, rel in inputs if log.made_by(src) is None]  # earlier outputs are never inputs
        if not inputs and not unreadable:
            raise UsageError(f"input {opts.source!r}: no image files found (only outputs of earlier runs)")
        # Output names are planned on the whole sorted list, so every shard names every file the same way.
        ext = (lambda path: auto_output_ext(path, mode)[0]) if auto else (opts.ext or ".png")
        whole_plan = plan_outputs(inputs, log.folder, ext, opts.suffix)
    refuse_inputs_as_outputs(opts, whole_plan)
    return whole_plan


def with_model(opts: PredictOptions) -> PredictOptions:
    """``opts`` with its model settled: ``--model`` as given, or else the model the ``--weights`` file records
    (:func:`unetcli.api.model_of_weights`: a ``.safetensors`` file's model card or header, a training checkpoint's
    options, an export's metadata). Given both, they must agree: checked here for training checkpoints (the loader
    does not read their options), by the loader for the rest (a ``.safetensors`` card: "these weights are for X,
    not Y", a copy without its card: the tensors must fit the architecture; an export's metadata: "this export is
    of X, not Y"), so an export is not opened twice.

    Raises:
        UsageError: no model and no weights; an unknown model; ``--model`` naming another model than the file.
        WeightsError: only ``--weights`` given, and the file is unreadable or records no model.
    """
    from unetcli.api import model_of_weights

    if opts.weights is None:
        if not opts.model:
            raise UsageError("no model: give --model MODEL (see `unetcli models`), or --weights FILE")
        get_spec(opts.model)
        return opts
    if not opts.model:
        name = model_of_weights(opts.weights)
        get_spec(name)
        return dataclasses.replace(opts, model=name)
    spec = get_spec(opts.model)
    if Path(opts.weights).suffix != ".pt":
        return opts  # the loader checks a card or an export's metadata itself
    try:
        recorded = model_of_weights(opts.weights)
    except (UsageError, WeightsError):
        return opts  # a file that records no model (a plain state dict) or a bad one: the loader says what it is
    if get_spec(recorded).name != spec.name:
        raise UsageError(f"--weights {printable(str(opts.weights))}: these weights are for {recorded}, not "
                         f"{spec.name} (--model {opts.model}); leave out --model (the file names its model) or pass "
                         f"weights of {spec.name}")
    return opts


def output_file(opts: PredictOptions) -> Path | None:
    """OUTPUT as the one output file, or None when it is a folder.

    OUTPUT is a file when INPUT is one file (not ``--files-from``), OUTPUT is no existing folder and its
    extension is one Pillow writes (``photo_gray.png``, ``out.JPG``, ``x.webp``).

    Raises:
        UsageError: INPUT is one file and OUTPUT has the extension of an image format Pillow reads but cannot
            write (``out.psd``), which would otherwise become a folder of that name.
    """
    out = Path(opts.output)
    if opts.files_from is not None or not Path(opts.source).is_file() or out.is_dir() or not out.suffix:
        return None
    if writable_format(out.suffix) is not None:
        return out
    if is_image_name(out):
        raise UsageError(f"OUTPUT {printable(str(out))}: Pillow cannot write {out.suffix} files; name the output "
                         f".png, .jpg, .webp or .tif (or give a folder)")
    return None


def single_output_format(opts: PredictOptions, out_file: Path, auto: bool) -> str:
    """The format of the one output file: its extension's. ``--suffix`` is refused (it names outputs in a
    folder) and so is an ``--ext`` that asks for another format (``--ext auto``: the input's).

    Raises:
        UsageError: ``--suffix`` given, or ``--ext`` disagreeing with OUTPUT's extension.
    """
    fmt = writable_format(out_file.suffix)
    if opts.suffix:
        raise UsageError(f"--suffix names the outputs written into a folder; OUTPUT {printable(str(out_file))} is "
                         f"one file: write the name you want as OUTPUT")
    if opts.ext is not None:
        wanted = writable_format(Path(opts.source).suffix) if auto else image_format_for(opts.ext)
        if wanted != fmt:
            asked = f"--ext auto ({wanted or Path(opts.source).suffix} like the input)" if auto else f"--ext {opts.ext}"
            raise UsageError(f"{asked} disagrees with OUTPUT {printable(str(out_file))} ({fmt}): one output file "
                             f"is written in the format of its extension; leave out --ext")
    return fmt


def _no_quality(*formats: str) -> UsageError:
    """The error for ``--quality`` with output formats that have no quality setting."""
    return UsageError(f"--quality applies to JPEG, WebP and AVIF outputs; {' and '.join(formats)} "
                      f"{'has' if len(formats) == 1 else 'have'} no quality setting (leave out --quality)")


def _same_file(a: Path, b: Path) -> bool:
    """True if both paths name one file (by device and inode: also through links)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def task_options(opts: PredictOptions) -> dict:
    """The task options ``predict`` passes on: ``threshold`` to tasks that take one (other tasks ignore it, as
    before), ``output_type`` / ``palette`` only when set (a task without output types refuses them)."""
    options = {"threshold": opts.threshold} if "threshold" in task_class(get_spec(opts.model)).options else {}
    if opts.output_type != "mask" or opts.palette:
        options.update(output_type=opts.output_type, palette=opts.palette)
    return options


def _is_out_of_memory(exc: BaseException) -> bool:
    """True for the errors a forward pass raises when memory runs out (CUDA, the CPU allocator, onnxruntime)."""
    text = str(exc).lower()
    return isinstance(exc, torch.OutOfMemoryError | MemoryError) or (
        isinstance(exc, RuntimeError) and any(k in text for k in ("out of memory", "can't allocate memory",
                                                                   "failed to allocate memory")))


def _worker_died(exc: BaseException) -> str | None:
    """How a DataLoader worker died, in words, if ``exc`` is PyTorch's error for it, or the broken connection of a
    worker killed while it handed a sample's shared memory over: ``ConnectionError``/``EOFError``, or
    ``FileNotFoundError`` for the worker's socket already gone (seen in CI on a Ctrl-C to the process group), from
    ``multiprocessing``'s resource sharer; else None."""
    if isinstance(exc, (ConnectionError, EOFError)) or (
            isinstance(exc, FileNotFoundError)
            and any(f.filename.endswith(("resource_sharer.py", "connection.py"))
                    and "multiprocessing" in f.filename for f in traceback.extract_tb(exc.__traceback__))):
        return "it exited unexpectedly"
    text = str(exc)
    if not isinstance(exc, RuntimeError) or "DataLoader worker" not in text:
        return None
    found = re.search(r"killed by signal: ([^.]+)", text)
    return f"killed by signal {found.group(1)}" if found else "it exited unexpectedly"


def _quiet_sigchld():
    """Stop PyTorch's SIGCHLD handler from raising a worker's death at any point of the main thread (in the middle
    of a file's bookkeeping); the DataLoader still reports it from ``next()`` (it checks its workers while waiting),
    where :meth:`_BatchRunner.process` handles it. Returns the handler to restore (None: nothing changed)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGCHLD"):
        return None
    return signal.signal(signal.SIGCHLD, signal.SIG_DFL)


#: Write errors that concern the whole OUTPUT file system: the run stops at the first one.
_RUN_WIDE_WRITE_ERRORS = {errno.ENOSPC, errno.EROFS, getattr(errno, "EDQUOT", errno.ENOSPC)}


def _write_error(dst: Path, exc: BaseException) -> str:
    """Why an output could not be written, in one line naming it."""
    if isinstance(exc, OSError):
        if exc.errno in (errno.EEXIST, errno.ENOTDIR):
            return f"could not write {printable(str(dst))}: a file is where a folder should be"
        return f"could not write {printable(str(dst))}: {(exc.strerror or str(exc)).lower()}"
    return f"could not write {printable(str(dst))} ({type(exc).__name__}: {exc})"


class _Interrupts:
    """SIGINT and SIGTERM while files are processed: the first raises ``KeyboardInterrupt`` in the main thread (what
    Ctrl-C does; SIGTERM, what ``kill`` and job schedulers send, is treated the same), except inside :meth:`held`
    sections, where it is raised at the section's end; later signals are counted only, so finishing the files in
    flight and counting them is never cut short. Signals that were ignored when the run started stay ignored."""

    def __init__(self) -> None:
        self.count = 0
        self._held = 0
        self._pending = False
        self._saved: dict[int, object] = {}

    def __enter__(self) -> _Interrupts:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous = signal.getsignal(sig)
                if previous is not signal.SIG_IGN:
                    self._saved[sig] = previous
                    signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, previous in self._saved.items():
            signal.signal(sig, previous)

    def _handle(self, signum, frame) -> None:
        self.count += 1
        if self.count == 1:
            if self._held:
                self._pending = True
            else:
                raise KeyboardInterrupt

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """A section an interrupt must not split (a file's bookkeeping)."""
        self._held += 1
        try:
            yield
        finally:
            self._held -= 1
        if not self._held and self._pending:
            self._pending = False
            raise KeyboardInterrupt


class _BatchRunner:
    """The processing loop of :func:`predict`: decoded samples -> same-size batches (or tiles) -> model ->
    writer threads, reporting each file once it is written or has failed.

    Writes are settled in submission order, so results are reported in the order files reached the model, and at
    most ``2 * batch_size`` outputs (one for full-size tiled outputs) wait for the writers: memory stays bounded.

    Faults of one file stay with that file: a DataLoader worker that dies (the out-of-memory killer) has the file it
    was decoding retried alone in a fresh worker, then failed, while the rest goes on in new workers; a forward pass
    that runs out of memory is retried one image at a time, then (full-resolution models) on smaller tiles.
    """

    def __init__(self, opts: PredictOptions, predictor: Predictor, formats: dict[Path, str],
                 todo: list[tuple[Path, Path]], summary: PredictSummary, report: Callable[[FileResult], None],
                 log: OutputLog | None = None, made: dict[str, dict] | None = None,
                 notes: dict[Path, list[str]] | None = None) -> None:
        self.opts, self.predictor, self.task, self.formats = opts, predictor, predictor.task, formats
        self.todo, self.summary, self.report, self.log, self.made = todo, summary, report, log, made
        self.write_notes = notes or {}  # per output file, e.g. --ext auto's PNG fall-back
        renderer = self.task.renderer
        self.colours = renderer is None or renderer.needs_photo  # outputs are photos, not masks: ICC profiles fit
        self.started = {i: 0.0 for i in range(len(todo))}
        self.pending: list[tuple[Future, int, list[str]]] = []
        self.buckets: dict[tuple, list[dict]] = defaultdict(list)
        self.accounted: set[int] = set()  # handed to the writers, or failed
        self.extra_notes: dict[int, list[str]] = defaultdict(list)
        self.stop = False  # a file failed under --fail-fast, or OUTPUT cannot be written any more
        self.interrupts = _Interrupts()
        self.bar: ProgressDisplay | None = None
        self.writer: ThreadPoolExecutor | None = None

    def run(self, early: list[FileResult], show_progress: bool | None) -> None:
        """Report ``early`` (results known before any work), then process every file of ``todo``; an interrupt
        finishes the writes in flight and sets ``summary.interrupted``."""
        opts = self.opts
        self.bar = file_progress(len(self.todo), show_progress)
        self.writer = ThreadPoolExecutor(max_workers=writer_threads(), thread_name_prefix="unetcli-writer")
        with self.interrupts:
            try:
                for result in early:
                    self.report(result)
                if opts.fail_fast and self.summary.failed:
                    self.stop_with("stopped at the first failure: --fail-fast")
                self.process()
                for key in list(self.buckets):
                    self.run_batch(self.buckets.pop(key))
                self.settle(block_until=0)
            except (KeyboardInterrupt, StopRun) as exc:
                if isinstance(exc, StopRun):
                    self.summary.stop_reason = exc.reason
                    self.stop = not exc.interrupted
                self.summary.interrupted = not isinstance(exc, StopRun) or exc.interrupted
                # Files already handed to the writer are finished (each is complete or absent); the rest is dropped.
                self.settle(block_until=0)
            finally:
                self.writer.shutdown(wait=True)
                self.bar.close()

    def stop_with(self, reason: str) -> None:
        """Start no more files (the files in flight are finished); ``reason`` goes on the final line."""
        self.stop = True
        self.summary.stop_reason = self.summary.stop_reason or reason

    def loader(self, indices: list[int], workers: int) -> tuple[Loader, PredictDataset]:
        """A DataLoader that decodes the files ``indices`` of ``todo`` in ``workers`` processes."""
        dataset = PredictDataset([s for s, _ in self.todo], self.task, indices=indices,
                                 busy=multiprocessing.RawArray("q", [-1] * max(1, workers)) if workers else None)
        loader = Loader(dataset, batch_size=None, collate_fn=keep_sample, num_workers=workers,
                        pin_memory=self.predictor.device.type == "cuda")
        return loader, dataset

    def process(self) -> None:
        """Decode and run every file of ``todo``. When a decoding worker dies, the files it may have been decoding
        are retried each in a worker of its own (a second death fails the file), the rest in new workers."""
        remaining, alone = list(range(len(self.todo))), []
        retry: set[int] = set()
        while (remaining or alone) and not self.stop:
            if alone:
                indices, workers = [alone.pop(0)], 1
            else:
                workers = default_workers() if self.opts.workers is None else max(0, self.opts.workers)
                indices, remaining = remaining, []
            loader, dataset = self.loader(indices, workers)
            samples = iter(loader)
            sigchld = _quiet_sigchld()
            try:
                while not self.stop:  # --fail-fast: later files are not started; decoded ones are finished later
                    # An interrupt waits until the sample in transfer has arrived: cut off while a worker hands its
                    # tensors over (file descriptors), the worker would print a traceback.
                    with self.interrupts.held():
                        sample = next(samples, None)
                    if sample is None:
                        break
                    self.take(sample)
            except (RuntimeError, OSError, EOFError) as exc:  # OSError: ConnectionError, FileNotFoundError
                why = _worker_died(exc)
                if why is None:
                    raise
                waiting = {s["index"] for b in self.buckets.values() for s in b}
                lost = [i for i in indices if i not in self.accounted and i not in waiting]
                suspects = dataset.busy_indices() & set(lost)
                for i in sorted(suspects):
                    if i in retry:
                        self.fail(i, f"the process decoding it was {why} (twice; out of memory?)")
                    else:
                        retry.add(i)
                        alone.append(i)
                        self.extra_notes[i].append(f"decoded again: the worker process decoding it was {why}")
                remaining += [i for i in lost if i not in suspects]
                remaining.sort()
            finally:
                del samples, loader
                if sigchld is not None:
                    signal.signal(signal.SIGCHLD, sigchld)

    def take(self, sample: dict) -> None:
        """One decoded sample: failed, run on tiles, or added to the batch of its shape (run when full)."""
        opts = self.opts
        i = sample["index"]
        self.started[i] = time.perf_counter() - sample.get("seconds", 0.0)
        sample["notes"] = sample["notes"] + self.extra_notes.pop(i, [])
        if sample["error"] is None:  # EXIF / ICC to carry, read in the main thread as the photo (warnings -> notes)
            sample["metadata"] = read_metadata(self.todo[i][0])
            sample["notes"] += sample["metadata"].notes
        if sample["error"] is not None:
            self.fail(i, sample["error"])
        elif self.predictor.needs_tiling(sample["input"]):
            self.run_tiled(sample)
        else:
            key = self.predictor.padded_shape(sample["input"])
            self.buckets[key].append(sample)
            if len(self.buckets[key]) >= writes_in_flight([s["ctx"] for s in self.buckets[key]], opts.batch_size):
                self.run_batch(self.buckets.pop(key))
            elif sum(len(b) for b in self.buckets.values()) >= 2 * opts.batch_size:
                # Many different sizes: run the fullest bucket so memory stays bounded.
                self.run_batch(self.buckets.pop(max(self.buckets, key=lambda k: len(self.buckets[k]))))

    def fail(self, i: int, error: str) -> None:
        """Report file ``i`` as failed (and stop the run under --fail-fast)."""
        with self.interrupts.held():
            self.accounted.add(i)
            self.summary.failed += 1
            src, dst = self.todo[i]
            self.bar.update(1)
            if self.opts.fail_fast:
                self.stop_with("stopped at the first failure: --fail-fast")
        self.report(FileResult(str(src), str(dst), "failed", error=error,
                               seconds=time.perf_counter() - self.started[i]))

    def settle(self, block_until: int) -> None:
        """Collect finished writes; wait for the oldest until at most ``block_until`` are in flight."""
        while self.pending and (len(self.pending) > block_until or self.pending[0][0].done()):
            future, i, notes = self.pending[0]  # popped only once settled: an interrupt while waiting keeps it
            src, dst = self.todo[i]
            try:
                notes = notes + future.result()
            except Exception as exc:  # noqa: BLE001 - reported per file, the batch goes on
                self.pending.pop(0)
                self.fail(i, _write_error(dst, exc))
                if isinstance(exc, OSError) and exc.errno in _RUN_WIDE_WRITE_ERRORS:
                    self.stop_with(f"OUTPUT cannot be written: {(exc.strerror or str(exc)).lower()}")
                continue
            with self.interrupts.held():
                self.pending.pop(0)
                self.summary.done += 1
                self.bar.update(1)
            self.report(FileResult(str(src), str(dst), "done", notes=notes,
                                   seconds=time.perf_counter() - self.started[i]))

    def finish_and_write(self, output: torch.Tensor, ctx: dict, dst: Path,
                         metadata: InputMetadata | None = None) -> list[str]:
        """Writer thread: the task's post-processing, then an atomic save (``--quality``; the input's EXIF and ICC
        profile where the format stores them, :func:`~unetcli.metadata.carried_metadata`) with its record in the
        output log; returns notes for the file."""
        fmt = self.formats[dst]
        image, notes = fit_for_format(self.task.finish(output, ctx), fmt)
        params, more = carried_metadata(metadata, image, fmt, self.colours)
        if (quality := quality_for(self.opts, fmt)) is not None:
            params["quality"] = quality
        made = None if self.made is None else self.made[fmt]
        record = None if self.log is None else (lambda tmp: self.log.record(dst, tmp, made))
        save_atomic(image, dst, fmt, before_replace=record, params=params)
        return notes + more + self.write_notes.get(dst, [])

    def run_batch(self, samples: list[dict]) -> None:
        """Samples of one padded shape -> one forward pass -> one write each. Out of memory: the samples one at a
        time, then (full-resolution models) on tiles."""
        try:
            outputs = self.predictor.forward_same_padded([s["input"] for s in samples])
        except Exception as exc:
            if not _is_out_of_memory(exc):
                raise
            self.predictor.free_memory()
            if len(samples) > 1:
                for s in samples:
                    self.run_batch([s])
            elif self.predictor.spec.full_resolution:
                self.run_tiled(samples[0], self.predictor.smaller_tile(max(samples[0]["input"].shape[1:])))
            else:
                self.fail(samples[0]["index"], f"out of memory in the model on {self.predictor.device} (alone in "
                                               f"its batch); try a smaller --size, or --device cpu")
            return
        for s, out in zip(samples, outputs):
            self.submit(s, out)
        self.settle(block_until=writes_in_flight([s["ctx"] for s in samples], 2 * self.opts.batch_size))

    def submit(self, sample: dict, out: torch.Tensor) -> None:
        """Hand one output to the writer threads."""
        with self.interrupts.held():
            dst = self.todo[sample["index"]][1]
            self.pending.append((self.writer.submit(self.finish_and_write, out, sample["ctx"], dst,
                                                    sample.get("metadata")),
                                 sample["index"], sample["notes"]))
            self.accounted.add(sample["index"])

    def run_tiled(self, sample: dict, tile: int | None = None) -> None:
        """A photo larger than one tile: overlapping tiles, a batch of tiles at a time, blended back. Out of
        memory: one tile at a time, then smaller tiles, down to the model's smallest."""
        tile, per_pass, out = tile or self.predictor.tile, self.opts.batch_size, None
        while tile and out is None:
            try:
                out = self.predictor.forward_tiled(sample["input"], tile, per_pass)
            except Exception as exc:
                if not _is_out_of_memory(exc):
                    raise
                self.predictor.free_memory()
                if per_pass > 1:
                    per_pass = 1
                else:
                    tile = self.predictor.smaller_tile(tile)
        if out is None:
            self.fail(sample["index"], f"out of memory in the model on {self.predictor.device}, even on its "
                                       f"smallest tiles")
            return
        sample["input"] = None  # the full-size input is the largest buffer: free it before the next photo
        self.submit(sample, out)
        self.settle(block_until=1)  # at most one full-size output waits for the writer
