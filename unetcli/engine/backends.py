"""Prediction backends: what runs the network inside ``unetcli predict``.

``--weights`` picks the backend by the file it names:

* ``.safetensors`` / a training checkpoint ``.pt`` (or the shipped weights): the PyTorch model
  (:func:`unetcli.engine.model.load_model`);
* ``.onnx`` (written by ``unetcli export --format onnx``): onnxruntime;
* ``.torchscript`` / ``.ts``, or a ``.pt`` that is a TorchScript archive (``unetcli export --format torchscript``):
  ``torch.jit.load``.

Every backend is a callable (N, C_in, H, W) float32 tensor -> (N, C_out, H, W) float32 tensor, so the rest of
the prediction pipeline (reading, batching, the task's pre- and post-processing, writing) is the same for all.
Exported files run in fp32, the precision they were exported and verified in.
"""

from __future__ import annotations

import importlib
import json
import zipfile
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from unetcli.devices import precision_name
from unetcli.engine.model import fold_batchnorm, load_model
from unetcli.errors import UsageError, WeightsError
from unetcli.models.registry import ModelSpec, get_spec

#: ``pip install`` line for the optional ONNX packages (the ``export`` extra in pyproject.toml).
EXPORT_EXTRA = "pip install 'unetcli[export]'"
#: File suffixes of TorchScript archives written by ``unetcli export`` (``.pt`` is recognised by its content).
TORCHSCRIPT_SUFFIXES = (".torchscript", ".ts")
#: Name of the JSON metadata file stored inside TorchScript archives (``torch.jit.save(_extra_files=...)``).
TORCHSCRIPT_METADATA = "unetcli.json"

Backend = Callable[[torch.Tensor], torch.Tensor]


def import_optional(name: str, purpose: str):
    """Import one of the optional ``unetcli[export]`` packages.

    Args:
        name: module name (``"onnx"``, ``"onnxruntime"``, ``"onnxscript"``).
        purpose: what needs it, for the message (``"--format onnx"``).

    Raises:
        UsageError: the package is not installed; the message names it and the ``pip install`` line.
    """
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        missing = isinstance(exc, ModuleNotFoundError) and exc.name == name
        state = "which is not installed" if missing else f"which could not be imported ({exc})"
        raise UsageError(f"{purpose} needs the optional package {name!r}, {state}; "
                         f"install the export extra with: {EXPORT_EXTRA}") from None


