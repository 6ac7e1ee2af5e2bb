"""Tasks: what turns a registry model into an image transform (pre-processing, training target, loss,
metrics, post-processing). One class per kind of transform; the registry names the task of each model."""

from __future__ import annotations

from unetcli.models.registry import ModelSpec
from unetcli.tasks.base import Task
from unetcli.tasks.colorize import ColorizeTask
from unetcli.tasks.colorize_lab import LabColorizeTask
from unetcli.tasks.gray import DecolorizeTask
from unetcli.tasks.segment import SegmentTask

TASKS: dict[str, type[Task]] = {"colorize": ColorizeTask, "colorize-lab": LabColorizeTask, "decolorize": DecolorizeTask,
                                "segment": SegmentTask}


def task_class(spec: ModelSpec) -> type[Task]:
    """The :class:`Task` subclass of a registry model (its class-level capabilities: options, export names ...)."""
    return TASKS[spec.task]


def make_task(spec: ModelSpec, **options) -> Task:
    """The task object for a registry model, configured with run options (``size``, ``threshold`` ...)."""
    return TASKS[spec.task](spec, **options)


__all__ = ["TASKS", "Task", "make_task", "task_class", "ColorizeTask", "LabColorizeTask", "DecolorizeTask",
           "SegmentTask"]
