"""The :class:`Task` interface shared by the engine's training and prediction loops."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from unetcli.imageio import Photo
from unetcli.models.registry import ModelSpec


class Task:
    """Base class: how one kind of transform prepares inputs, computes targets and losses, and writes outputs.

    Args:
        spec: the registry model this task serves.
        size: working size (pixels, square) for models that do not run at full resolution; defaults to the
            spec's ``train_size``. Ignored by full-resolution models.

    Prediction runs ``prepare_compact`` (``prepare``, or its uint8 form) in DataLoader workers (CPU, per image, on
    a photo decoded at ``reduced_size`` where the task allows it), the model on batches, then ``finish`` per image.
    Training calls ``prepare_training`` once, then runs ``training_pair`` in workers and ``loss`` / ``metrics`` on
    batches.
    """

    #: Pillow mode family of the written output, for documentation ("L", "RGB", "mask").
    output_kind = ""
    #: Prediction options the task takes besides ``size`` (``predict --threshold/--output-type/--palette``);
    #: the engine passes exactly these to the task and refuses them for tasks that do not list them.
    options: tuple[str, ...] = ()
    #: The model's output channels are classes chosen at training time (``train --classes``).
    has_classes = False
    #: The output renderer (:mod:`unetcli.outputs`) for tasks with output types; None for tasks with one output.
    renderer = None
    #: For exports: (input name, output name, input normalisation, output range and meaning).
    export_io: tuple[str, str, str, str] = ("input", "output", "float32 in [0, 1]", "float32")

    def __init__(self, spec: ModelSpec, size: int | None = None) -> None:
        self.spec = spec
        self.size = int(size or spec.train_size)

    @property
    def output_mode(self) -> str:
        """The Pillow mode of the images :meth:`finish` returns (before an input's alpha is carried over)."""
        if self.renderer is not None:
            return self.renderer.mode
        return self.output_kind if self.output_kind in ("L", "RGB") else "L"

    def prepare(self, photo: Photo) -> tuple[torch.Tensor, dict]:
        """Photo -> (network input (C_in, h, w) float32 in [0, 1], context for :meth:`finish`)."""
        raise NotImplementedError

    def prepare_compact(self, photo: Photo) -> tuple[torch.Tensor, dict]:
        """:meth:`prepare` as the predictor runs it (``predict``'s DataLoader workers, :class:`Predictor`): the
        same, except that the network input may be uint8 (C_in, h, w) holding 255 x the float32 input exactly
        (an 8-bit photo at full size), which ``Predictor.forward`` divides by 255: a quarter of the bytes handed
        from the workers, and no float32 copy of a full-size photo. Default: :meth:`prepare`."""
        return self.prepare(photo)

    def reduced_size(self, size: tuple[int, int]) -> tuple[int, int] | None:
        """The smallest (W, H) at which :meth:`prepare` needs a photo shown at ``size`` = (W, H), or None (the
        default) for its full size: ``predict`` then lets the decoder work at a reduced scale
        (:func:`unetcli.imageio.read_photo`'s ``reduce_to``), and ``photo.size`` stays the size as shown."""
        return None

    def finish(self, output: torch.Tensor, ctx: dict) -> Image.Image:
        """Network output (C_out, h, w) float32 on the CPU + context -> the Pillow image to write."""
        raise NotImplementedError

    def training_pair(self, rgb: np.ndarray, mask: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """A training crop (h, w, 3) float32 sRGB in [0, 1] (and, for tasks trained on image/mask pairs, its
        (h, w) uint8 class-index mask; None otherwise) -> (input (C_in, h, w), target (C_out, h, w)).
        """
        raise NotImplementedError

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scalar fp32 training loss for a batch (N, C, H, W)."""
        raise NotImplementedError

    def metrics(self, output: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-image validation metrics for a batch: name -> (N,) tensor (averaged by the engine)."""
        raise NotImplementedError

    #: metric used to pick the best checkpoint, and whether larger is better (``train --best-metric`` overrides).
    best_metric = ("psnr", True)
    #: The per-image validation metrics :meth:`metrics` returns (higher is better for each).
    metric_names: tuple[str, ...] = ("psnr",)

    @classmethod
    def model_kwargs(cls, spec: ModelSpec, state: dict[str, torch.Tensor]) -> dict:
        """Keyword arguments for the model's factory read from a weights state dict (e.g. ``num_classes``)."""
        return {}

    @classmethod
    def training_model_kwargs(cls, classes: int) -> dict:
        """Keyword arguments for the model's factory (and the task) from ``train --classes``; ``{}`` for tasks
        with a fixed output (only segmentation has classes)."""
        return {}

    @classmethod
    def load_training_data(cls, spec: ModelSpec, folder: Path, classes: int,
                           warn: Callable[[Path, str], None]) -> tuple[list[Path], list[np.ndarray], list | None]:
        """A training folder decoded into memory: (paths, photos (H, W, 3) float32 in [0, 1], masks or None).

        Default: every readable photo in ``folder`` (:func:`unetcli.data.load_training_photos`; ``warn(path,
        reason)`` for each skipped file), no masks; for models with a ``working_size``, scaled so that the longest
        side is the working size (the scale prediction runs at).

        Raises:
            UsageError: see the data loader.
        """
        from unetcli.data import load_training_photos, scale_longest_side  # unetcli.data imports this module

        paths, photos = load_training_photos(folder, warn=warn)
        if spec.working_size:  # train at the scale prediction runs at: longest side = working size
            photos = [scale_longest_side(p, None, spec.working_size)[0] for p in photos]
        return paths, photos, None

    def prepare_training(self, photos: list[np.ndarray]) -> None:
        """Called once by ``train`` with the training photos ((H, W, 3) uint8 sRGB, as loaded) before the first
        batch: tasks whose loss depends on statistics of the data (colour rebalancing) compute them here.
        Default: nothing."""

    def working_shape(self, size: tuple[int, int]) -> tuple[int, int]:
        """(W, H) of the network input for a photo of ``size`` = (W, H) (working-size models): ``size`` x ``size``
        (squashed), or, for models with a ``working_size``, the longest side = ``size`` with the aspect ratio
        kept."""
        if not self.spec.working_size:
            return self.size, self.size
        return longest_side_size(size, self.size)

    def evaluation_input(self, rgb: np.ndarray) -> Image.Image:
        """The image a user would give the model for a colour photo (H, W, 3) float32 sRGB in [0, 1], as an
        8-bit Pillow image (:mod:`unetcli.engine.evaluate`); default: the photo as 8-bit RGB."""
        from unetcli.imageio import to_uint8

        return Image.fromarray(to_uint8(rgb), mode="RGB")

    def evaluation_scores(self, original: np.ndarray, written: np.ndarray, given: np.ndarray) -> dict[str, float]:
        """Scores of one output against its photo (:mod:`unetcli.engine.evaluate`).

        Args:
            original: the 8-bit photo as (H, W, 3) float64 in [0, 1].
            written: the output as float64 in [0, 1], (H, W) or (H, W, C).
            given: :meth:`evaluation_input` as float64 in [0, 1].

        Raises:
            NotImplementedError: the task has no photo evaluation (segmentation is scored on masks).
        """
        raise NotImplementedError(f"{type(self).__name__} has no photo evaluation")

    @classmethod
    def export_metadata(cls, out_channels: int) -> dict[str, str]:
        """Task-specific key/value strings stored in an export's metadata."""
        return {}


#: Export description of an sRGB input.
RGB_INPUT = "sRGB in [0, 1]: 8-bit values / 255 (16-bit / 65535), channels R, G, B; no mean/std normalisation"
#: Export description of a luminance input.
GRAY_INPUT = ("luminance in [0, 1]: skimage.color.rgb2gray of the sRGB photo (0.2125 R + 0.7154 G + 0.0721 B), "
              "or a gray file's value / 255; no mean/std normalisation")


#: Bytes of full-resolution per-photo data (what :meth:`Task.prepare` keeps for :meth:`Task.finish`: the gray
#: photo, its alpha ...) that may wait in a batch or for the writer threads. Photos of a few megapixels fit dozens;
#: 6000 x 4000 photos (96 MB of float32 luminance each) two at a time.
IN_FLIGHT_BYTES = 256 << 20


def context_bytes(ctx: dict) -> int:
    """Bytes held by the tensors and arrays among the values of a :meth:`Task.prepare` context."""
    return sum(v.numel() * v.element_size() if isinstance(v, torch.Tensor) else v.nbytes
               for v in ctx.values() if isinstance(v, (torch.Tensor, np.ndarray)))


def writes_in_flight(ctxs: list[dict], most: int) -> int:
    """How many photos like ``ctxs`` (their :meth:`Task.prepare` contexts) may be in flight at once: at most
    ``most``, fewer when their largest context times the count would pass :data:`IN_FLIGHT_BYTES`; at least 1.

    ``predict`` bounds its batches and the outputs waiting for the writer threads with it, so memory is bounded
    by bytes, not by a count that is harmless for small photos and gigabytes for large ones.
    """
    largest = max((context_bytes(c) for c in ctxs), default=0)
    return max(1, min(most, IN_FLIGHT_BYTES // largest if largest else most))


def resize_float(arr: np.ndarray, size: tuple[int, int], resample=Image.Resampling.BILINEAR) -> np.ndarray:
    """Resize a float32 image (H, W) or (H, W, C) to ``size`` = (width, height) with Pillow's mode "F".

    Pillow's resize is antialiased when downscaling (its filter support grows with the scale factor).
    Returns float32 of shape (height, width) or (height, width, C).
    """
    if arr.ndim == 2:
        return np.array(Image.fromarray(np.ascontiguousarray(arr, dtype=np.float32), mode="F")
                          .resize(size, resample), dtype=np.float32)
    return np.stack([resize_float(arr[:, :, c], size, resample) for c in range(arr.shape[2])], axis=2)


def longest_side_size(size: tuple[int, int], side: int) -> tuple[int, int]:
    """(W, H) = ``size`` scaled so that its longest side is ``side`` pixels, aspect ratio kept (each side >= 1)."""
    w, h = size
    f = side / max(w, h)
    return max(1, round(w * f)), max(1, round(h * f))


def chw(arr: np.ndarray) -> torch.Tensor:
    """(H, W) or (H, W, C) float array -> contiguous float32 tensor (C, H, W)."""
    t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    return t[None] if t.ndim == 2 else t.permute(2, 0, 1).contiguous()


def with_alpha(im: Image.Image, alpha: np.ndarray | None) -> Image.Image:
    """Attach the input's (H, W) uint8 alpha channel unchanged to an "L" or "RGB" output image."""
    if alpha is None:
        return im
    out = im.convert(im.mode + "A")
    out.putalpha(Image.fromarray(alpha, mode="L"))
    return out