def is_torchscript_archive(path: Path) -> bool:
    """True if ``path`` is a TorchScript zip archive (it holds compiled ``code/``), not a ``torch.save`` pickle."""
    try:
        with zipfile.ZipFile(path) as zf:
            return any(n.endswith("/constants.pkl") or "/code/" in n for n in zf.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def backend_name(weights: str | Path | None) -> str:
    """``"pytorch"``, ``"onnxruntime"`` or ``"torchscript"`` for a ``--weights`` value (None: shipped weights)."""
    if weights is None:
        return "pytorch"
    path = Path(weights)
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return "onnxruntime"
    if suffix in TORCHSCRIPT_SUFFIXES or (suffix == ".pt" and path.is_file() and is_torchscript_archive(path)):
        return "torchscript"
    return "pytorch"


def is_exported(weights: str | Path | None) -> bool:
    """True if ``weights`` names an exported model (ONNX or TorchScript) rather than PyTorch weights."""
    return backend_name(weights) != "pytorch"


def _first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message, at most 300 characters."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:300]


def _check_metadata(meta: dict, path: Path, spec: ModelSpec) -> None:
    """The export's own record of which model it holds must name ``spec`` (files without one are accepted)."""
    name = meta.get("model")
    if not name:
        return
    try:
        exported = get_spec(name).name
    except UsageError:
        raise WeightsError(f"{path}: exported from {name!r}, which is not a registry model") from None
    if exported != spec.name:
        raise WeightsError(f"{path}: this export is of {exported}, not {spec.name}; use --model {exported}")


class OnnxRuntimeBackend:
    """Runs an ONNX export with onnxruntime: (N, C_in, H, W) float32 tensor -> (N, C_out, H, W) float32 tensor.

    Args:
        path: the ``.onnx`` file.
        spec: the registry model the file must hold (checked against the file's ``model`` metadata and its
            input channel count).
        device: ``cpu`` runs on onnxruntime's CPUExecutionProvider; ``cuda:N`` on its CUDAExecutionProvider
            (needs the ``onnxruntime-gpu`` package).

    Raises:
        UsageError: onnxruntime missing, or CUDA asked for where onnxruntime has no CUDA provider.
        WeightsError: the file is missing, not a loadable ONNX model, or holds another model.
    """

    def __init__(self, path: Path, spec: ModelSpec, device: torch.device) -> None:
        ort = import_optional("onnxruntime", f"--weights {path.name}")
        if not path.is_file():
            raise WeightsError(f"weights file {path} not found")
        providers = ["CPUExecutionProvider"]
        if device.type == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise UsageError(f"--device {device}: this onnxruntime ({ort.__version__}) has no CUDA provider; "
                                 "install onnxruntime-gpu, or use --device cpu")
            providers = [("CUDAExecutionProvider", {"device_id": device.index or 0})]
        try:
            self.session = ort.InferenceSession(str(path), providers=providers)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types for bad files
            raise WeightsError(f"{path}: not a loadable ONNX model ({_first_line(exc)})") from None
        _check_metadata(self.session.get_modelmeta().custom_metadata_map, path, spec)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise WeightsError(f"{path}: has {len(inputs)} inputs and {len(outputs)} outputs; a unetcli export has "
                               "one of each")
        inp, out = inputs[0], outputs[0]
        if len(inp.shape) != 4 or inp.shape[1] != spec.in_channels:
            raise WeightsError(f"{path}: input {inp.name!r} has shape {inp.shape}; {spec.name} needs "
                               f"(N, {spec.in_channels}, H, W)")
        self.input_name, self.output_name = inp.name, out.name

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, H, W) float tensor (any device, any memory format) -> (N, C_out, H, W) float32 CPU tensor."""
        array = x.detach().to("cpu", torch.float32).contiguous().numpy()
        return torch.from_numpy(self.session.run([self.output_name], {self.input_name: array})[0])


def load_torchscript(path: Path, spec: ModelSpec, device: torch.device) -> nn.Module:
    """A TorchScript export loaded with ``torch.jit.load`` on ``device``, in eval mode.

    Raises:
        WeightsError: the file is missing, not a TorchScript archive, or holds another model.
    """
    if not path.is_file():
        raise WeightsError(f"weights file {path} not found")
    extra = {TORCHSCRIPT_METADATA: ""}
    try:
        module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
    except (RuntimeError, ValueError, OSError) as exc:
        raise WeightsError(f"{path}: not a loadable TorchScript file ({_first_line(exc)})") from None
    try:
        meta = json.loads(extra[TORCHSCRIPT_METADATA] or "{}")
    except ValueError:
        meta = {}
    _check_metadata(meta, path, spec)
    return module.eval()


def prepare_for_inference(model: nn.Module, dtype: torch.dtype | None) -> nn.Module:
    """An eval-mode PyTorch model made cheaper to run without changing what it computes.

    * BatchNorm folded into the preceding convolutions (:func:`unetcli.engine.model.fold_batchnorm`);
    * under bf16/fp16 autocast, the convolution weights stored in that dtype once, instead of autocast casting
      the fp32 weights on every call (the same round-to-nearest cast autocast does, so the outputs are equal);
    * ``channels_last`` memory format (the folded weights are new tensors).

    Measured on the unet-colorize forward (benchmarks/README.md): BatchNorm was about 9 % and the weight casts
    about 8 % of the eager bf16 forward.
    """
    model = fold_batchnorm(model)
    if dtype in (torch.bfloat16, torch.float16):
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                module.to(dtype)
    return model.to(memory_format=torch.channels_last)


def load_backend(spec: ModelSpec, weights: str | Path | None, device: torch.device,
                 dtype: torch.dtype | None = None) -> Backend:
    """The network ``predict`` calls for ``--weights``: a PyTorch model, or an ONNX / TorchScript export.

    Args:
        spec: registry model.
        weights: ``--weights`` (None: the shipped weights); the suffix picks the backend (see the module doc).
        device: where the network runs.
        dtype: the autocast dtype ``predict`` will use (None: fp32).

    Returns:
        A callable (N, C_in, H, W) float32 -> (N, C_out, H, W) float tensor.

    Raises:
        UsageError: reduced precision asked for with an exported file; onnxruntime missing.
        WeightsError: missing, unreadable or mismatched weights / export.
    """
    backend = backend_name(weights)
    if backend == "pytorch":
        return prepare_for_inference(load_model(spec, weights, device)[0], dtype)
    if dtype is not None:
        raise UsageError(f"--precision {precision_name(dtype)}: exported models run in fp32, the "
                         "precision they were verified in; use --precision fp32 or auto")
    path = Path(weights)
    if backend == "onnxruntime":
        return OnnxRuntimeBackend(path, spec, device)
    return load_torchscript(path, spec, device)
