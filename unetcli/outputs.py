"""Output renderers: how a task's per-pixel result becomes the image that is written, by name.

rembg keeps output composition (``bg.py``) outside its model sessions; here every renderer declares the tasks it
applies to, and ``predict --output-type``, :func:`unetcli.load` (``output_type=``) and the tasks look renderers up
in :data:`RENDERERS`. Adding an output type is one :class:`Renderer` and one line in :data:`RENDERERS` (or
:func:`register_renderer` from a plugin or a test).

A segmentation renderer receives the (H, W) uint8 class-index map at the photo's full size (0/1 for one class),
the number of classes C, and the task's context (``ctx["rgb"]``: the photo as (H, W, 3) uint8 sRGB, present when
the renderer sets ``needs_photo``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image

from unetcli.errors import UsageError


def voc_palette(num_colors: int = 256) -> np.ndarray:
    """The Pascal VOC colour map, (num_colors, 3) uint8: class 0 black, 1 dark red, 2 green, 3 olive ...

    The bit-interleaving rule of the VOC development kit (``VOClabelcolormap.m``), which torchvision and
    segmentation tools use for label images; no installed library exports it.
    """
    out = np.zeros((num_colors, 3), np.uint8)
    for i in range(num_colors):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        out[i] = (r, g, b)
    return out


#: Overlay tint of the one-class mask (rembg-like red); several classes use the VOC colours.
TINT = np.array([255, 40, 40], np.float32)


@dataclass(frozen=True)
class Renderer:
    """One output type.

    Attributes:
        name: the ``--output-type`` / ``output_type=`` value.
        tasks: the tasks (keys of :data:`unetcli.tasks.TASKS`) whose results it renders.
        render: ``(labels (H, W) uint8, num_classes, ctx) -> PIL image`` to write.
        needs_photo: the task must keep the photo at full size in ``ctx["rgb"]`` ((H, W, 3) uint8).
        alpha: the output has an alpha channel (only PNG, WebP and TIFF can store it).
        description: one line for the help.
        mode: the Pillow mode of the images ``render`` returns (``--ext`` is checked against it before any work).
    """

    name: str
    tasks: tuple[str, ...]
    render: Callable[[np.ndarray, int, dict], Image.Image]
    needs_photo: bool = False
    alpha: bool = False
    description: str = ""
    mode: str = "RGB"


def render_mask(labels: np.ndarray, num_classes: int, ctx: dict) -> Image.Image:
    """8-bit "L": 0/255 for one class, class indices 0..C-1 for several."""
    return Image.fromarray(labels * 255 if num_classes == 1 else labels, mode="L")


def render_palette(labels: np.ndarray, num_classes: int, ctx: dict) -> Image.Image:
    """"P" image whose pixel values are the class indices, shown by viewers in the VOC colours."""
    im = Image.fromarray(labels, mode="L").convert("P")  # pixel values = class indices
    im.putpalette(voc_palette().tobytes())
    return im


def render_overlay(labels: np.ndarray, num_classes: int, ctx: dict) -> Image.Image:
    """"RGB": the photo with the mask tinted over it at 50 % (red for one class, the VOC colour of each class)."""
    colours = TINT[None] if num_classes == 1 else voc_palette(num_classes)[1:].astype(np.float32)
    rgb = ctx["rgb"].astype(np.float32)
    fg = labels > 0
    rgb[fg] = 0.5 * rgb[fg] + 0.5 * colours[labels[fg] - 1]
    return Image.fromarray(np.rint(rgb).astype(np.uint8), mode="RGB")


def render_cutout(labels: np.ndarray, num_classes: int, ctx: dict) -> Image.Image:
    """"RGBA": the photo with alpha 255 where any non-background class is, else 0 (what rembg writes)."""
    cut = Image.fromarray(ctx["rgb"], mode="RGB")
    cut.putalpha(Image.fromarray(np.where(labels > 0, 255, 0).astype(np.uint8), mode="L"))
    return cut


#: Every output type by name, in ``--help`` order.
RENDERERS: dict[str, Renderer] = {r.name: r for r in (
    Renderer("mask", ("segment",), render_mask, description="8-bit mask, 0/255 or class indices", mode="L"),
    Renderer("overlay", ("segment",), render_overlay, needs_photo=True, description="the photo, mask tinted over it"),
    Renderer("cutout", ("segment",), render_cutout, needs_photo=True, alpha=True,
             description="RGBA, alpha = the mask", mode="RGBA"),
    Renderer("palette", ("segment",), render_palette, description="palette PNG of class indices, VOC colours",
             mode="P"),
)}


def register_renderer(renderer: Renderer) -> Renderer:
    """Add an output type (a plugin's or a test's); returns it.

    Raises:
        UsageError: the name is taken.
    """
    if renderer.name in RENDERERS:
        raise UsageError(f"output type {renderer.name!r} already exists")
    RENDERERS[renderer.name] = renderer
    return renderer


def output_types(task: str) -> list[str]:
    """Names of the renderers that apply to ``task``, in :data:`RENDERERS` order (empty: the task has one output)."""
    return [r.name for r in RENDERERS.values() if task in r.tasks]


def get_renderer(name: str, task: str) -> Renderer:
    """The renderer called ``name`` for ``task``.

    Raises:
        UsageError: no such renderer for the task; the message lists the valid ones.
    """
    renderer = RENDERERS.get(name)
    if renderer is None or task not in renderer.tasks:
        raise UsageError(f"--output-type {name}: expected one of {', '.join(output_types(task))}")
    return renderer
