"""Copy a segmentation training folder, blending a texture into the person pixels of some of its pairs.

Usage (from the repository root):
    python examples/recipes/texture_people.py --data data/seg-train-real --out data/seg-train-tex \
        --fraction 0.5 --alpha 0.35 0.75 --seed 0

For a ``--fraction`` of the pairs with a person (at least 0.5 % of the pixels), a crop of another training image of
the folder (1 to 3 times zoomed in, so the pattern runs from coarse to fine) is blended over the person through
the mask: ``out = photo x (1 - a m) + texture x a m``, with ``m`` the mask in [0, 1] and ``a`` uniform in
``--alpha``. The network then sees people whose clothes and skin carry textures and colours no training person
wore, and must find them by shape (the texture-vs-shape bias of ImageNet networks: Geirhos et al., ICLR 2019,
"ImageNet-trained CNNs are biased towards texture"). Made for issue 15, where held-out people in ornate costumes
and real people unlike the 10 training cut-outs were missed; measured in docs/models.md.

Masks and untouched images are hard links to the originals (copies where the file system has none); textured
images are written as JPEG quality 95 (PNG for PNG inputs). Deterministic for a given ``--seed`` and folder.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
from pathlib import Path

import numpy as np
from PIL import Image


def _link(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)  # follows a symlink to its target (mix_seg_train.py repeats pairs by symlinks)
    except OSError:
        shutil.copyfile(src, dst)


def texture(photo: np.ndarray, mask: np.ndarray, source: Image.Image, alpha: tuple[float, float],
            rng: random.Random) -> np.ndarray:
    """(H, W, 3) uint8 photo + (H, W) uint8 mask (0..255) + a texture source photo -> the textured (H, W, 3) uint8;
    zoom, crop and blend weight (uniform in ``alpha``) drawn from ``rng`` in that order."""
    h, w = mask.shape
    zoom = rng.uniform(1.0, 3.0)
    sw, sh = source.size
    cw, ch = max(8, int(sw / zoom)), max(8, int(sh / zoom))
    x0, y0 = rng.randrange(sw - cw + 1), rng.randrange(sh - ch + 1)
    tex = np.asarray(source.crop((x0, y0, x0 + cw, y0 + ch)).resize((w, h), Image.Resampling.BILINEAR), np.float32)
    weight = mask.astype(np.float32)[..., None] / 255.0 * rng.uniform(*alpha)
    out = photo.astype(np.float32) * (1.0 - weight) + tex * weight
    return out.round().clip(0, 255).astype(np.uint8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="training folder with images/ and masks/")
    ap.add_argument("--out", type=Path, required=True, help="new folder (must not exist)")
    ap.add_argument("--fraction", type=float, default=0.5, help="fraction of the pairs with a person to texture")
    ap.add_argument("--alpha", type=float, nargs=2, default=(0.35, 0.75), metavar=("LO", "HI"),
                    help="blend weight of the texture, uniform in [LO, HI]")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    images = sorted((args.data / "images").iterdir())
    (args.out / "images").mkdir(parents=True)
    (args.out / "masks").mkdir()
    rng, done = random.Random(args.seed), 0
    for path in images:
        mask_path = args.data / "masks" / f"{path.stem}.png"
        _link(mask_path, args.out / "masks" / mask_path.name)
        mask = np.asarray(Image.open(mask_path).convert("L"))
        if (mask > 127).mean() < 0.005 or rng.random() >= args.fraction:
            _link(path, args.out / "images" / path.name)
            continue
        source = Image.open(images[rng.randrange(len(images))]).convert("RGB")
        photo = np.asarray(Image.open(path).convert("RGB"))
        out = Image.fromarray(texture(photo, mask, source, args.alpha, rng))
        out.save(args.out / "images" / path.name, **({"quality": 95} if path.suffix.lower() == ".jpg" else {}))
        done += 1
    print(f"{done} of {len(images)} pairs textured -> {args.out}")


if __name__ == "__main__":
    main()
