"""``unetcli train``: train a registry model on a folder of photos."""

from __future__ import annotations

import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from unetcli import console
from unetcli.cli import skip_teardown
from unetcli.cli.options import MODEL_HELP, DeviceOpt, PrecisionOpt, WorkersOpt, complete_from, model_choices
from unetcli.devices import Precision
from unetcli.engine.distributed import launch_local
from unetcli.engine.train import TrainOptions
from unetcli.engine.train import train as run_train
from unetcli.errors import EXIT_INTERRUPTED, UsageError


class LrSchedule(str, Enum):
    """``--lr-schedule`` choices (:func:`unetcli.engine.train.epoch_lr`)."""

    constant = "constant"
    cosine = "cosine"


def train(
    model: Annotated[Optional[str], typer.Option(
        "--model", "-m", rich_help_panel="Model and data", metavar="MODEL", show_default=False,
        autocompletion=complete_from(model_choices),
        help=MODEL_HELP[:-1] + "; with --resume, the run's.")] = None,
    data: Annotated[Optional[Path], typer.Option(
        "--data", rich_help_panel="Model and data", metavar="DIR",
        help="Folder of photos (searched recursively); segmentation: a folder with images/ and masks/ (same file "
             "stems), or milesial/Pytorch-UNet's imgs/ and masks/NAME_mask.gif; masks 8-bit PNG or GIF, 0/255 (or "
             "0/1) for one class, indices 0..N-1 for several.")] = None,
    val_data: Annotated[Optional[Path], typer.Option(
        "--val-data", rich_help_panel="Model and data", metavar="DIR",
        help="Validate on this folder (same layout as --data) instead of a random --val-split of --data, e.g. to "
             "keep whole people or scenes unseen.")] = None,
    classes: Annotated[Optional[int], typer.Option(
        "--classes", rich_help_panel="Model and data", min=1, metavar="N",
        help="unet-seg: number of classes (1: sigmoid, BCE + soft Dice; N > 1: softmax, cross-entropy + soft Dice, "
             "class 0 = background). [default: 1]")] = None,
    out: Annotated[Optional[Path], typer.Option(
        "--out", "-o", rich_help_panel="Run folder", metavar="DIR",
        help="Run folder; one that holds a run is refused (continue it with --resume). [default: runs/MODEL, or "
             "runs/MODEL2 ... when that holds a run]")] = None,
    resume: Annotated[Optional[Path], typer.Option(
        "--resume", rich_help_panel="Run folder", metavar="RUN",
        help="Continue the run in this folder from its last checkpoint (model, data and hyper-parameters come "
             "from the run).")] = None,
    weights: Annotated[Optional[Path], typer.Option(
        "--weights", "-w", rich_help_panel="Run folder", metavar="FILE",
        help="Start from these weights (.safetensors) instead of a random initialisation (fine-tuning).")] = None,
    teacher: Annotated[Optional[Path], typer.Option(
        "--teacher", rich_help_panel="Model and data", metavar="FILE",
        help="Segmentation: learn these weights' outputs (a one-class segmenter's .safetensors) instead of the "
             "masks, on mixed-up crops (knowledge distillation; masks still score validation).")] = None,
    epochs: Annotated[Optional[int], typer.Option(
        "--epochs", "-e", rich_help_panel="Schedule", min=1, metavar="N",
        help="Total epochs of the run. [default: 10; with --resume, the run's own]")] = None,
    batch_size: Annotated[Optional[int], typer.Option(
        "--batch-size", "-b", rich_help_panel="Schedule", min=1, metavar="N",
        help="Crops per batch. [default: 16]")] = None,
    lr: Annotated[Optional[float], typer.Option(
        "--lr", rich_help_panel="Schedule", metavar="LR",
        help="Adam learning rate, a finite number > 0. [default: the model's, 1e-3]")] = None,
    size: Annotated[Optional[int], typer.Option(
        "--size", rich_help_panel="Schedule", min=16, metavar="PX",
        help="Crop size in pixels (multiple of 16). [default: the model's]")] = None,
    crops_per_photo: Annotated[Optional[int], typer.Option(
        "--crops-per-photo", rich_help_panel="Schedule", min=1, metavar="N",
        help="Random crops drawn from each training photo per epoch. [default: 1]")] = None,
    freeze_bn_after: Annotated[Optional[int], typer.Option(
        "--freeze-bn-after", rich_help_panel="Schedule", min=0, metavar="EPOCH",
        help="From this epoch on, BatchNorm layers use fixed running statistics (precise regression fits; "
             "fine-tuning). [default: never]")] = None,
    freeze_encoder_epochs: Annotated[Optional[int], typer.Option(
        "--freeze-encoder-epochs", rich_help_panel="Schedule", min=0, metavar="N",
        help="Models with a pretrained encoder: train only the decoder for the first N epochs (small data "
             "sets). [default: 0]")] = None,
    best_metric: Annotated[Optional[str], typer.Option(
        "--best-metric", rich_help_panel="Schedule", metavar="NAME",
        help="Validation metric that picks best.safetensors (and the final weights): loss (lowest), or the highest "
             "psnr, colorfulness (colorize), iou, dice (segmentation). [default: psnr; iou for segmentation]")] = None,
    val_split: Annotated[Optional[float], typer.Option(
        "--val-split", rich_help_panel="Model and data", min=0.0, max=0.9, metavar="F",
        help="Fraction of photos held out for validation. [default: 0.1]")] = None,
    seed: Annotated[Optional[int], typer.Option(
        "--seed", rich_help_panel="Schedule", metavar="N",
        help="Random seed for split, init and augmentation. [default: 0]")] = None,
    lr_schedule: Annotated[Optional[LrSchedule], typer.Option(
        "--lr-schedule", rich_help_panel="Schedule", metavar="NAME",
        help="constant (the seeds') or cosine (anneal to 1% of --lr over --epochs). [default: constant]")] = None,
    save_every: Annotated[float, typer.Option(
        "--save-every", rich_help_panel="Run folder", min=0.0, metavar="MIN",
        help="Minutes between checkpoints within an epoch, so a killed run loses at most this much (0: only at the "
             "end of each epoch; single-process runs). Logged to a file, each says how far the run is.")] = 10.0,
    nproc: Annotated[int, typer.Option(
        "--nproc", min=1, metavar="N",
        help="Train with N processes on this machine (runs this command under torchrun; for several machines call "
             "torchrun yourself, see the README).")] = 1,
    sync_bn: Annotated[bool, typer.Option(
        "--sync-bn", help="Distributed runs: BatchNorm statistics over the whole effective batch (SyncBatchNorm), "
                          "for small per-process batches.")] = False,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = Precision.auto,
    workers: WorkersOpt = 2,
) -> None:
    """Train MODEL on the photos in DATA; writes checkpoints, metrics.csv/png and final weights into the run folder.

    The target is computed from each photo (gray models: skimage rgb2gray; colorize: the photo's colours);
    unet-seg learns the masks in DATA/masks.

    Ctrl-C or SIGTERM stops after the current batch with a checkpoint (exit 130); --resume RUN continues from it,
    within the epoch too; model, data and hyper-parameters then come from the run (leave their options out).
    """
    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        raise typer.Exit(launch_local(nproc, _without_nproc(sys.argv[1:])))
    if resume is not None and out is not None and Path(out) != Path(resume):
        raise UsageError("--resume RUN already names the run folder; leave out --out")
    if resume is None and model is None:
        raise UsageError("train needs --model and --data (or --resume RUN)")
    run_dir = resume or out or Path("runs") / model
    opts = TrainOptions(out=Path(run_dir), model=model, data=data, val_data=val_data, classes=classes,
                        epochs=epochs, batch_size=batch_size, lr=lr,
                        size=size, val_split=val_split, seed=seed,
                        lr_schedule=lr_schedule.value if lr_schedule is not None else None, init_weights=weights,
                        crops_per_photo=crops_per_photo, freeze_bn_after=freeze_bn_after,
                        freeze_encoder_epochs=freeze_encoder_epochs, best_metric=best_metric, sync_bn=sync_bn,
                        teacher=teacher,
                        save_every=save_every,
                        device=device, precision=precision.value,
                        workers=workers, resume=resume is not None, auto_name=resume is None and out is None)
    try:
        card = run_train(opts, log=lambda line: console.err.print(escape(line)))
    except KeyboardInterrupt:  # before training started, or a second Ctrl-C: no new checkpoint was written
        console.err.print(f"interrupted: {escape(str(opts.out))}/last.pt, if there is one, is the last complete "
                          "checkpoint")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    if card:  # rank 0 (or a single process) reports the weights it wrote
        console.out.print(escape(str(Path(opts.out) / f"{card['model']}.safetensors")))
    if "WORLD_SIZE" in os.environ:
        # A torchrun rank whose files are written and whose process group is left: no interpreter teardown. In it
        # the DDP reducer still holds the gloo process group, whose C++ worker threads are then destroyed while
        # joinable ("terminate called without an active exception", SIGABRT; twice in CI, never reproduced in 22
        # runs here; pytorch/pytorch#179291 describes the same teardown crash).
        skip_teardown()


def _without_nproc(argv: list[str]) -> list[str]:
    """``argv`` without ``--nproc N`` / ``--nproc=N`` (torchrun starts the processes instead)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out
