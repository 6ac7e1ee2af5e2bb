"""Tasks: what turns a registry model into an image transform (pre-processing, training target, loss,
metrics, post-processing). One class per kind of transform; the registry names the task of each model."""

from __future__ import annotations

from unetcli.errors import UsageError
from unetcli.models.registry import ModelSpec
from unetcli.tasks.base import Task
from unetcli.tasks.colorize import ColorizeTask
from unetcli.tasks.colorize_lab import LabColorizeTask
from unetcli.tasks.gray import DecolorizeTask
from unetcli.tasks.segment import SegmentTask

TASKS: dict[str, type[Task]] = {"colorize": ColorizeTask, "colorize-lab": LabColorizeTask, "decolorize": DecolorizeTask,
                                "segment": SegmentTask}
_BUILT_IN = frozenset(TASKS)


def register_task(name: str, cls: type[Task]) -> type[Task]:
    """Add a task (a plugin's, a recipe's or a test's) under ``name``, for :func:`unetcli.models.register_model`
    specs whose ``task`` is ``name``; returns ``cls``.

    Raises:
        UsageError: the name is taken, or ``cls`` is not a :class:`Task` subclass.
    """
    if name in TASKS:
        raise UsageError(f"register_task({name!r}): a task of that name already exists")
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise UsageError(f"register_task({name!r}): {cls!r} is not a unetcli.tasks.Task subclass")
    TASKS[name] = cls
    return cls


def unregister_task(name: str) -> None:
    """Remove a task added with :func:`register_task`; unknown names and the built-in tasks are left alone."""
    if name not in _BUILT_IN:
        TASKS.pop(name, None)


def task_class(spec: ModelSpec) -> type[Task]:
    """The :class:`Task` subclass of a registry model (its class-level capabilities: options, export names ...)."""
    return TASKS[spec.task]


def make_task(spec: ModelSpec, **options) -> Task:
    """The task object for a registry model, configured with run options (``size``, ``threshold`` ...)."""
    return TASKS[spec.task](spec, **options)


__all__ = ["TASKS", "Task", "make_task", "register_task", "task_class", "unregister_task", "ColorizeTask",
           "LabColorizeTask", "DecolorizeTask", "SegmentTask"]
