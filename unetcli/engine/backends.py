"""Prediction backends: what runs the network inside ``unetcli predict``.

``--weights`` picks the backend by the file it names:

* ``.safetensors`` / a training checkpoint ``.pt`` (or the shipped weights): the PyTorch model
  (:func:`unetcli.engine.model.load_model`);
* a file of an export format (:data:`unetcli.formats.FORMATS`: ``.onnx`` runs on onnxruntime; ``.torchscript`` /
  ``.ts``, or a ``.pt`` that is a TorchScript archive, on ``torch.jit.load``): that format's loader.

Every backend is a callable (N, C_in, H, W) float32 tensor -> (N, C_out, H, W) float32 tensor, so the rest of
the prediction pipeline (reading, batching, the task's pre- and post-processing, writing) is the same for all.
Exported files run in fp32, the precision they were exported and verified in.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from unetcli.devices import precision_name
from unetcli.engine.model import fold_batchnorm, load_model
from unetcli.errors import UsageError
from unetcli.formats import Backend, format_of
from unetcli.models.registry import ModelSpec


def backend_name(weights: str | Path | None) -> str:
    """``"pytorch"``, or the backend of the export format of a ``--weights`` file (``"onnxruntime"``,
    ``"torchscript"``); None: the shipped weights, PyTorch."""
    fmt = format_of(weights)
    return fmt.backend if fmt is not None else "pytorch"


def is_exported(weights: str | Path | None) -> bool:
    """True if ``weights`` names an exported model (ONNX, TorchScript ...) rather than PyTorch weights."""
    return format_of(weights) is not None


def prepare_for_inference(model: nn.Module, dtype: torch.dtype | None) -> nn.Module:
    """An eval-mode PyTorch model made cheaper to run without changing what it computes.

    * BatchNorm folded into the preceding convolutions (:func:`unetcli.engine.model.fold_batchnorm`);
    * under bf16/fp16 autocast, the convolution weights stored in that dtype once, instead of autocast casting
      the fp32 weights on every call (the same round-to-nearest cast autocast does, so the outputs are equal);
    * ``channels_last`` memory format (the folded weights are new tensors).

    A model whose ``encoder_fp32_inference`` is True runs its encoder in fp32 under autocast
    (:class:`~unetcli.models.unet_pretrained.MobileNetV2UNet`): the encoder's weights stay fp32.

    Measured on the unet-colorize forward (benchmarks/README.md): BatchNorm was about 9 % and the weight casts
    about 8 % of the eager bf16 forward.
    """
    model = fold_batchnorm(model)
    if dtype in (torch.bfloat16, torch.float16):
        fp32 = {id(m) for m in model.encoder.modules()} if getattr(model, "encoder_fp32_inference", False) else set()
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)) and id(module) not in fp32:
                module.to(dtype)
    return model.to(memory_format=torch.channels_last)


def load_backend(spec: ModelSpec, weights: str | Path | None, device: torch.device,
                 dtype: torch.dtype | None = None) -> Backend:
    """The network ``predict`` calls for ``--weights``: a PyTorch model, or an ONNX / TorchScript export.

    Args:
        spec: registry model.
        weights: ``--weights`` (None: the shipped weights); the file picks the backend (see the module doc).
        device: where the network runs.
        dtype: the autocast dtype ``predict`` will use (None: fp32).

    Returns:
        A callable (N, C_in, H, W) float32 -> (N, C_out, H, W) float tensor.

    Raises:
        UsageError: reduced precision asked for with an exported file; a format's runtime missing.
        WeightsError: missing, unreadable or mismatched weights / export.
    """
    fmt = format_of(weights)
    if fmt is None:
        return prepare_for_inference(load_model(spec, weights, device)[0], dtype)
    if dtype is not None:
        raise UsageError(f"--precision {precision_name(dtype)}: exported models run in fp32, the "
                         "precision they were verified in; use --precision fp32 or auto")
    return fmt.load(Path(weights), spec, device)
