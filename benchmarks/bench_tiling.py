"""How far tiled outputs are from untiled ones: max |tiled - untiled| of unet-decolorize on real photos.

A plain script, not a test. For each photo (``tests/data/photos``, ``examples/photos`` and scikit-image's colour
samples) and tile size it runs the model once on the whole photo and once through
:func:`unetcli.engine.tiling.predict_tiled` with the model's ``tile_overlap`` (feathered), and once with no
overlap (plain cutting, for contrast), in fp32, and prints the largest differences in units of 1/255.

Usage::

    python benchmarks/bench_tiling.py --weights weights/unet-decolorize.safetensors   # default: shipped weights
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import skimage.data
import torch

from unetcli.engine.model import load_model
from unetcli.engine.tiling import predict_tiled
from unetcli.imageio import read_photo
from unetcli.models.registry import get_spec

ROOT = Path(__file__).resolve().parent.parent


def photos() -> dict[str, np.ndarray]:
    """name -> (H, W, 3) float32 sRGB in [0, 1]."""
    found = {}
    for folder in (ROOT / "tests" / "data" / "photos", ROOT / "examples" / "photos"):
        for path in sorted(folder.glob("*.jpg")):
            found[path.name] = read_photo(path).rgb
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        found[f"skimage {name}"] = getattr(skimage.data, name)().astype(np.float32) / 255
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="unet-decolorize")
    ap.add_argument("--weights", help="weights file (default: the shipped weights)")
    ap.add_argument("--tiles", default="128,256")
    args = ap.parse_args()
    spec = get_spec(args.model)
    model = load_model(spec, args.weights)[0].float()
    overlap, align = spec.factory.tile_overlap, spec.factory.size_divisor
    print(f"{spec.name}, weights {args.weights or 'shipped'}, overlap {overlap}, fp32, torch {torch.__version__}")
    print("| photo | H x W | tile | max diff, feathered overlap (/255) | max diff, no overlap (/255) |")
    print("|---|---|---|---|---|")
    worst = {}
    with torch.inference_mode():
        for name, rgb in photos().items():
            x = torch.from_numpy(rgb).permute(2, 0, 1).contiguous()
            whole = model(x[None])[0]
            for tile in map(int, args.tiles.split(",")):
                if max(x.shape[1:]) <= tile:
                    continue
                blended = (predict_tiled(model, x, tile, overlap, align) - whole).abs().max().item() * 255
                cut = (predict_tiled(model, x, tile, 0, align) - whole).abs().max().item() * 255
                worst[tile] = max(worst.get(tile, 0.0), blended)
                print(f"| {name} | {x.shape[1]} x {x.shape[2]} | {tile} | {blended:.3f} | {cut:.1f} |", flush=True)
    print("worst, feathered: " + ", ".join(f"tile {t}: {v:.3f}/255" for t, v in worst.items()))
    sys.exit(0 if all(v <= 1 for v in worst.values()) else 1)


if __name__ == "__main__":
    main()
