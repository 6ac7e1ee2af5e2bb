"""ONNX: written by ``torch.onnx.export(..., dynamo=True)``, checked by ``onnx.checker``, run by onnxruntime.

The graph is captured by ``torch.export`` with symbolic batch, height and width, so every shape computation (the
pad to the model's size divisor inside :class:`~unetcli.models.blocks.PaddedUNet` and the crop back) is recorded as
graph arithmetic, and ``torch.export`` raises instead of silently baking in a size if anything would specialise it.
It is the exporter PyTorch maintains (the default since 2.9); the TorchScript-based one (``dynamo=False``) is
deprecated. Its runtime dependency is ``onnxscript`` (part of the ``unetcli[export]`` extra).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from unetcli.errors import ExportError, UsageError, WeightsError
from unetcli.formats import Format, check_metadata, compare, first_line, import_optional
from unetcli.models.spec import ModelSpec

#: The opset the dynamo exporter's op library (torchlib) is written in: no version conversion needed, and the
#: widest runtime support among the opsets it writes natively. Lower opsets fail: ONNX's version converter has no
#: adapter that takes ``Pad`` (the in-graph padding) below 18.
DEFAULT_OPSET = 18
MIN_OPSET = 18
#: Names of the dynamic axes of the input and output.
DYNAMIC_AXES = {0: "batch", 2: "height", 3: "width"}


def write_onnx(model: nn.Module, example: torch.Tensor, path: Path, input_name: str, output_name: str,
               metadata: dict[str, str], opset: int) -> None:
    """Export ``model`` to ONNX at ``path`` (one file, weights inside) with dynamic batch, height and width.

    Args:
        model: the model in eval mode, on the CPU.
        example: (N, C_in, H, W) float32 example input; N, H and W become the symbolic ``batch``, ``height``
            and ``width``.
        path: file to write.
        input_name / output_name: graph input and output names.
        metadata: stored as the model's ``metadata_props``.
        opset: ONNX opset (>= 18).

    Raises:
        ExportError: the exporter failed.
    """
    from unetcli.engine.export import exporter_failure, quiet_exporter
    from unetcli.models.registry import REGISTRY_VERSION

    try:
        with quiet_exporter():
            program = torch.onnx.export(model, (example,), dynamo=True, opset_version=opset, verbose=False,
                                        input_names=[input_name], output_names=[output_name],
                                        dynamic_shapes=(dict(DYNAMIC_AXES),), optimize=True)
    except Exception as exc:  # noqa: BLE001 - torch.export / torch.onnx raise many exception types
        raise ExportError(f"torch.onnx.export failed: {exporter_failure(exc)}") from exc
    # The output's H and W are the input's (PaddedUNet crops back), which torch.export cannot prove symbolically
    # (it keeps Min(height, 16*ceil(height/16))); name them plainly. The verification checks the shape.
    out = program.model.graph.outputs[0]
    out.shape = type(out.shape)([DYNAMIC_AXES[0], out.shape[1], DYNAMIC_AXES[2], DYNAMIC_AXES[3]])
    program.model.metadata_props.update(metadata)
    program.model.doc_string = f"unetcli {metadata['model']}: {metadata['input']} -> {metadata['output']}"
    program.model.model_version = REGISTRY_VERSION
    program.save(str(path), external_data=False)


def verify_onnx(path: Path, reference: torch.Tensor, x: torch.Tensor, input_name: str,
                opset: int) -> tuple[float, str]:
    """``onnx.checker`` (full check), the file's opset, then onnxruntime (CPU) on ``x`` against ``reference``.

    Args:
        path: the ONNX file.
        reference: PyTorch's fp32 output for ``x``, (N, C_out, H, W).
        x: (N, C_in, H, W) float32 input.
        input_name: the graph's input name.
        opset: the opset the file must declare.

    Returns:
        (max abs difference, description of the runtime).

    Raises:
        ExportError: the checker rejects the file, the opset differs, or onnxruntime cannot load or run it.
    """
    from unetcli.engine.export import exporter_failure

    onnx = import_optional("onnx", "--format onnx")
    ort = import_optional("onnxruntime", "--format onnx")
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:  # noqa: BLE001 - ValidationError, InferenceError, DecodeError, OSError ...
        raise ExportError(f"onnx.checker rejected the export: {exporter_failure(exc)}") from exc
    declared = {o.domain: o.version for o in onnx.load(str(path), load_external_data=False).opset_import}
    if declared.get("", declared.get("ai.onnx")) != opset:
        raise ExportError(f"the exporter wrote opset {declared.get('', declared.get('ai.onnx'))}, not the "
                          f"requested {opset}")
    runtime = f"onnxruntime {ort.__version__} (CPUExecutionProvider)"
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        out = session.run(None, {input_name: x.numpy()})[0]
    except Exception as exc:  # noqa: BLE001 - onnxruntime's own exception types
        raise ExportError(f"{runtime} could not run the export: {exporter_failure(exc)}") from exc
    return compare(out, reference, runtime), runtime


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
            raise WeightsError(f"{path}: not a loadable ONNX model ({first_line(exc)})") from None
        check_metadata(self.session.get_modelmeta().custom_metadata_map, path, spec)
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


class OnnxFormat(Format):
    """``--format onnx``: ``.onnx`` files, opset 18 or newer, for onnxruntime, OpenVINO, TensorRT ..."""

    name = "onnx"
    backend = "onnxruntime"
    default_suffix = ".onnx"
    suffixes = (".onnx",)
    has_checker = True
    requires = ("onnx", "onnxruntime", "onnxscript")

    def settings(self, opset: int | None) -> dict:
        opset = DEFAULT_OPSET if opset is None else int(opset)
        if opset < MIN_OPSET:
            raise UsageError(f"--opset {opset}: the ONNX export needs opset {MIN_OPSET} or newer (the exporter's "
                             f"operators are written for {DEFAULT_OPSET}; ONNX cannot convert its Pad lower)")
        return {"opset": opset}

    def exporter(self, settings: dict) -> str:
        return f"torch {torch.__version__} torch.onnx.export(dynamo=True), opset {settings['opset']}"

    def write(self, model, example, path, input_name, output_name, metadata, settings) -> None:
        write_onnx(model, example, path, input_name, output_name, metadata, settings["opset"])

    def verify(self, path, reference, x, input_name, settings) -> tuple[float, str]:
        return verify_onnx(path, reference, x, input_name, settings["opset"])

    def load(self, path: Path, spec: ModelSpec, device: torch.device) -> OnnxRuntimeBackend:
        return OnnxRuntimeBackend(path, spec, device)

    def model_name(self, path: Path) -> str | None:
        ort = import_optional("onnxruntime", f"unetcli.load({path.name!r})")
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.get_modelmeta().custom_metadata_map.get("model")
