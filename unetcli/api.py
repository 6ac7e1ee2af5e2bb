"""The Python API: :func:`load` a model as a :class:`~unetcli.engine.predictor.Predictor`, :func:`list_models`.

As rembg's ``remove()``, Real-ESRGAN's ``RealESRGANer`` and ultralytics' ``YOLO(...)``, one call gives an object
that turns images into images by the same rules as the command line (``unetcli predict`` runs the same object)::

    import unetcli
    colorize = unetcli.load("colorize")                  # name, alias, or a weights file
    rgb = colorize(Image.open("old.jpg"))                # PIL image in -> PIL image out, full size
    masks = unetcli.load("seg", device="cpu", precision="fp32").predict_batch([im1, im2])
"""

from __future__ import annotations

import os
from pathlib import Path

from unetcli.errors import UsageError, WeightsError


def list_models(pattern: str = "*") -> list[str]:
    """Registry names (not aliases) matching the shell-style ``pattern``, in ``unetcli models`` order."""
    from unetcli.models.registry import list_models as registry_list

    return registry_list(pattern)


def model_of_weights(path: str | os.PathLike) -> str:
    """The registry name a weights file records: its model card or safetensors header (``.safetensors``), the
    training options of a checkpoint (``.pt``, written by ``unetcli train``), or the export's metadata (``.onnx``,
    TorchScript). ``unetcli predict --weights FILE`` without ``--model`` and :func:`load` (FILE) use it.

    Raises:
        WeightsError: the file is missing, not a regular file, empty, unreadable (a pickle of Python objects is
            never unpickled) or records no model (a plain state dict); one line naming the file.
        UsageError: an ``.onnx`` file without onnxruntime installed.
    """
    from unetcli.formats import format_of
    from unetcli.weights import check_weights_file, read_torch_file

    path = Path(path)
    check_weights_file(path)
    fmt = format_of(path)
    try:
        if fmt is not None:
            name = fmt.model_name(path)
        elif path.suffix == ".pt":
            ckpt = read_torch_file(path)
            options = ckpt.get("options") if isinstance(ckpt, dict) else None
            name = options.get("model") if isinstance(options, dict) else None
        else:
            from safetensors import safe_open

            from unetcli.weights import read_card

            name = read_card(path).get("model")
            if not name:
                with safe_open(str(path), framework="pt") as f:
                    name = (f.metadata() or {}).get("model")
    except (WeightsError, UsageError):
        raise
    except Exception as exc:  # noqa: BLE001 - each format's reader raises its own types for a bad file
        raise WeightsError(f"{path}: not a readable weights file ({exc})") from None
    if not name:
        raise WeightsError(f"{path}: the file does not record its model; name the model too (unetcli predict "
                           f"--model MODEL; unetcli.load(MODEL, weights=...))")
    return name


def load(model: str | os.PathLike, *, weights: str | os.PathLike | None = None, device: str = "auto",
         precision: str = "auto", tile: int = 512, size: int | None = None, batch_size: int = 8,
         output_type: str | None = None, threshold: float | None = None, palette: bool | None = None,
         compile: bool = False):
    """A registry model with its weights, ready to transform images: a :class:`~unetcli.engine.predictor.Predictor`.

    Args:
        model: registry name or alias (``"colorize"``, ``"unet-seg"``; see :func:`list_models`), or a weights
            file (``.safetensors``, checkpoint ``.pt``, ``.onnx``, ``.torchscript``) that records its model.
        weights: weights file for ``model`` (default: the shipped weights).
        device: ``auto`` (CUDA if available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.
        precision: ``auto``, ``fp32``, ``bf16`` or ``fp16`` (exports: fp32 only).
        tile: full-resolution models run images with a side above ``tile`` px on overlapping tiles (0: never).
        size: working size for working-size models (default: the size the weights were trained at).
        batch_size: images per forward pass in ``predict_batch`` (and tiles per pass).
        output_type: segmentation: ``mask`` (default), ``overlay``, ``cutout`` or ``palette``
            (:data:`unetcli.outputs.RENDERERS`).
        threshold: segmentation: probability in (0, 1) above which a pixel is foreground (default 0.5).
        palette: segmentation masks as palette images (same as ``output_type="palette"``).
        compile: ``torch.compile`` the model (PyTorch weights only).

    Returns:
        A predictor: ``predictor(image)`` takes a PIL image or a uint8 array (H, W), (H, W, 3), (H, W, 4) and
        returns a PIL image of the same width x height; ``predictor.predict_batch(images)`` takes a list.

    Raises:
        UsageError: unknown model, an option the model does not take, a bad value, unavailable device.
        WeightsError: missing, unreadable or mismatched weights.

    Example:
        >>> import numpy as np, unetcli
        >>> unetcli.load("decolorize", device="cpu")(np.zeros((75, 100, 3), np.uint8)).size
        (100, 75)
    """
    from unetcli.engine.predictor import Predictor

    text = os.fspath(model)
    if weights is None and Path(text).suffix and Path(text).is_file():  # a weights file, not a registry name
        weights, text = text, model_of_weights(text)
    options = {k: v for k, v in (("output_type", output_type), ("threshold", threshold), ("palette", palette))
               if v is not None}
    return Predictor.configure(text, weights=os.fspath(weights) if weights is not None else None, device=device,
                               precision=precision, tile=tile, size=size, compile=compile, batch_size=batch_size,
                               **options).load()
