"""The model registry: one :class:`ModelSpec` line per model, and ``create_model`` / ``list_models`` / ``get_spec``.

Follows timm's ``create_model(name)`` / ``list_models(pattern)`` and segmentation_models_pytorch's
"unknown name -> error listing the valid names", with the per-model defaults in a dataclass (timm's
``pretrained_cfg``). Registration is an explicit table, not an import-time side effect.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Callable

from torch import nn

from unetcli.errors import UsageError
from unetcli.models.colorize import UNetColorize
from unetcli.models.decolorize import UNetDecolorize
from unetcli.models.segmentation import UNetSegmentation
from unetcli.models.simple_black import SimpleBlack

#: Bumped whenever an architecture or a spec default changes in a way that makes old weight files invalid.
REGISTRY_VERSION = 1


@dataclass(frozen=True)
class ModelSpec:
    """What the CLI, the engine, ``summary`` and ``export`` need to know about one registry model.

    Attributes:
        name: registry name, e.g. ``"unet-colorize"``.
        aliases: short names that resolve to ``name`` (``"colorize"``).
        task: the transform the model performs, a key of :data:`unetcli.tasks.TASKS`
            (``"colorize"``: gray -> RGB, ``"decolorize"``: RGB -> gray, ``"segment"``: RGB -> mask).
        factory: builds the ``nn.Module``; keyword arguments (``num_classes``) are passed through.
        in_channels: C of the input (N, C, H, W); inputs are float32 in [0, 1].
        out_channels: C of the output (for ``unet-seg`` the default ``num_classes``).
        params: trainable parameter count of the default configuration (as torchinfo reports it).
        seed: the seed document (in ``shared/seeds``) the architecture follows.
        train_size: side in pixels of the square crops the model is trained on; also the default
            ``summary --input-size``.
        full_resolution: True if the network runs on the whole photo at its own size (per-pixel models);
            False if it runs at a working size and the task recombines with the full-resolution photo.
        loss: the seed's training loss (``"mae"``, ``"mse"``, ``"bce+dice"``).
        lr: default Adam learning rate.
        description: one line for ``unetcli models``.
        bf16_faithful: whether ``--precision auto`` may run the model in bf16 autocast: True where bf16
            outputs were measured to stay within 40 dB PSNR of fp32 on real photos and bf16 is faster.
    """

    name: str
    aliases: tuple[str, ...]
    task: str
    factory: Callable[..., nn.Module]
    in_channels: int
    out_channels: int
    params: int
    seed: str
    train_size: int
    full_resolution: bool
    loss: str
    lr: float = 1e-3
    description: str = ""
    bf16_faithful: bool = True


_SPECS: tuple[ModelSpec, ...] = (
    ModelSpec("unet-colorize", ("colorize",), "colorize", UNetColorize, 1, 3, 31_042_499,
              "001_2baa20e9c5589985.txt (Keras: 000_5f12bff34383d507.txt)", 128, False, "mse",
              description="gray photo -> colour (CIE Lab a/b predicted, full-resolution L kept)"),
    ModelSpec("unet-decolorize", ("decolorize",), "decolorize", UNetDecolorize, 3, 1, 1_944_049,
              "003_18f7aa69c876128b.txt (unet_black)", 128, True, "mae",
              description="colour photo -> gray (learned skimage rgb2gray)"),
    ModelSpec("unet-seg", ("seg",), "segment", UNetSegmentation, 3, 1, 31_043_521,
              "002_e65f0e3ed9642e47.txt (UNET(n_classes))", 128, False, "bce+dice",
              description="photo -> person mask (sigmoid for 1 class, softmax for more)"),
    ModelSpec("simple-black", (), "decolorize", SimpleBlack, 3, 1, 12,
              "003_18f7aa69c876128b.txt (simple_black)", 128, True, "mae",
              description="colour photo -> gray with two 1x1 convs (12 weights)", bf16_faithful=False),
)

_BY_NAME: dict[str, ModelSpec] = {}
for _spec in _SPECS:
    for _key in (_spec.name, *_spec.aliases):
        _BY_NAME[_key] = _spec


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
