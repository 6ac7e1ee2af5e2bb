"""Training: crops of a photo folder -> model -> the seed's loss with Adam; validation, checkpoints, resume.

Run folder layout (``--out``):
    last.pt                 checkpoint (model, optimizer, epoch, history, RNG states), written atomically after
                            every epoch, every ``--save-every`` minutes within an epoch and when the run is
                            stopped (Ctrl-C, SIGTERM); ``--resume RUN`` continues from it, mid-epoch too.
    best.safetensors/.json  the best epoch so far by validation metric (fp16 weights + model card).
    <model>.safetensors/.json  the final weights (= best), written when the last epoch ends.
    metrics.csv, metrics.png   one row per epoch; loss and validation curves.
    samples.jsonl           distributed runs: the crop indices each rank trained on, per epoch.
    split.json              which files were used for training and which were held out for validation.

Data: a folder of photos (the gray models and colorize compute their targets from each photo), or for unet-seg
``DATA/images`` + ``DATA/masks`` pairs (:func:`unetcli.data.load_segmentation_pairs`). Validation is a seeded
random split of the photos, or a separate folder (``--val-data``) when whole subjects must stay unseen.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import json
import math
import random
import re
import shlex
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DistributedSampler, Subset

from unetcli.data import Loader, PhotoCrops, split_indices
from unetcli.devices import autocast, precision_name, resolve_precision
from unetcli.engine.distributed import all_reduce_sums, barrier, gather_lists, init_distributed, shutdown
from unetcli.engine.progress import TrainingProgress, metric_label
from unetcli.errors import EXIT_SOME_FAILED, TrainingInterrupted, UnetcliError, UsageError, WeightsError
from unetcli.files import atomic_write, ensure_writable_folder, remove_stale_temporaries
from unetcli.models.registry import ModelSpec, get_spec
from unetcli.tasks import make_task, task_class
from unetcli.weights import (load_into, load_pretrained_encoder, load_state, read_card, read_torch_file,
                             save_weights, write_json_atomic)


@dataclass
class TrainOptions:
    """What ``unetcli train`` was asked to do (see ``unetcli train --help`` for each option).

    Options left as None take the model's defaults on a new run, and the run's own values on ``resume``.
    """

    out: Path
    model: str | None = None
    data: Path | None = None
    val_data: Path | None = None
    classes: int | None = None
    #: Total epochs; None: 10 for a new run, the run's own for ``resume``.
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    size: int | None = None
    val_split: float | None = None
    seed: int | None = None
    device: str = "auto"
    precision: str = "auto"
    workers: int = 2
    lr_schedule: str | None = None
    init_weights: Path | None = None
    crops_per_photo: int | None = None
    freeze_bn_after: int | None = None
    #: Pretrained-encoder models: epochs (from the start of the run) during which the encoder is not updated.
    freeze_encoder_epochs: int | None = None
    #: Validation metric that picks ``best.safetensors``: ``"loss"`` (lower is better) or one of the task's
    #: ``metric_names`` (higher is better); None: the task's own choice (``Task.best_metric``).
    best_metric: str | None = None
    sync_bn: bool = False
    #: Segmentation: learn the outputs of these weights (a one-class segmenter's ``.safetensors``) instead of the
    #: masks, on mixed-up training crops (knowledge distillation as function matching; :meth:`_Trainer._step`).
    teacher: Path | None = None
    #: Minutes between checkpoints within an epoch (single-process runs; 0: only at the end of each epoch).
    save_every: float = 10.0
    resume: bool = False
    #: ``out`` is the default ``runs/MODEL``, not a folder the user named: if it holds a run, the new run takes the
    #: next free name (``runs/MODEL2``, ``runs/MODEL3`` ...) instead of being refused.
    auto_name: bool = False
    command: str = field(default_factory=lambda: shlex.join(["unetcli", *sys.argv[1:]]))
    resume_commands: list[str] = field(default_factory=list)


#: Options fixed for the life of a run: on resume they come from the checkpoint (a different value is an error).
_FIXED_ON_RESUME = ("model", "data", "val_data", "classes", "batch_size", "lr", "size", "val_split", "seed",
                    "lr_schedule", "init_weights", "crops_per_photo", "freeze_bn_after", "freeze_encoder_epochs",
                    "best_metric", "teacher")
_DEFAULTS = {"batch_size": 16, "val_split": 0.1, "seed": 0, "lr_schedule": "constant", "crops_per_photo": 1,
             "classes": 1, "freeze_encoder_epochs": 0}
#: Epochs of a new run when ``--epochs`` is not given.
DEFAULT_EPOCHS = 10
#: What a ``unetcli train`` checkpoint (``last.pt``) holds besides the model's state dict.
_CHECKPOINT_KEYS = ("model", "optimizer", "epoch", "history", "best", "images_seen", "wall_time_s", "options")


class RunFolderError(UnetcliError):
    """A file of the run folder could not be written once training was under way (disk full, the folder removed
    or made read-only): exit code 1. The files already there are complete (each is replaced atomically), and the
    message names the checkpoint ``--resume`` continues from."""

    exit_code = EXIT_SOME_FAILED


@contextlib.contextmanager
def writing(path: Path, run: Path):
    """Turn an OS error while writing ``path`` (a file of the run folder ``run``) into one :class:`RunFolderError`
    line naming it, the reason, and what ``--resume`` can continue from."""
    try:
        yield
    except OSError as exc:
        temporary = re.fullmatch(r"\.(.+)\.\d+\.tmp", Path(exc.filename or "").name)
        if temporary:  # the atomic write's temporary file: name the file it was to become
            path = Path(exc.filename).with_name(temporary[1])
        last = run / "last.pt"
        state = (f"{last} holds the last complete checkpoint; free some space (or fix the folder) and continue with: "
                 f"unetcli train --resume {run}") if last.is_file() else "no checkpoint was written yet"
        raise RunFolderError(f"cannot write {path} ({exc.strerror or exc}); {state}") from None


class StopRequest:
    """Context manager that turns Ctrl-C (SIGINT) and SIGTERM (``kill``, ``timeout``, batch schedulers before their
    hard kill) into a request: training finishes the step in flight, writes its checkpoint and stops
    (:class:`TrainingInterrupted`). A second Ctrl-C aborts at once; ``last.pt`` is then the previous checkpoint,
    which is always complete (atomic replace).

    Handlers are installed only from the main thread (Python's rule) and restored on exit. DataLoader workers
    forked inside inherit them, so a terminal's Ctrl-C, which reaches the whole process group, does not kill the
    workers before the checkpoint is written. ``signal`` holds the first signal number received, or None.
    """

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame) -> None:
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal = signum

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def epoch_lr(base_lr: float, schedule: str, epoch: int, epochs: int) -> float:
    """Learning rate for 0-based ``epoch``: constant (the seeds' Adam), or cosine annealing to 1% of ``base_lr``
    over ``epochs`` (Loshchilov & Hutter, SGDR, 2017; computed from the epoch, so a resumed run follows it too)."""
    if schedule == "constant":
        return base_lr
    floor = 0.01 * base_lr
    return floor + 0.5 * (base_lr - floor) * (1 + math.cos(math.pi * epoch / max(epochs, 1)))


def _resolve_options(opts: TrainOptions) -> dict | None:
    """Fill the None options from the checkpoint (resume) or the defaults and check them, before any photo is
    decoded; choose the run folder of a new run. Returns the checkpoint, if any.

    Raises:
        UsageError: a bad option, a run folder that holds another run or is a file, nothing left to train.
        WeightsError: ``last.pt`` is not a ``unetcli train`` checkpoint.
    """
    ckpt = None
    if opts.resume:
        ckpt = _read_checkpoint(opts)
        saved = ckpt["options"]
        for key in _FIXED_ON_RESUME:
            given = getattr(opts, key)
            was = saved.get(key, _DEFAULTS.get(key))  # runs from older versions lack the newer options
            if given is not None and str(given) != str(was) and not (key == "model" and was
                                                                     == get_spec(given).name):
                raise UsageError(f"--resume: the run in {opts.out} was started with {key} {was}, "
                                 f"not {given}; leave the option out to continue it")
            setattr(opts, key, was)
        opts.data = Path(opts.data)
        opts.val_data = Path(opts.val_data) if opts.val_data else None
        opts.resume_commands = [*saved.get("resume_commands", []), opts.command]
        opts.command = saved.get("command", opts.command)
        done = int(ckpt["epoch"]) + 1
        if opts.epochs is None:
            opts.epochs = int(saved.get("epochs") or DEFAULT_EPOCHS)
            if done >= opts.epochs:
                raise UsageError(f"--resume: the run in {opts.out} finished all its {opts.epochs} epochs; pass "
                                 f"--epochs N (more than {opts.epochs}) to train on")
        elif done >= opts.epochs:
            raise UsageError(f"--epochs {opts.epochs}: the run already finished {done} epoch(s); "
                             f"ask for more epochs to continue")
    else:
        if opts.model is None or opts.data is None:
            raise UsageError("train needs --model and --data (or --resume RUN to continue a run)")
        opts.model = get_spec(opts.model).name
        if opts.lr_schedule not in (None, "constant", "cosine"):
            raise UsageError(f"--lr-schedule {opts.lr_schedule}: expected constant or cosine")
        for key, value in _DEFAULTS.items():
            if getattr(opts, key) is None:
                setattr(opts, key, value)
        spec = get_spec(opts.model)
        if opts.classes != 1 and not task_class(spec).has_classes:
            raise UsageError(f"--classes: only unet-seg has a class count ({spec.name} has a fixed output)")
        if opts.freeze_encoder_epochs and spec.encoder_weights is None:
            raise UsageError(f"--freeze-encoder-epochs: {spec.name} has no pretrained encoder")
        choices = ("loss", *task_class(spec).metric_names)
        if opts.teacher is not None:
            if task_class(spec).output_kind != "mask" or opts.classes != 1:
                raise UsageError(f"--teacher: distillation trains one-class segmenters ({spec.name}"
                                 f"{f' with {opts.classes} classes' if opts.classes != 1 else ''} is not one)")
        if opts.best_metric is not None and opts.best_metric not in choices:
            raise UsageError(f"--best-metric {opts.best_metric}: {spec.name} validates {', '.join(choices)}")
        if opts.lr is not None and not (math.isfinite(opts.lr) and opts.lr > 0):
            raise UsageError(f"--lr {opts.lr:g}: the learning rate must be a finite number above 0 (e.g. 1e-3)")
        opts.lr = spec.lr if opts.lr is None else opts.lr
        opts.size = opts.size or spec.train_size
        opts.epochs = DEFAULT_EPOCHS if opts.epochs is None else opts.epochs
        opts.out = new_run_folder(Path(opts.out), opts.auto_name)
    return ckpt


def teacher_spec(path: Path) -> ModelSpec:
    """The registry model a ``--teacher`` weights file holds (read from its model card), checked to be a segmenter.

    Raises:
        WeightsError: the file is missing, or has no model card naming a model.
        UsageError: not a segmenter, or the card names a model this version does not know.
    """
    if not path.is_file():
        raise WeightsError(f"--teacher {path}: no such file")
    name = read_card(path).get("model")
    if name is None:
        raise WeightsError(f"--teacher {path}: not a unetcli weights file (no model card {path.stem}.json beside it "
                           f"naming its model)")
    spec = get_spec(name)
    if task_class(spec).output_kind != "mask":
        raise UsageError(f"--teacher {path}: holds {spec.name}, not a segmenter")
    return spec


def _read_checkpoint(opts: TrainOptions) -> dict:
    """The checkpoint ``--resume RUN`` continues: ``RUN/last.pt`` (``RUN`` may name that file itself).

    Raises:
        UsageError: no checkpoint there, or a file that is no run's ``last.pt``.
        WeightsError: the checkpoint is unreadable, a plain state dict, or a pickle of other objects.
    """
    run = Path(opts.out)
    if run.is_file():
        ckpt = read_torch_file(run)
        _check_checkpoint(ckpt, run)
        if run.name != "last.pt":
            raise UsageError(f"--resume {run}: give the run folder that holds it ({run.parent}), with the file named "
                             f"last.pt")
        opts.out = run = run.parent
        return ckpt
    last = run / "last.pt"
    if not last.is_file():
        raise UsageError(f"--resume: no checkpoint {last} (a run folder holds last.pt after its first epoch)")
    ckpt = read_torch_file(last)
    _check_checkpoint(ckpt, last)
    return ckpt


def _check_checkpoint(ckpt, path: Path) -> None:
    """``ckpt`` must be what :meth:`_Trainer.save_last` writes.

    Raises:
        WeightsError: a plain state dict (weights only) or anything else, naming what is missing.
    """
    if isinstance(ckpt, dict) and ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        raise WeightsError(f"{path}: holds weights only (a state dict), not a `unetcli train` checkpoint (model, "
                           f"optimizer, epoch, options); to start a new run from these weights use "
                           f"--weights {path} with --model and --data")
    missing = [k for k in _CHECKPOINT_KEYS if not isinstance(ckpt, dict) or k not in ckpt]
    if missing or not isinstance(ckpt["options"], dict):
        raise WeightsError(f"{path}: not a `unetcli train` checkpoint (it lacks {', '.join(missing) or 'options'})")


def new_run_folder(run: Path, auto_name: bool) -> Path:
    """The folder a new run writes: ``run`` itself if it does not exist or is empty; with ``auto_name`` (the
    default ``runs/MODEL``) the first free ``runs/MODEL2``, ``runs/MODEL3`` ... as ultralytics names its runs.

    Raises:
        UsageError: ``run`` is a file, or (a folder the user named) already holds a run or other files: a new run
            never replaces one.
    """
    def taken(folder: Path) -> bool:  # hidden files (stale temporaries, .DS_Store) do not make a run
        return folder.exists() and (not folder.is_dir() or any(not p.name.startswith(".") for p in folder.iterdir()))

    if run.exists() and not run.is_dir():
        raise UsageError(f"--out {run}: is a file; the run folder must be a folder (or not exist yet)")
    if not taken(run):
        return run
    if auto_name:
        n = 2
        while taken(run.with_name(f"{run.name}{n}")):
            n += 1
        return run.with_name(f"{run.name}{n}")
    if (run / "last.pt").is_file():
        raise UsageError(f"--out {run}: already holds a run (last.pt); a new run never replaces it: continue it "
                         f"with --resume {run}, or choose another --out")
    names = sorted(p.name for p in run.iterdir() if not p.name.startswith("."))
    raise UsageError(f"--out {run}: already holds files ({', '.join(names[:3])}{' ...' if len(names) > 3 else ''}); "
                     f"a new run never replaces them: choose another --out (or an empty folder)")


def _param_groups(model: nn.Module, spec: ModelSpec, lr: float) -> list[dict]:
    """Adam parameter groups: a pretrained encoder learns at ``lr x spec.encoder_lr_scale``, the rest at ``lr``.

    Each group carries ``lr_scale`` so the schedule (:func:`epoch_lr`) scales both alike.
    """
    encoder = getattr(model, "encoder", None) if spec.encoder_weights else None
    if encoder is None:
        return [{"params": list(model.parameters()), "lr": lr, "lr_scale": 1.0}]
    own = {id(p) for p in encoder.parameters()}
    return [{"params": list(encoder.parameters()), "lr": lr * spec.encoder_lr_scale,
             "lr_scale": spec.encoder_lr_scale, "name": "encoder"},
            {"params": [p for p in model.parameters() if id(p) not in own], "lr": lr, "lr_scale": 1.0}]


def freeze_batchnorm(model: torch.nn.Module) -> None:
    """Put every BatchNorm layer in eval mode: it normalises with its running statistics and stops updating them.

    With batch statistics, a BatchNorm network computes a slightly different function for every batch, which
    caps how precisely it can fit a deterministic per-pixel target such as rgb2gray (measured here: unet-decolorize
    plateaued near 31 dB validation PSNR). Freezing the statistics after a warm-up, as detection fine-tuning does
    (Detectron's FrozenBatchNorm2d), makes the function fixed and lets the fit continue (38 dB at the same step).
    Dropout and the affine BatchNorm parameters keep training.
    """
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.eval()


def _save_checkpoint(path: Path, state: dict) -> None:
    """``torch.save(state)`` to ``path``, atomically (:func:`unetcli.files.atomic_write`).

    Written through an unbuffered Python file: torch's own file writer reports a full disk as an obscure
    ``RuntimeError`` ("unexpected pos"), a Python file raises ``OSError`` (errno ENOSPC) at the failing write.

    Raises:
        OSError: the file could not be written (the temporary file is removed; ``path`` is unchanged).
    """
    with atomic_write(path) as tmp, open(tmp, "wb", buffering=0) as f:
        try:
            torch.save(state, f)
        except RuntimeError as exc:  # torch's zip writer fails again on closing, hiding the OSError of the write
            if isinstance(exc.__context__, OSError):
                raise exc.__context__ from None
            raise


def _write_metrics(run: Path, history: list[dict], best_key: str) -> None:
    """metrics.csv (one row per epoch) and metrics.png (loss and validation curves), both replaced atomically."""
    keys = list(history[0])
    with writing(run / "metrics.csv", run), atomic_write(run / "metrics.csv") as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(history)

    fig = metrics_figure(history, best_key)
    with writing(run / "metrics.png", run), atomic_write(run / "metrics.png") as tmp_png:
        fig.savefig(tmp_png, format="png", dpi=80)


def metrics_figure(history: list[dict], best_key: str):
    """The figure of metrics.png: training and validation loss (log scale) and the validation metric, per epoch.

    Args:
        history: one dict per epoch with ``epoch`` (1-based), ``train_loss``, ``val_loss`` and ``val_<best_key>``.
        best_key: the task's validation metric (``"psnr"``: axis in dB; ``"iou"``: a fraction in [0, 1]).

    Returns:
        A ``matplotlib.figure.Figure`` with two Axes; both x axes tick whole epochs only, the y labels name the
        quantity and its unit. Built without pyplot (no global state, nothing to close).
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    epochs = [r["epoch"] for r in history]
    fig = Figure(figsize=(10, 4))
    ax1, ax2 = fig.subplots(1, 2)
    ax1.plot(epochs, [r["train_loss"] for r in history], marker="o", label="train loss")
    ax1.plot(epochs, [r["val_loss"] for r in history], marker="o", label="val loss")
    ax1.set_yscale("log")
    ax1.set_ylabel("loss (log scale)")
    ax1.legend()
    ax2.plot(epochs, [r[f"val_{best_key}"] for r in history], marker="o", color="C2")
    ax2.set_ylabel(f"validation {metric_label(best_key)}")
    for ax in (ax1, ax2):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _card(spec: ModelSpec, opts: TrainOptions, params: int, extra: dict) -> dict:
    model_kwargs = task_class(spec).training_model_kwargs(int(opts.classes))  # {"num_classes": C} for segmentation
    return {
        "model": spec.name,
        "architecture": {"class": spec.factory.__name__, "seed": spec.seed, "in_channels": spec.in_channels,
                         "out_channels": model_kwargs.get("num_classes", spec.out_channels),
                         "params": params, **model_kwargs},
        "input": {"normalisation": "float32 sRGB (or luminance) in [0, 1], no mean/std",
                  "size": opts.size, "full_resolution": spec.full_resolution,
                  **({"working_size": spec.working_size, "resize": "longest side, aspect kept"}
                     if spec.working_size else {})},
        "training": {"command": opts.command, "resume_commands": opts.resume_commands, "data": str(opts.data),
                     "val_data": str(opts.val_data) if opts.val_data else None,
                     "epochs": opts.epochs,
                     "batch_size": opts.batch_size, "lr": opts.lr, "lr_schedule": opts.lr_schedule,
                     "init_weights": str(opts.init_weights) if opts.init_weights else None,
                     "crops_per_photo": opts.crops_per_photo, "freeze_bn_after": opts.freeze_bn_after,
                     "freeze_encoder_epochs": opts.freeze_encoder_epochs,
                     "encoder_lr_scale": spec.encoder_lr_scale if spec.encoder_weights else None,
                     "optimizer": "Adam",
                     "loss": spec.loss if opts.teacher is None else f"{spec.loss} against the teacher's probabilities",
                     "seed": opts.seed, "val_split": opts.val_split, **extra.pop("training", {})},
        **extra,
    }


@dataclass
class _Data:
    """Decoded training and validation samples (masks only for segmentation)."""

    train_paths: list[Path]
    train: list[np.ndarray]
    val_paths: list[Path]
    val: list[np.ndarray]
    train_masks: list[np.ndarray] | None = None
    val_masks: list[np.ndarray] | None = None


def _load_data(spec: ModelSpec, opts: TrainOptions, say: Callable[[str], None]) -> _Data:
    """Decode ``--data`` (and ``--val-data``) into memory and split off validation.

    Raises:
        UsageError: unusable data folder (see :meth:`unetcli.tasks.Task.load_training_data`), fewer than 2 photos.
    """
    def load(folder: Path):
        return task_class(spec).load_training_data(spec, folder, int(opts.classes),
                                                   warn=lambda p, r: say(f"skipped {p}: {r}"))

    paths, photos, masks = load(Path(opts.data))
    if opts.val_data is not None:
        val_paths, val_photos, val_masks = load(Path(opts.val_data))
        if not photos or not val_photos:
            raise UsageError(f"--data {opts.data} / --val-data {opts.val_data}: found {len(photos)} training and "
                             f"{len(val_photos)} validation image(s); need at least one of each")
        return _Data(paths, photos, val_paths, val_photos, masks, val_masks)
    if len(photos) < 2:
        raise UsageError(f"--data {opts.data}: found {len(photos)} usable photo(s); need at least 2")
    tr, va = split_indices(len(photos), opts.val_split, opts.seed)

    def pick(items, idx):
        return [items[i] for i in idx] if items is not None else None

    return _Data(pick(paths, tr), pick(photos, tr), pick(paths, va), pick(photos, va), pick(masks, tr),
                 pick(masks, va))


def _sum_metrics(model, loader, task, device, dtype) -> dict[str, float]:
    """Sums of the validation loss and per-image metrics over ``loader``, plus the image count ``n``."""
    model.eval()
    sums: dict[str, float] = {"n": 0.0, "loss": 0.0}
    with torch.inference_mode(), autocast(device, dtype):
        for x, y in loader:
            x = x.to(device).contiguous(memory_format=torch.channels_last)
            y = y.to(device)
            out = model(x)
            sums["loss"] += float(task.loss(out, y)) * len(x)
            for k, v in task.metrics(out, y).items():
                sums[k] = sums.get(k, 0.0) + float(v.float().sum())
            sums["n"] += len(x)
    return sums


def train(opts: TrainOptions, log: Callable[[str], None] = print, show_progress: bool | None = None) -> dict:
    """Train a registry model on a folder of photos; see the module docstring for what the run folder holds.

    Runs as one process, or as one rank of a ``torchrun`` job (:mod:`unetcli.engine.distributed`): each rank
    trains on its own shard of every epoch (``DistributedSampler``), gradients are averaged by
    ``DistributedDataParallel``, metrics are summed over ranks, and rank 0 alone writes the run folder. The
    effective batch is ``batch_size x world_size``; the learning rate is used as given.

    An orchestrator of small named parts (:class:`_Trainer`): options and devices, data, model and optimizer
    (fresh, fine-tuned, or resumed from ``last.pt``), then per epoch the training pass, validation and the run
    folder's records (checkpoint, metrics, best weights and card), and the final weights.

    Args:
        opts: the run's options. With ``opts.resume`` the run folder's ``last.pt`` is loaded and training
            continues at the next epoch (or the next batch, for a checkpoint written within an epoch) up to
            ``opts.epochs``.
        log: receives one line per event (epoch results, warnings); only rank 0 logs.
        show_progress: force the progress display (:class:`unetcli.engine.progress.TrainingProgress`: epoch,
            batch, running loss, last validation metric, elapsed time and ETA; on stderr, rank 0 only) on/off;
            None shows it only when stderr is a terminal.

    Returns:
        The final model card (dict).

    Raises:
        UsageError: bad option, no usable photos, a resume whose fixed options differ, nothing left to train.
        TrainingInterrupted: SIGINT/SIGTERM in a single-process run, raised once ``last.pt`` holds the step
            reached (:class:`StopRequest`); a second Ctrl-C raises ``KeyboardInterrupt`` at once.
    """
    trainer = _Trainer(opts, log, show_progress)
    trainer.prepare_data()
    trainer.build_model()
    # Single-process runs also save within an epoch and stop cleanly on a signal; distributed ranks would have to
    # agree on the step first, so they save at epoch ends only (and a signal stops them as it always did).
    trainer.stop = StopRequest() if not trainer.ctx.enabled else None
    trainer.last_save = time.perf_counter()
    last = trainer.history[-1].get(f"val_{trainer.best_key}") if trainer.history else None
    trainer.progress = TrainingProgress(
        opts.epochs, trainer.start_epoch, len(trainer.sampler) // trainer.batch_size,
        trainer.partial["step"] if trainer.partial is not None else 0, trainer.best_key, last,
        show=trainer.show_progress if trainer.ctx.is_main else False)
    with trainer.stop or contextlib.nullcontext(), trainer.progress:
        for epoch in range(trainer.start_epoch, opts.epochs):
            trainer.run_epoch(epoch)
    return trainer.finish()


class _Trainer:
    """The state of one training run and its parts; :func:`train` calls them in order."""

    def __init__(self, opts: TrainOptions, log: Callable[[str], None], show_progress: bool | None) -> None:
        """Resolve and check the options, set up the (distributed) device, precision and task.

        Raises:
            UsageError: a bad option (see :func:`train`).
        """
        self.ckpt = _resolve_options(opts)
        self.opts, self.log, self.show_progress = opts, log, show_progress
        self.spec = spec = get_spec(opts.model)
        self.run = Path(opts.out)
        if opts.epochs < 1 or opts.batch_size < 1:
            raise UsageError("--epochs and --batch-size must be at least 1")
        if not 0.0 <= opts.val_split < 1.0:
            raise UsageError(f"--val-split {opts.val_split}: must be in [0, 1)")
        self.size, self.lr = int(opts.size), float(opts.lr)
        if self.size % 16:
            raise UsageError(f"--size {self.size}: must be a multiple of 16")
        self.ctx, self.device = init_distributed(opts.device)
        if opts.sync_bn and self.device.type != "cuda":
            raise UsageError("--sync-bn: PyTorch's SyncBatchNorm runs on CUDA devices only")
        self.dtype = resolve_precision(opts.precision, self.device)
        if int(opts.classes) < 1:
            raise UsageError(f"--classes {opts.classes}: must be at least 1")
        self.teacher, self.teacher_card = self._load_teacher() if opts.teacher is not None else (None, None)
        if self.ctx.is_main:  # after the option checks: a refused run leaves no folder behind
            ensure_writable_folder(self.run, "run folder")
        self.model_kwargs = task_class(spec).training_model_kwargs(int(opts.classes))
        self.task = make_task(spec, size=self.size, **self.model_kwargs)
        self.say = log if self.ctx.is_main else (lambda line: None)
        self.best_key, higher_is_better = ((opts.best_metric, opts.best_metric != "loss") if opts.best_metric
                                           else self.task.best_metric)
        self.sign = 1.0 if higher_is_better else -1.0
        self.stop: StopRequest | None = None
        self.save_every_s = max(0.0, float(opts.save_every)) * 60.0
        self.last_save = 0.0
        self.progress: TrainingProgress | None = None

    def prepare_data(self) -> None:
        """Decode the data, record the split (``split.json``), and build the crop datasets and the sampler."""
        opts, spec, ctx, run = self.opts, self.spec, self.ctx, self.run
        if ctx.is_main:
            run.mkdir(parents=True, exist_ok=True)
            remove_stale_temporaries(folder=run)  # left by a run killed while writing a checkpoint
        t_load = time.perf_counter()
        self.data = data = _load_data(spec, opts, self.say)
        if ctx.is_main:
            with writing(run / "split.json", run):
                write_json_atomic(run / "split.json", {"seed": opts.seed, "val_split": opts.val_split,
                                                       "val_data": str(opts.val_data) if opts.val_data else None,
                                                       "train": [str(p) for p in data.train_paths],
                                                       "val": [str(p) for p in data.val_paths]})
        self.say(f"{len(data.train) + len(data.val)} {'image/mask pairs' if data.train_masks else 'photos'} decoded "
                 f"in {time.perf_counter() - t_load:.1f}s: {len(data.train)} train, {len(data.val)} validation")
        self.task.prepare_training(data.train)
        # Models with a working size see crops at the photo's (already scaled) own scale, as prediction sees it.
        at_scale = spec.full_resolution or spec.working_size is not None
        self.train_ds = PhotoCrops(data.train, self.task, self.size, True, at_scale, opts.seed,
                                   crops_per_photo=int(opts.crops_per_photo), masks=data.train_masks)
        val_ds = PhotoCrops(data.val, self.task, self.size, False, at_scale, opts.seed, masks=data.val_masks)
        self.batch_size = max(1, min(opts.batch_size, len(self.train_ds) // ctx.world_size))
        self.sampler = DistributedSampler(self.train_ds, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True,
                                          seed=opts.seed, drop_last=True)
        self.val_shard = Subset(val_ds, range(ctx.rank, len(val_ds), ctx.world_size))

    def build_model(self) -> None:
        """The model (seeded init; fine-tuning weights or a pretrained encoder for new runs), its optimizer, and
        the run's history, restored from ``last.pt`` when resuming; then moved to the device (DDP when distributed).

        Raises:
            UsageError: nothing left to train, or a mid-epoch checkpoint resumed with several processes.
        """
        opts, spec, ckpt, say = self.opts, self.spec, self.ckpt, self.say
        torch.manual_seed(opts.seed)
        model = spec.factory(**self.model_kwargs)
        if opts.init_weights is not None and ckpt is None:  # fine-tuning: start from existing weights
            state, info = load_state(Path(opts.init_weights), spec)
            load_into(model, state, info.path, spec)
            say(f"initialised from {info.path} (sha256 {info.sha256[:12]})")
        elif spec.encoder_weights and ckpt is None:
            info = load_pretrained_encoder(model, spec)
            say(f"encoder initialised from {info.path.name} ({info.card.get('source', {}).get('package', '?')})")
        self.optimizer = torch.optim.Adam(_param_groups(model, spec, self.lr), lr=self.lr)
        self.n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        # The training record of the starting weights goes into every card; read it once.
        # How the starting weights were made: a training run's card, or an initialisation recipe's ("init").
        init_card = read_card(Path(opts.init_weights)) if opts.init_weights else {}
        self.init_training = init_card.get("training") or init_card.get("init")
        self.history: list[dict] = []
        self.best = {"epoch": -1, "value": -math.inf}
        self.start_epoch, self.images_seen, self.wall = 0, 0, 0.0
        self.partial = None  # a checkpoint written within an epoch: where in the epoch it was
        if ckpt is not None:
            self._restore(model)
        if opts.sync_bn and self.ctx.enabled:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.model = model = model.to(device=self.device, memory_format=torch.channels_last)
        # Optimizer state was created for (or loaded onto) the CPU tensors; move it along with the parameters.
        self.optimizer.load_state_dict(self.optimizer.state_dict())
        ctx, device = self.ctx, self.device
        self.net = DDP(model, device_ids=[device.index] if device.type == "cuda" else None) if ctx.enabled else model
        if self.teacher_card:
            say(f"teacher {self.teacher_card['weights']} ({self.teacher_card['model']}, sha256 "
                f"{self.teacher_card['sha256'][:12]}): targets are its probabilities on mixed-up crops")
        say(f"training {spec.name} on {ctx.world_size} x {device} ({precision_name(self.dtype)}), batch "
            f"{self.batch_size}"
            + (f" x {ctx.world_size} processes = {self.batch_size * ctx.world_size} effective" if ctx.enabled else "")
            + f", lr {self.lr:g}, crops {self.size}x{self.size}, epochs {self.start_epoch + 1}..{opts.epochs}")

    def _load_teacher(self) -> tuple[nn.Module, dict]:
        """``--teacher``: the model its weights file names, frozen, in eval mode on the training device, and what
        the card records about it; loaded (once) before the run folder is made, so a bad teacher leaves none.

        Raises:
            WeightsError: see :func:`teacher_spec`; a corrupt file or one of another architecture (:func:`load_model`).
            UsageError: see :func:`teacher_spec`; a segmenter of several classes.
        """
        from unetcli.engine.model import load_model  # the inference loader (engine.model imports the tasks)

        path = Path(self.opts.teacher)
        spec = teacher_spec(path)
        teacher, info = load_model(spec, path, self.device)  # checks the file against its card's sha256
        if teacher.get_submodule(spec.logits_layer).out_channels != 1:
            raise UsageError(f"--teacher {path}: {spec.name} with several classes; distillation needs one")
        teacher.requires_grad_(False)
        return teacher, {"weights": str(info.path), "model": spec.name, "sha256": info.sha256,
                         "targets": "sigmoid of the teacher's logits on each training crop, after mixup (each crop "
                                    "blended with the one before it in the batch, weight uniform in [0, 1])"}

    def _restore(self, model: nn.Module) -> None:
        """Model, optimizer and history from the ``last.pt`` being resumed.

        Raises:
            UsageError: a checkpoint written within an epoch, resumed by a distributed run.
        """
        ckpt = self.ckpt
        model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.history, self.best = ckpt["history"], ckpt["best"]
        self.start_epoch, self.images_seen, self.wall = ckpt["epoch"] + 1, ckpt["images_seen"], ckpt["wall_time_s"]
        self.partial = partial = ckpt.get("partial")
        self.say(f"resumed {self.run} at epoch {self.start_epoch + 1}"
                 + (f", batch {partial['step'] + 1}" if partial is not None else ""))
        if partial is not None and self.ctx.enabled:
            raise UsageError(f"--resume: {self.run}/last.pt was written within an epoch by a single-process run; "
                             f"continue it with one process")

    def save_last(self, finished_epoch: int, in_epoch: dict | None = None) -> None:
        """last.pt after ``finished_epoch`` (0-based; -1: none yet), plus where in the next epoch it stands.

        Raises:
            RunFolderError: it could not be written (the previous last.pt is unchanged).
        """
        with writing(self.run / "last.pt", self.run):
            self._save_last(finished_epoch, in_epoch)
        self.last_save = time.perf_counter()

    def _save_last(self, finished_epoch: int, in_epoch: dict | None) -> None:
        _save_checkpoint(self.run / "last.pt", {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "epoch": finished_epoch,
            "history": self.history, "best": self.best, "images_seen": self.images_seen, "wall_time_s": self.wall,
            "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self.opts).items()},
            "torch_rng": torch.get_rng_state(), "partial": in_epoch,
        })

    def run_epoch(self, epoch: int) -> None:
        """One epoch: seeds, learning rates, the training pass, validation, and the run folder's records.

        Raises:
            TrainingInterrupted: a signal arrived (single-process runs), after ``last.pt`` was saved.
        """
        t0 = time.perf_counter()
        order = self._start_epoch(epoch)
        loss_sum, n, t0 = self._train_pass(epoch, order, t0)
        totals = all_reduce_sums({"loss": loss_sum, "n": float(n)}, self.ctx)
        val_loader = Loader(self.val_shard, batch_size=self.batch_size, num_workers=self.opts.workers)
        val = all_reduce_sums(_sum_metrics(self.model, val_loader, self.task, self.device, self.dtype), self.ctx)
        val = {k: v / val["n"] for k, v in val.items() if k != "n"} if val["n"] else {"loss": float("nan")}
        self._record_epoch(epoch, totals, val, time.perf_counter() - t0)
        self.progress.validated(self.history[-1][f"val_{self.best_key}"])
        stop, opts = self.stop, self.opts
        if stop is not None and stop.signal is not None and epoch + 1 < opts.epochs:
            raise TrainingInterrupted(
                f"{signal.Signals(stop.signal).name} after epoch {epoch + 1}: {self.run}/last.pt saved; continue "
                f"with: unetcli train --resume {self.run} --epochs {opts.epochs}")

    def _start_epoch(self, epoch: int) -> list[int]:
        """Seed the epoch, draw this rank's crop order (logged to ``samples.jsonl`` when distributed) and set each
        parameter group's learning rate (0 for a frozen encoder); returns the crop order."""
        opts, ctx = self.opts, self.ctx
        base = opts.seed * 100_003 + epoch  # dropout and shuffling depend on (seed, epoch, rank) only
        torch.manual_seed(base + 7_919 * ctx.rank)
        random.seed(base)
        np.random.seed(base % 2**32)
        self.train_ds.set_epoch(epoch)
        self.sampler.set_epoch(epoch)
        order = list(iter(self.sampler))  # this rank's crops of the epoch, in training order
        shards = gather_lists(order, ctx)
        if ctx.enabled and ctx.is_main:  # audit trail: which crops each rank trained on this epoch
            with writing(self.run / "samples.jsonl", self.run), open(self.run / "samples.jsonl", "a") as f:
                f.write(json.dumps({"epoch": epoch + 1, "ranks": shards}) + "\n")
        for group in self.optimizer.param_groups:
            frozen = group.get("name") == "encoder" and epoch < int(opts.freeze_encoder_epochs or 0)
            group["lr"] = 0.0 if frozen else epoch_lr(self.lr, opts.lr_schedule, epoch, opts.epochs) * group.get(
                "lr_scale", 1.0)
        return order

    def _train_pass(self, epoch: int, order: list[int], t0: float) -> tuple[float, int, float]:
        """The epoch's optimisation steps (continuing a mid-epoch checkpoint's); saves ``last.pt`` within the
        epoch every ``--save-every`` minutes and on a signal. Returns (loss sum, crops, the epoch's start time).

        Raises:
            TrainingInterrupted: a signal arrived (single-process runs), after ``last.pt`` was saved.
        """
        opts, device, stop = self.opts, self.device, self.stop
        skip, loss_sum, n = 0, 0.0, 0
        if self.partial is not None:  # resumed within this epoch: its first batches are done
            skip, loss_sum, n = self.partial["step"], self.partial["loss_sum"], self.partial["n"]
            t0 -= self.partial["seconds"]
        n_batches = len(order) // self.batch_size
        loader = Loader(self.train_ds, batch_size=self.batch_size, sampler=order[skip * self.batch_size:],
                            drop_last=True, num_workers=opts.workers, pin_memory=device.type == "cuda")
        batches = iter(loader)  # draws the workers' base seed from torch's generator, so before the restore
        if self.partial is not None:
            torch.set_rng_state(self.ckpt["torch_rng"])  # dropout continues as in an uninterrupted run
            self.partial = None
        self._train_mode(epoch)
        self.progress.start_epoch(epoch, skip)
        for step, (x, y) in enumerate(batches, start=skip + 1):
            loss_sum, n = loss_sum + self._step(x, y) * len(x), n + len(x)
            self.progress.step(step, loss_sum / n)
            if stop is None or step == n_batches:
                continue
            if stop.signal is not None or (self.save_every_s
                                           and time.perf_counter() - self.last_save >= self.save_every_s):
                seconds = time.perf_counter() - t0
                self.save_last(epoch - 1, {"epoch": epoch, "step": step, "loss_sum": loss_sum, "n": n,
                                           "seconds": seconds})
                if stop.signal is None and not self.progress.shown:  # a log file (nohup, a batch job): say it lives
                    self.say(f"epoch {epoch + 1}/{opts.epochs}, batch {step}/{n_batches}: loss {loss_sum / n:.5g}, "
                             f"{n / max(seconds, 1e-9):.3g} img/s; checkpoint {self.run}/last.pt")
                if stop.signal is not None:
                    raise TrainingInterrupted(
                        f"{signal.Signals(stop.signal).name} at epoch {epoch + 1}, batch {step} of {n_batches}: "
                        f"{self.run}/last.pt saved; continue with: unetcli train --resume {self.run} "
                        f"--epochs {opts.epochs}")
        return loss_sum, n, t0

    def _train_mode(self, epoch: int) -> None:
        """Training mode, with BatchNorm statistics frozen after ``--freeze-bn-after`` epochs and in a frozen
        encoder (which keeps its ImageNet statistics too)."""
        self.net.train()
        if self.opts.freeze_bn_after is not None and epoch >= self.opts.freeze_bn_after:
            freeze_batchnorm(self.net)
        if epoch < int(self.opts.freeze_encoder_epochs or 0):
            freeze_batchnorm(self.model.encoder)

    def _step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """One optimisation step on a batch (N, C_in, s, s) -> the batch's mean loss.

        With ``--teacher`` the batch is mixed up first (crop i blended with crop i-1, weight U(0, 1) per crop, from
        torch's generator, which checkpoints restore) and the targets ``y`` are replaced by the teacher's
        probabilities on the mixed crops: function matching (Beyer et al. 2022, "Knowledge distillation: A good
        teacher is patient and consistent"), a teacher and student that see the same augmented input.
        """
        x = x.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        y = y.to(self.device, non_blocking=True)
        if self.teacher is not None:
            w = torch.rand(len(x), 1, 1, 1).to(self.device)
            x = (w * x + (1 - w) * x.roll(1, dims=0)).contiguous(memory_format=torch.channels_last)
            with torch.no_grad(), autocast(self.device, self.dtype):
                y = torch.sigmoid(self.teacher(x).float())
        with autocast(self.device, self.dtype):
            out = self.net(x)
        loss = self.task.loss(out, y)  # fp32: tasks cast outputs to float before the loss
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def _record_epoch(self, epoch: int, totals: dict, val: dict, seconds: float) -> None:
        """The epoch's row in the history, the best epoch so far, and (rank 0) the best weights with their card,
        ``metrics.csv``/``.png`` and ``last.pt``; then the epoch's log line."""
        self.wall += seconds
        self.images_seen += int(totals["n"])
        row = {"epoch": epoch + 1, "lr": self.optimizer.param_groups[-1]["lr"],
               "train_loss": totals["loss"] / max(totals["n"], 1), "images_per_s": totals["n"] / seconds,
               "seconds": seconds, **{f"val_{k}": v for k, v in val.items()}}
        row.setdefault(f"val_{self.best_key}", float("nan"))
        self.history.append(row)
        value = row[f"val_{self.best_key}"]
        is_best = not math.isnan(value) and self.sign * value > self.best["value"]
        metrics = {k.removeprefix("val_"): round(v, 5) for k, v in row.items() if k.startswith("val_")}
        if is_best or self.best["epoch"] < 0:
            self.best = {"epoch": epoch + 1, "value": self.sign * value if not math.isnan(value) else -math.inf}
        if self.ctx.is_main:
            if self.best["epoch"] == epoch + 1:
                self._save_best(epoch, metrics)
            _write_metrics(self.run, self.history, self.best_key)
            self.save_last(epoch)
        barrier(self.ctx)
        self.say(f"epoch {epoch + 1}/{self.opts.epochs}: train loss {row['train_loss']:.5f}, "
                 + ", ".join(f"val {k} {v:.4f}" for k, v in metrics.items())
                 + f", {row['images_per_s']:.1f} img/s, {seconds:.0f}s" + (" (best)" if is_best else ""))

    def _save_best(self, epoch: int, metrics: dict) -> None:
        """``best.safetensors`` and its model card after ``epoch`` (0-based)."""
        with writing(self.run / "best.safetensors", self.run):
            self._write_best(epoch, metrics)

    def _write_best(self, epoch: int, metrics: dict) -> None:
        ctx = self.ctx
        save_weights(self.model, self.run / "best.safetensors", _card(self.spec, self.opts, self.n_params, {
            "training": {"init_weights_training": self.init_training,
                         "epochs_done": epoch + 1, "images_seen": self.images_seen,
                         "wall_time_s": round(self.wall, 1), "precision": precision_name(self.dtype),
                         "device": str(self.device), "world_size": ctx.world_size,
                         "effective_batch_size": self.batch_size * ctx.world_size,
                         **({"teacher": self.teacher_card} if self.teacher_card else {}),
                         "train_photos": len(self.data.train), "val_photos": len(self.data.val)},
            "metrics": {"validation": metrics, "best_epoch": epoch + 1, "best_metric": self.best_key}}))

    def finish(self) -> dict:
        """Rank 0: the final weights (the best epoch's, under the model's own name) with the completed card;
        every rank then leaves the process group. Returns the card (``{}`` on other ranks)."""
        ctx, run, spec = self.ctx, self.run, self.spec
        if not ctx.is_main:
            # Wait for rank 0 to write the final weights, then leave the group together: a gloo rank that tears
            # down its group while its peer is still working can abort ("terminate called without an active
            # exception", seen once in CI).
            barrier(ctx)
            shutdown(ctx)
            return {}
        card = json.loads((run / "best.json").read_text())
        card["training"].update({"epochs": self.opts.epochs, "images_seen_total": self.images_seen,
                                 "wall_time_s_total": round(self.wall, 1)})
        card["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        final = run / f"{spec.name}.safetensors"
        best_state, _ = load_state(run / "best.safetensors", spec)  # checks its sha256, casts fp16 -> fp32
        self.model.load_state_dict(best_state)
        with writing(final, run):
            card = save_weights(self.model, final, card)
        self.log(f"wrote {final} (best epoch {card['metrics']['best_epoch']})")
        barrier(ctx)
        shutdown(ctx)
        return card
