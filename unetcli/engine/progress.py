"""Progress displays (Rich) on stderr, shown only when stderr is a terminal: ``predict``'s bar over the files and
``train``'s one display of the whole run.

Both draw on :data:`unetcli.console.err`, the console every message goes through, so a message printed while a
display is live appears above it instead of tearing it. Displays are transient: they vanish when closed, leaving
only the messages and the final lines. Nothing is ever written to stdout (``--json`` output stays clean).
"""

from __future__ import annotations

import sys

from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from rich.text import Text

from unetcli import console

#: Units of validation metrics as shown in the training display and on metrics.png's axis; metrics not listed
#: are unitless (IoU and Dice are fractions in [0, 1]).
METRIC_UNITS = {"psnr": "dB"}


def metric_name(name: str) -> str:
    """A validation metric's name as written for people: ``"psnr"`` -> ``"PSNR"``, ``"iou"`` -> ``"IoU"``."""
    return {"psnr": "PSNR", "iou": "IoU", "dice": "Dice"}.get(name, name)


def metric_label(name: str) -> str:
    """An axis label: ``"psnr"`` -> ``"PSNR (dB)"``, ``"iou"`` -> ``"IoU (0-1)"`` (a unitless fraction)."""
    unit = METRIC_UNITS.get(name) or ("0-1" if name.split("_")[0] in ("iou", "dice") else None)
    return f"{metric_name(name)} ({unit})" if unit else metric_name(name)


def metric_value(name: str, value: float | None) -> str:
    """A validation metric's value as shown: ``"24.31 dB"`` (PSNR), ``"0.812"`` (IoU); ``"-"`` for None/NaN."""
    if value is None or value != value:
        return "-"
    unit = METRIC_UNITS.get(name)
    return f"{value:.2f} {unit}" if unit else f"{value:.3f}"


def stderr_is_terminal() -> bool:
    """Whether stderr is a terminal (progress displays are shown only then, unless forced)."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


class _RateColumn(ProgressColumn):
    """Items per second, e.g. ``2.9 img/s`` (blank until Rich has a speed estimate)."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:.1f} {self.unit}/s" if task.speed else "", style="progress.data.speed")


class ProgressDisplay:
    """One transient Rich progress display (one task) on stderr, or nothing at all.

    Args:
        columns: Rich progress columns; their text may use ``{task.fields[NAME]}`` for the ``fields``.
        total: the number of steps of the whole display.
        show: True/False forces the display on/off; None shows it only when stderr is a terminal.
        completed: steps already done (a resumed run).
        fields: the initial values of the columns' fields.

    When not shown every method does nothing. Usable as a context manager (closes on exit).
    """

    def __init__(self, *columns: ProgressColumn | str, total: int, show: bool | None = None, completed: int = 0,
                 **fields) -> None:
        self.shown = stderr_is_terminal() if show is None else bool(show)
        self._progress: Progress | None = None
        if not self.shown:
            return
        # No redirection of sys.stdout/sys.stderr: stdout carries results only, and DataLoader workers forked while
        # the display is live must not inherit a proxy of it.
        self._progress = Progress(*columns, console=console.err, transient=True, expand=True,
                                  redirect_stdout=False, redirect_stderr=False)
        self._task = self._progress.add_task("", total=total, completed=completed, **fields)
        self._progress.start()

    def update(self, advance: float = 0, refresh: bool = False, **fields) -> None:
        """Advance by ``advance`` steps and set ``fields``; ``refresh`` redraws at once (else within 0.1 s)."""
        if self._progress is not None:
            self._progress.update(self._task, advance=advance, refresh=refresh, **fields)

    def close(self) -> None:
        """Remove the display from the terminal (idempotent)."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __enter__(self) -> "ProgressDisplay":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def file_progress(total: int, show: bool | None) -> ProgressDisplay:
    """``predict``'s bar: ``━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━  9/20 img  2.9 img/s  0:00:03  ETA 0:00:04``.

    Advance it with ``update(1)`` per file done or failed; ``show`` as in :class:`ProgressDisplay`.
    """
    return ProgressDisplay(BarColumn(bar_width=None), MofNCompleteColumn(), TextColumn("img"), _RateColumn("img"),
                           TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), total=total, show=show)


class TrainingProgress(ProgressDisplay):
    """``train``'s one display of the whole run, e.g.
    ``epoch 3/10 ━━━━━━━━━━━━━━  12/40  loss 0.01234  val PSNR 24.31 dB  0:01:02  ETA 0:03:10``: the epoch, a bar
    over the batches of the run, the batch within the epoch, the epoch's running mean training loss, the last
    validation metric with its unit, elapsed time and the estimated time to the end of the run.

    Args:
        epochs: the run's total epochs.
        start_epoch: the first epoch (0-based) this process trains (resumed runs start later).
        batches: optimisation steps per epoch.
        skip: steps of ``start_epoch`` already done (a checkpoint written within the epoch).
        metric: the validation metric shown (the task's ``best_metric`` name, e.g. ``"psnr"`` or ``"iou"``).
        last_metric: its value after the last finished epoch, if any (a resumed run).
        show: as in :class:`ProgressDisplay`.
    """

    def __init__(self, epochs: int, start_epoch: int, batches: int, skip: int, metric: str,
                 last_metric: float | None = None, show: bool | None = None) -> None:
        self.epochs, self.batches, self.metric = epochs, max(1, batches), metric
        self.metric_name = name = metric_name(metric)
        super().__init__(
            TextColumn("epoch {task.fields[epoch]}"), BarColumn(bar_width=None), TextColumn("{task.fields[batch]}"),
            TextColumn("loss {task.fields[loss]}"), TextColumn("val {task.fields[metric]}"), TimeElapsedColumn(),
            TextColumn("ETA"), TimeRemainingColumn(),
            total=max(0, epochs - start_epoch) * self.batches, completed=skip, show=show,
            epoch=f"{start_epoch + 1}/{epochs}", batch=f"{skip}/{self.batches}", loss="-",
            metric=f"{name} {metric_value(metric, last_metric)}")

    def start_epoch(self, epoch: int, step: int = 0) -> None:
        """Epoch ``epoch`` (0-based) begins at ``step`` (batches already done: a resumed checkpoint)."""
        self.update(epoch=f"{epoch + 1}/{self.epochs}", batch=f"{step}/{self.batches}", loss="-", refresh=True)

    def step(self, step: int, mean_loss: float) -> None:
        """Batch ``step`` (1-based within the epoch) is done; ``mean_loss``: the epoch's running mean loss."""
        self.update(1, batch=f"{step}/{self.batches}", loss=f"{mean_loss:.4g}")

    def validated(self, value: float) -> None:
        """The epoch's validation ``metric`` came out as ``value``."""
        self.update(metric=f"{self.metric_name} {metric_value(self.metric, value)}", refresh=True)
