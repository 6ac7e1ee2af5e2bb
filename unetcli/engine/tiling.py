"""Tiled inference for full-resolution models: overlapping tiles, feathered blending, bounded memory.

A U-Net's activations grow with the image: unet-decolorize on a 6000x4000 photo needs about 9 GB of activations
at once (measured: ``benchmarks/README.md``). :func:`predict_tiled` runs the model on overlapping tiles instead,
a batch of tiles at a time, and blends them back with weights that ramp linearly from the tile's inner edges
(feathering, like ``pytorch_toolbelt.inference.tiles.ImageSlicer`` / ``TileMerger``), so memory is bounded
by the tile size and there are no seams.

Why the result matches the untiled run: tile origins are multiples of the model's ``size_divisor`` (16 for the
U-Nets), so every tile's 2x2 pooling grid lines up with the whole image's, and tiles that reach past the bottom
or right edge are padded by edge replication exactly as the model pads the whole image. The only difference is
the context a tile lacks beyond its inner edges, which the feathering weights down; it fades within the
overlap (see :data:`unetcli.models.decolorize.UNetDecolorize.tile_overlap` for the measured error).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F


def tile_starts(length: int, tile: int, overlap: int, align: int = 1) -> list[int]:
    """Start offsets of the tiles that cover ``[0, length)`` along one axis.

    Args:
        length: image side, pixels (>= 1).
        tile: tile side, pixels; a multiple of ``align``.
        overlap: pixels shared by neighbouring tiles (at least; the last tile may share more); a multiple of
            ``align`` and smaller than ``tile``.
        align: every start is a multiple of this (the model's ``size_divisor``).

    Returns:
        Increasing starts; ``[0]`` if ``length <= tile`` (one tile of the whole side). Otherwise the last tile
        ends at ``length`` rounded up to ``align`` (the part past ``length`` is edge-replicated padding).
    """
    if length <= tile:
        return [0]
    padded = length + (-length) % align
    last = padded - tile
    return [*range(0, last, tile - overlap), last]


def feather_weights(starts: list[int], tile: int, length: int, overlap: int, margin: int = 0) -> list[torch.Tensor]:
    """Per-tile 1-D blending weights along one axis that sum to 1 at every pixel of ``[0, length)``.

    Next to an inner edge (a cut, not the image border) a tile's raw weight is 0 for ``margin`` pixels, then
    ramps linearly up to 1 over ``overlap - 2 * margin`` pixels; it is 1 elsewhere. Two tiles that share
    ``overlap`` pixels thus cross-fade in the middle of the shared strip, and no pixel takes anything from a
    tile within ``margin`` pixels of that tile's cut, where it lacks the most context. The raw weights are
    divided by their sum over the tiles (the last tile of an axis may overlap its neighbour by more).

    Args:
        starts: from :func:`tile_starts`.
        tile: tile side, pixels.
        length: image side, pixels.
        overlap: nominal overlap, pixels (``> 2 * margin`` when there are several tiles).
        margin: pixels next to a cut that get weight 0.

    Returns:
        One float32 tensor per start, of length ``min(tile, length - start)`` (the tile's part inside the image).
    """
    ends = [min(s + tile, length) for s in starts]
    raw = []
    for i, (s, e) in enumerate(zip(starts, ends)):
        pos = torch.arange(s, e, dtype=torch.float32)
        w = torch.ones(e - s)
        if overlap > 0:
            ramp = max(overlap - 2 * margin, 1)
            if i > 0:
                w = torch.minimum(w, ((pos - s - margin + 0.5) / ramp).clamp(min=0))
            if i < len(starts) - 1:
                w = torch.minimum(w, ((s + tile - pos - margin - 0.5) / ramp).clamp(min=0))
        raw.append(w)
    total = torch.zeros(length)
    for s, w in zip(starts, raw):
        total[s:s + len(w)] += w
    return [w / total[s:s + len(w)] for s, w in zip(starts, raw)]


def predict_tiled(run: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor, tile: int, overlap: int,
                  align: int = 1, batch_size: int = 8, margin: int | None = None) -> torch.Tensor:
    """Run a full-resolution model on overlapping tiles of one image and blend the tiles into one output.

    Args:
        run: the model, (N, C_in, h, w) float32 CPU -> (N, C_out, h, w) float32 CPU, for any N and the tile's
            h x w.
        image: (C_in, H, W) float32 CPU tensor (any value range; [0, 1] for the registry models).
        tile: tile side in pixels, a positive multiple of ``align``. A side of the image not longer than
            ``tile`` is one tile along that axis (the whole side, padded by the model itself as untiled).
        overlap: pixels shared by neighbouring tiles and ramped over; a multiple of ``align``, ``< tile``.
            0 is right for per-pixel models (no context, nothing to blend).
        align: the model's ``size_divisor``: tile origins are multiples of it so pooling grids line up.
        batch_size: tiles per call of ``run``; peak memory is about ``batch_size`` tiles' activations.
        margin: pixels next to a cut that get no weight (see :func:`feather_weights`); default ``overlap // 4``,
            so the cross-fade spans the middle half of the shared strip.

    Returns:
        (C_out, H, W) float32 CPU tensor: the blended output. Where a pixel is covered by one tile only, it is
        that tile's output exactly.

    Raises:
        ValueError: ``tile`` or ``overlap`` not multiples of ``align``, or ``overlap >= tile``.
    """
    if tile <= 0 or tile % align or overlap % align or not 0 <= overlap < tile:
        raise ValueError(f"tile {tile} and overlap {overlap} must be multiples of {align} with 0 <= overlap < tile")
    margin = overlap // 4 if margin is None else margin
    _, h, w = image.shape
    ys, xs = tile_starts(h, tile, overlap, align), tile_starts(w, tile, overlap, align)
    th, tw = min(tile, h), min(tile, w)
    wy, wx = feather_weights(ys, th, h, overlap, margin), feather_weights(xs, tw, w, overlap, margin)
    jobs = [(i, j) for i in range(len(ys)) for j in range(len(xs))]
    step = max(1, batch_size)
    out: torch.Tensor | None = None
    for k in range(0, len(jobs), step):
        chunk = jobs[k:k + step]
        tiles = []
        for i, j in chunk:
            t = image[:, ys[i]:ys[i] + th, xs[j]:xs[j] + tw]
            if t.shape[1:] != (th, tw):  # reaches past the bottom/right: replicate the edge, as the model does
                t = F.pad(t[None], (0, tw - t.shape[2], 0, th - t.shape[1]), mode="replicate")[0]
            tiles.append(t)
        y = run(torch.stack(tiles))
        if out is None:
            out = torch.zeros((y.shape[1], h, w), dtype=torch.float32)
        for (i, j), t in zip(chunk, y):
            vy, vx = len(wy[i]), len(wx[j])
            out[:, ys[i]:ys[i] + vy, xs[j]:xs[j] + vx].addcmul_(t[:, :vy, :vx], wy[i][:, None] * wx[j][None, :])
    assert out is not None
    return out


def predict_rows(run: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor, pixels: int) -> torch.Tensor:
    """Run a per-pixel model (no context: 1x1 convolutions) on bands of whole rows of one image.

    Where :func:`predict_tiled` would cut tiles with no overlap and paste them back, this runs the same pixels in
    bands of ``max(1, pixels // W)`` rows: a band of an (H, W, C) photo viewed as (C, H, W) is one contiguous
    block of memory already in the channels-last layout the model runs in, so nothing is cut, padded or blended,
    and memory is bounded by ``pixels`` as by ``batch_size`` tiles. An image of at most ``pixels`` pixels is one
    band, run as it is.

    Args:
        run: the model, (1, C_in, h, W) -> (1, C_out, h, W) float32 CPU, for any h.
        image: (C_in, H, W) CPU tensor, any dtype ``run`` takes (float32, or uint8 for the predictor).
        pixels: most pixels per call of ``run`` (>= 1).

    Returns:
        (C_out, H, W) float32 CPU tensor: for a per-pixel model, the untiled output exactly.
    """
    _, h, w = image.shape
    rows = max(1, pixels // max(w, 1))
    if rows >= h:
        return run(image[None])[0]
    out: torch.Tensor | None = None
    for top in range(0, h, rows):
        y = run(image[None, :, top:top + rows])[0]
        if out is None:
            out = torch.empty((y.shape[0], h, w), dtype=torch.float32)
        out[:, top:top + rows] = y
    assert out is not None
    return out
