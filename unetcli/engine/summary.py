"""Model summaries through torchinfo (run on the ``meta`` device: no memory, no compute, any input size)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import torch
from torchinfo import summary as torchinfo_summary
from torchinfo.enums import Units

from unetcli.errors import UsageError
from unetcli.models.registry import get_spec
from unetcli.tasks import task_class
from unetcli.weights import load_state, shipped_weights


def summarize(name: str, input_size: tuple[int, int] | None = None, batch_size: int = 1, depth: int = 3,
              weights: Path | None = None) -> dict:
    """torchinfo statistics of a registry model for an input (batch_size, in_channels, H, W).

    Args:
        name: registry name or alias.
        input_size: (H, W) in pixels; default the model's training size.
        batch_size: N.
        depth: nesting depth of the layer table.
        weights: a weights file to describe instead of the shipped one (its sha256 is checked against its card).

    Returns:
        dict with ``model``, ``input_size`` [N, C, H, W], ``total_params``, ``trainable_params``,
        ``mult_adds`` (count), memory estimates in MB (``input_mb``, ``forward_backward_mb``, ``params_mb``,
        ``total_mb``), ``layers`` (one dict per row), ``table`` (torchinfo's text) and ``weights``
        (path, sha256, model card; None when there are none).

    Raises:
        UsageError / WeightsError: unknown model; an unreadable or mismatched weights file; a model whose forward
            pass cannot run on the meta device (the message says why).
    """
    spec = get_spec(name)
    path = Path(weights) if weights else shipped_weights(spec)
    kwargs, weights_info = {}, None
    if path is not None:
        state, info = load_state(path, spec)
        kwargs.update(task_class(spec).model_kwargs(spec, state))
        weights_info = {"path": str(info.path), "sha256": info.sha256, "card": info.card}
    h, w = input_size or (spec.train_size, spec.train_size)
    shape = (batch_size, spec.in_channels, h, w)
    stats = _meta_summary(spec, kwargs, shape, depth)
    layers = [{"name": layer.var_name, "type": layer.class_name, "depth": layer.depth,
               "output_size": list(layer.output_size) if layer.output_size else None,
               "params": layer.num_params if not layer.is_recursive else 0, "mult_adds": layer.macs}
              for layer in stats.summary_list]
    mb = stats.to_megabytes
    return {
        "model": spec.name,
        "seed": spec.seed,
        "input_size": list(shape),
        "total_params": stats.total_params,
        "trainable_params": stats.trainable_params,
        "mult_adds": stats.total_mult_adds,
        "input_mb": round(mb(math.prod(shape) * 4), 2),  # float32 (a meta tensor has no storage to measure)
        "forward_backward_mb": round(mb(stats.total_output_bytes), 2),
        "params_mb": round(mb(stats.total_param_bytes), 2),
        "total_mb": round(mb(math.prod(shape) * 4 + stats.total_output_bytes + stats.total_param_bytes), 2),
        "layers": layers,
        "table": _unit_letters(str(stats)),
        "weights": weights_info,
    }


def _meta_summary(spec, kwargs: dict, shape: tuple[int, int, int, int], depth: int):
    """torchinfo's statistics with the model and the input built on PyTorch's ``meta`` device: shapes only, no
    memory and no compute, so any input size is instant (torchinfo's own ``input_size`` makes a real
    ``torch.rand`` of the input first: 1.6 GB for 20000 x 20000).

    Raises:
        UsageError: the forward pass needs real values (``.item()``, data-dependent shapes) or an operation without a
            meta kernel; the message names the root cause.
    """
    with torch.device("meta"):
        model = spec.factory(**kwargs)
        x = torch.empty(shape, dtype=torch.float32)
    try:
        return torchinfo_summary(model, input_data=x, depth=depth, device="meta", verbose=0,
                                 col_names=("output_size", "num_params", "mult_adds"), row_settings=("var_names",))
    except (RuntimeError, NotImplementedError, TypeError, ValueError) as exc:
        cause = exc
        while cause.__cause__ is not None:
            cause = cause.__cause__
        text = next((ln.strip() for ln in str(cause).splitlines() if ln.strip()), type(cause).__name__)
        raise UsageError(f"summary of {spec.name} at {'x'.join(map(str, shape))}: its forward pass cannot run on "
                         f"PyTorch's meta device (shapes without memory or compute, which is how summaries of any "
                         f"size stay instant): {type(cause).__name__}: {text[:300]}") from None


def _unit_letters(table: str) -> str:
    """torchinfo 1.8 on Python 3.11+ prints ``Total mult-adds (Units.GIGABYTES)``: write the unit's letter (``G``)."""
    return re.sub(r"\(Units\.([A-Z]+)\)", lambda m: f"({Units[m[1]].value})" if m[1] in Units.__members__
                  else m[0], table)
