"""The :class:`Predictor`: one model ready to run (backend + device + precision + tiling + the task's pre- and
post-processing), on one image (``__call__``) or many (:meth:`Predictor.predict_batch`).

As Real-ESRGAN separates ``RealESRGANer`` (the model on one image) from its file loop, the batch runner
(:mod:`unetcli.engine.predict`: files, DataLoader, writers, fail-fast, report) drives a :class:`Predictor` and
:func:`unetcli.load` hands one to Python callers; both go through the same methods, so a photo gives the same
pixels from the CLI and from Python.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from unetcli.devices import autocast, precision_name, resolve_precision, select_device
from unetcli.engine.backends import is_exported, load_backend
from unetcli.engine.tiling import predict_rows, predict_tiled
from unetcli.errors import UsageError
from unetcli.imageio import Photo, photo_from_image
from unetcli.models.registry import ModelSpec, get_spec, list_models
from unetcli.tasks import Task, make_task, task_class
from unetcli.weights import trained_input_size


def compile_for_inference(model: torch.nn.Module) -> torch.nn.Module:
    """``torch.compile`` (Inductor) with the weights frozen as constants, for ``predict --compile``.

    Inductor then fuses the element-wise work around the convolutions (ReLU, padding, casts) that eager mode runs
    as separate passes: the unet-colorize bf16 forward went from 43 % to 64 % of the bf16 matmul peak
    (benchmarks/README.md). Compiling costs about 15 s per new input shape (working-size models and tiles keep
    one shape; a folder of differently sized photos for a full-resolution model recompiles, and after
    ``torch._dynamo.config.cache_size_limit`` shapes it falls back to eager). ``model`` is a PyTorch module;
    ``predict`` refuses ``--compile`` for exported models before loading anything.
    """
    import torch._inductor.config as inductor_config  # the documented switch for frozen-weight inference

    inductor_config.freezing = True
    return torch.compile(model)


def _refuse_options(spec: ModelSpec, refused: list[str]) -> None:
    """Raise the error for task options (``output_type`` ...) that the model's task does not take."""
    takers = [n for n in list_models() if set(refused) <= set(task_class(get_spec(n)).options)]
    flags = " / ".join("--" + k.replace("_", "-") for k in refused)
    raise UsageError(f"{flags}: only for {', '.join(takers) or 'no registry model'}, not {spec.name}")


