""":class:`ModelSpec`: what the CLI, the engine, ``summary``, ``export`` and the API need to know about one model.

Each model file declares its spec beside its ``nn.Module`` (timm keeps ``default_cfgs`` beside each model);
:mod:`unetcli.models.registry` collects them in an explicit table. This module imports nothing from the models,
so a model file (or a plugin / test file) can import it without cycles.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """One registry model; every field is keyword-only.

    Attributes:
        name: registry name, e.g. ``"unet-colorize"``.
        aliases: short names that resolve to ``name`` (``"colorize"``).
        task: the transform the model performs, a key of :data:`unetcli.tasks.TASKS`
            (``"colorize"``: gray -> RGB, ``"decolorize"``: RGB -> gray, ``"segment"``: RGB -> mask).
        factory: builds the ``nn.Module``; keyword arguments (``num_classes``) are passed through.
        in_channels: C of the input (N, C, H, W); inputs are float32 in [0, 1].
        out_channels: C of the output (for ``unet-seg`` the default ``num_classes``).
        params: trainable parameter count of the default configuration (as torchinfo reports it).
        seed: the seed document (in ``shared/seeds``) or paper the architecture follows.
        train_size: side in pixels of the square crops the model is trained on; also the default
            ``summary --input-size``.
        full_resolution: True if the network runs on the whole photo at its own size (per-pixel models);
            False if it runs at a working size and the task recombines with the full-resolution photo.
        loss: the seed's training loss (``"mae"``, ``"mse"``, ``"bce+dice"``).
        lr: default Adam learning rate.
        description: one line for ``unetcli models``.
        bf16_faithful: whether ``--precision auto`` may run the model in bf16 autocast: True where bf16
            outputs were measured to stay within 40 dB PSNR of fp32 on real photos and bf16 is faster.
        size_divisor: the model pads H and W to a multiple of this inside ``forward`` (16 for four 2x2 poolings,
            32 for five, 1 for per-pixel models); ``predict`` batches photos by their padded size and aligns
            tiles to it.
        tile_overlap: pixels that neighbouring tiles share when ``predict`` tiles a large photo (full-resolution
            models only, :mod:`unetcli.engine.tiling`); a multiple of ``size_divisor``; 0 for per-pixel models.
        working_size: working-size models only: when set, the photo is resized so that its LONGEST side is this
            many pixels, aspect ratio kept (padded to the model's size divisor inside the model), instead of being
            squashed to ``train_size`` x ``train_size``; training photos are scaled the same way and cropped to
            ``train_size`` squares at that scale.
        encoder_weights: file stem in ``weights/encoders/`` of the pretrained encoder that a new training run
            starts from (the model has an ``encoder`` attribute); None for models trained from scratch.
        encoder_lr_scale: the encoder's learning rate is ``lr x encoder_lr_scale`` (fine-tuning a pretrained
            encoder gently while the decoder learns from scratch).
        logits_layer: name of the final conv whose output channels are the classes (``num_classes`` is read
            from ``<logits_layer>.weight`` of a weights file).
    """

    name: str
    task: str
    factory: Callable[..., nn.Module]
    in_channels: int
    out_channels: int
    params: int
    seed: str
    train_size: int
    full_resolution: bool
    loss: str
    aliases: tuple[str, ...] = ()
    lr: float = 1e-3
    description: str = ""
    bf16_faithful: bool = True
    size_divisor: int = 16
    tile_overlap: int = 64
    working_size: int | None = None
    encoder_weights: str | None = None
    encoder_lr_scale: float = 1.0
    logits_layer: str = "out"
