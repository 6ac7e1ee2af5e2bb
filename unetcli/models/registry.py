"""The model registry: the table of every model file's :class:`ModelSpec`; ``create_model`` / ``list_models`` /
``get_spec``.

Follows timm's ``create_model(name)`` / ``list_models(pattern)`` and segmentation_models_pytorch's
"unknown name -> error listing the valid names", with the per-model defaults in a dataclass (timm's
``pretrained_cfg``) that each model file declares beside its module. Registration is an explicit table, not an
import-time side effect; :func:`register_model` adds a plugin's (or a test's) model at run time.
"""

from __future__ import annotations

import fnmatch

from torch import nn

from unetcli.errors import UsageError
from unetcli.models import colorize, colorize_mobilenetv2, decolorize, seg_mobilenetv2, segmentation, simple_black
from unetcli.models.spec import ModelSpec

#: Bumped whenever an architecture or a spec default changes in a way that makes old weight files invalid.
REGISTRY_VERSION = 1

#: The registry, in ``unetcli models`` order: each model file's ``SPEC``, collected explicitly.
_SPECS: list[ModelSpec] = [colorize.SPEC, colorize_mobilenetv2.SPEC, decolorize.SPEC, segmentation.SPEC,
                           seg_mobilenetv2.SPEC, simple_black.SPEC]

_BY_NAME: dict[str, ModelSpec] = {key: spec for spec in _SPECS for key in (spec.name, *spec.aliases)}


def register_model(spec: ModelSpec) -> ModelSpec:
    """Add a model (a plugin's, or a test's) to the registry; ``predict``, ``summary``, ``export``, ``train`` and
    :func:`unetcli.load` then accept its name and aliases. Returns ``spec``.

    Raises:
        UsageError: the name or an alias is already taken, or ``spec.task`` is not a known task (built in, or added
            with :func:`unetcli.tasks.register_task`).
    """
    from unetcli.tasks import TASKS  # tasks import the registry's ModelSpec: imported here, not at module level

    if spec.task not in TASKS:
        raise UsageError(f"register_model({spec.name!r}): unknown task {spec.task!r}; known: {', '.join(TASKS)}")
    taken = [key for key in (spec.name, *spec.aliases) if key in _BY_NAME]
    if taken:
        raise UsageError(f"register_model({spec.name!r}): {', '.join(taken)} already in the registry")
    _SPECS.append(spec)
    _BY_NAME.update({key: spec for key in (spec.name, *spec.aliases)})
    return spec


def unregister_model(name: str) -> None:
    """Remove a model added with :func:`register_model` (by name or alias); unknown names are ignored."""
    spec = _BY_NAME.get(name)
    if spec is None:
        return
    _SPECS.remove(spec)
    for key in (spec.name, *spec.aliases):
        _BY_NAME.pop(key, None)


def list_models(pattern: str = "*") -> list[str]:
    """Registry names (not aliases) matching a shell-style ``pattern``, in registry order."""
    return [s.name for s in _SPECS if fnmatch.fnmatch(s.name, pattern)]


def get_spec(name: str) -> ModelSpec:
    """The spec for a registry name or alias.

    Raises:
        UsageError: ``name`` is not in the registry; the message lists the valid names and aliases.
    """
    try:
        return _BY_NAME[name]
    except KeyError:
        valid = ", ".join(sorted(_BY_NAME))
        raise UsageError(f"unknown model {name!r}; valid names: {valid}") from None


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a freshly initialised model by registry name or alias (weights are loaded by :mod:`unetcli.weights`).

    Args:
        name: registry name or alias.
        **kwargs: passed to the model class (``num_classes`` for ``unet-seg``).

    Raises:
        UsageError: unknown name.
    """
    return get_spec(name).factory(**kwargs)