class Predictor:
    """A registry model ready to transform images: weights, backend, device, precision, tiling and task.

    Build one with :meth:`configure` (checks every option, loads nothing) then :meth:`load`, or with
    :func:`unetcli.load`, which does both.

    Args:
        spec: the registry model.
        task: its task, configured with the run's options (working size, threshold, output type ...).
        device: where the network runs.
        dtype: the autocast dtype (``torch.bfloat16`` / ``torch.float16``), or None for fp32.
        weights: a ``.safetensors`` / checkpoint ``.pt`` file, an ``.onnx`` / TorchScript export, or None for the
            shipped weights.
        tile: full-resolution models run photos with a side above ``tile`` pixels on overlapping tiles
            (:mod:`unetcli.engine.tiling`); 0 never tiles. Ignored (0) for working-size models.
        batch_size: images (or tiles) per forward pass in :meth:`predict_batch` and on tiles.
        compile: ``torch.compile`` the PyTorch model when it is loaded (:func:`compile_for_inference`).
    """

    def __init__(self, spec: ModelSpec, task: Task, device: torch.device, dtype: torch.dtype | None,
                 weights: str | Path | None = None, tile: int = 0, batch_size: int = 8,
                 compile: bool = False) -> None:
        self.spec, self.task, self.device, self.dtype, self.weights = spec, task, device, dtype, weights
        self.tile, self.batch_size, self.compile = tile, batch_size, compile
        self.divisor, self.overlap = spec.size_divisor, spec.tile_overlap
        self.model = None  # set by load()

    @classmethod
    def configure(cls, model: str, weights: str | Path | None = None, device: str = "auto",
                  precision: str = "auto", tile: int = 512, size: int | None = None, compile: bool = False,
                  batch_size: int = 8, **task_options) -> Predictor:
        """Check every option and build the predictor without loading the network (see :meth:`load`).

        Args:
            model: registry name or alias.
            weights, tile, batch_size: see the class.
            device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (:func:`unetcli.devices.select_device`).
            precision: ``auto``, ``fp32``, ``bf16`` or ``fp16`` (:func:`unetcli.devices.resolve_precision`).
            size: working size for working-size models (default: the size the weights were trained at).
            compile: ``torch.compile`` the PyTorch model in :meth:`load`.
            **task_options: the options of the model's task (``Task.options``: ``threshold``, ``output_type``,
                ``palette`` for segmentation).

        Raises:
            UsageError: unknown model, bad tile, ``compile`` with an export, unavailable device or precision,
                an option the task does not take, a bad option value.
        """
        spec = get_spec(model)
        overlap = spec.tile_overlap
        tile = tile if spec.full_resolution else 0
        if tile and (tile % 16 or tile < 2 * overlap):
            raise UsageError(f"--tile {tile}: must be 0 (no tiling) or a multiple of 16 of at least "
                             f"{max(16, 2 * overlap)} for {spec.name} (its tiles overlap by {overlap} px)")
        if compile and is_exported(weights):
            raise UsageError("--compile: only for PyTorch weights (.safetensors / .pt), not exported models")
        refused = [k for k in task_options if k not in task_class(spec).options]
        if refused:
            _refuse_options(spec, refused)
        torch_device = select_device(device)
        dtype = resolve_precision(precision, torch_device, auto_ok=spec.bf16_faithful and not is_exported(weights))
        task = make_task(spec, size=size or trained_input_size(spec, weights), **task_options)
        return cls(spec, task, torch_device, dtype, weights=weights, tile=tile, batch_size=batch_size,
                   compile=compile)

    def load(self) -> Predictor:
        """Load the network (PyTorch weights, or an ONNX / TorchScript export) on the device; returns ``self``.

        Raises:
            UsageError / WeightsError: see :func:`unetcli.engine.backends.load_backend`.
        """
        if self.model is None:
            self.model = load_backend(self.spec, self.weights, self.device, self.dtype)
            if self.compile:
                self.model = compile_for_inference(self.model)
        return self

    @property
    def precision(self) -> str:
        """``"fp32"``, ``"bf16"`` or ``"fp16"``."""
        return precision_name(self.dtype)

    # -- network level: (C, h, w) float32 tensors ------------------------------------------------------------

    def padded_shape(self, x: torch.Tensor) -> tuple[int, int, int]:
        """(C, h, w) -> the shape the model pads it to (sides rounded up to the model's size divisor)."""
        c, h, w = x.shape
        return c, h + (-h) % self.divisor, w + (-w) % self.divisor

    def needs_tiling(self, x: torch.Tensor) -> bool:
        """True if the (C, h, w) input is run on tiles (a full-resolution model, a side above ``tile``)."""
        return bool(self.tile) and max(x.shape[1:]) > self.tile

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, h, w) CPU -> (N, C_out, h, w) float32 CPU, on the device and precision.

        ``x`` is float32 in [0, 1], or uint8 holding 255 x that (:meth:`Task.prepare_compact`), divided by 255
        here: in float32 that is exactly the float32 input (``np.float32(v) / 255``), in one pass that also gives
        the channels-last layout when ``x`` has it (an (H, W, C) photo viewed as (C, H, W)).
        """
        x = x.to(self.device, non_blocking=True)
        if x.dtype == torch.uint8:
            x = torch.div(x, 255)
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), autocast(self.device, self.dtype):
            y = self.model(x)
        return y.float().cpu()

    def forward_same_padded(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Inputs (C_in, h_i, w_i) of one padded shape -> one forward pass -> outputs (C_out, h_i, w_i).

        Images of different sizes with the same padded size share a batch: each is padded here exactly as the
        model would pad it alone (edge replication at the bottom/right), and its output is cropped back. One
        input that needs no padding runs as it is (no copy).
        """
        _, hp, wp = self.padded_shape(inputs[0])
        if len({t.dtype for t in inputs}) > 1:  # uint8 and float32 inputs (8-bit and 16-bit photos): all float32
            inputs = [torch.div(t, 255) if t.dtype == torch.uint8 else t for t in inputs]
        padded = [t if t.shape[1:] == (hp, wp) else
                  F.pad(t[None], (0, wp - t.shape[2], 0, hp - t.shape[1]), mode="replicate")[0] for t in inputs]
        x = padded[0][None] if len(padded) == 1 else torch.stack(padded)
        return [out[:, : t.shape[1], : t.shape[2]] for t, out in zip(inputs, self.forward(x))]

    def forward_tiled(self, x: torch.Tensor, tile: int | None = None, batch_size: int | None = None) -> torch.Tensor:
        """A (C_in, H, W) input larger than one tile -> (C_out, H, W): overlapping tiles of ``tile`` pixels,
        ``batch_size`` tiles a pass (defaults: the predictor's), blended back
        (:func:`unetcli.engine.tiling.predict_tiled`). Per-pixel models (no tile overlap, size divisor 1) run on
        bands of whole rows of about as many pixels instead (:func:`unetcli.engine.tiling.predict_rows`): the
        same output, without cutting or blending tiles."""
        tile, batch_size = tile or self.tile, batch_size or self.batch_size
        with torch.inference_mode():
            if self.overlap == 0 and self.divisor == 1:
                return predict_rows(self.forward, x, tile * tile * batch_size)
            return predict_tiled(self.forward, x, tile, self.overlap, self.divisor, batch_size)

    def smaller_tile(self, side: int) -> int:
        """The tile to retry with after running out of memory on ``side`` pixels: the largest valid tile (a multiple
        of 16, at least twice the overlap) of at most half of ``side``; 0 if there is none."""
        smallest = max(16, -(-2 * self.overlap // 16) * 16)
        tile = (side // 2) // 16 * 16
        return tile if tile >= smallest and tile > self.overlap else 0

    def free_memory(self) -> None:
        """Return cached device memory after an out-of-memory error (CUDA's caching allocator keeps it otherwise)."""
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def run_inputs(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Prepared inputs (C_in, h_i, w_i) (float32, or uint8: :meth:`forward`) -> network outputs (C_out, h_i, w_i)
        float32, in order: tiled where needed,
        the rest grouped by padded shape in batches of at most ``batch_size``."""
        self.load()
        outputs: list[torch.Tensor | None] = [None] * len(inputs)
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i, x in enumerate(inputs):
            if self.needs_tiling(x):
                outputs[i] = self.forward_tiled(x)
            else:
                groups[self.padded_shape(x)].append(i)
        for idx in groups.values():
            for start in range(0, len(idx), self.batch_size):
                chunk = idx[start:start + self.batch_size]
                for i, out in zip(chunk, self.forward_same_padded([inputs[i] for i in chunk])):
                    outputs[i] = out
        return outputs

    # -- image level: PIL images / uint8 arrays in, PIL images out -----------------------------------------------

    def __call__(self, image: Image.Image | np.ndarray) -> Image.Image:
        """One image -> the model's output at the image's full size, by the rules of ``unetcli predict``.

        Args:
            image: a Pillow image in any mode, or a uint8 numpy array (H, W), (H, W, 3) or (H, W, 4).

        Returns:
            A Pillow image of the input's width x height: "L" (decolorize; "LA" with the input's alpha), "RGB"
            (colorize; "RGBA"), or the segmentation output type ("L" mask, "P" palette, "RGB" overlay, "RGBA"
            cutout).

        Raises:
            InputError: not an image, or an array of another dtype or shape.
            UsageError / WeightsError: loading the network failed (first call only).
        """
        return self.predict_batch([image])[0]

    def predict_batch(self, images: list[Image.Image | np.ndarray]) -> list[Image.Image]:
        """Several images -> their outputs, in order (see :meth:`__call__`); same-size inputs share forward passes.

        Raises:
            InputError / UsageError / WeightsError: as :meth:`__call__`.
        """
        return self.predict_photos([photo_from_image(im) for im in images])

    def predict_photos(self, photos: list[Photo]) -> list[Image.Image]:
        """Decoded photos (:func:`unetcli.imageio.read_photo`, :func:`~unetcli.imageio.photo_from_image`) -> the
        task's output images, in order (the task's ``prepare_compact``, :meth:`run_inputs`, the task's
        ``finish``)."""
        prepared = [self.task.prepare_compact(photo) for photo in photos]
        outputs = self.run_inputs([x for x, _ in prepared])
        return [self.task.finish(out, ctx) for out, (_, ctx) in zip(outputs, prepared)]

    def __repr__(self) -> str:
        return (f"Predictor({self.spec.name!r}, device={str(self.device)!r}, precision={self.precision!r}, "
                f"tile={self.tile})")
