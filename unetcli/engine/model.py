"""Building a registry model with its weights on a device, shared by predict, summary, export and train."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from unetcli.errors import WeightsError
from unetcli.models.registry import ModelSpec
from unetcli.tasks import task_class
from unetcli.weights import WeightsInfo, load_into, load_state, shipped_weights


def load_model(spec: ModelSpec, weights: str | Path | None = None, device: torch.device | None = None,
               **model_kwargs) -> tuple[nn.Module, WeightsInfo]:
    """The model of ``spec`` with trained weights, in eval mode, on ``device`` in ``channels_last`` layout.

    Args:
        spec: registry entry.
        weights: a ``.safetensors`` file (or a ``unetcli train`` checkpoint ``.pt``); None takes the shipped
            ``weights/<name>.safetensors``.
        device: target device (default CPU).
        **model_kwargs: passed to the model class; what is not given is read from the weights by the task
            (:meth:`unetcli.tasks.Task.model_kwargs`: ``num_classes`` for segmentation, from ``out.weight``).

    Raises:
        WeightsError: no shipped weights and none given, or the file is missing, corrupt or of another
            architecture.
    """
    path = Path(weights) if weights is not None else shipped_weights(spec)
    if path is None:
        raise WeightsError(f"{spec.name} has no shipped weights yet; train some with "
                           f"`unetcli train --model {spec.name} ...` and pass --weights RUN/{spec.name}.safetensors")
    state, info = load_state(path, spec)
    model = spec.factory(**{**task_class(spec).model_kwargs(spec, state), **model_kwargs})
    load_into(model, state, path, spec)
    device = device or torch.device("cpu")
    model = model.to(device=device, memory_format=torch.channels_last).eval()
    return model, info


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every eval-mode ``BatchNorm2d`` that directly follows a ``Conv2d`` in an ``nn.Sequential`` into that
    convolution (``torch.nn.utils.fusion.fuse_conv_bn_eval``), in place; the BatchNorm becomes ``nn.Identity``.

    Inference only: the folded convolution computes ``BN(conv(x))`` with BatchNorm's running statistics in one op
    (equal to fp32 rounding), which saves the BatchNorm pass over every activation (about 9 % of the unet-colorize
    forward on this CPU, benchmarks/README.md). Returns ``model``.

    Raises:
        AssertionError: (from PyTorch) a module is in training mode.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for seq in model.modules():
        if not isinstance(seq, nn.Sequential):
            continue
        for i in range(len(seq) - 1):
            conv, bn = seq[i], seq[i + 1]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats:
                seq[i] = fuse_conv_bn_eval(conv, bn)
                seq[i + 1] = nn.Identity()
    return model
