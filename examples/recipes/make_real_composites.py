#!/usr/bin/env python
"""Paste real people, cut out by their teacher masks, at portrait scale on real background photos.

The person cut-outs of the shared data are whole bodies 80-250 px tall: blown up to fill a frame their faces are a
blur, and models trained on composites of them mark nothing on real portraits (IoU 0.00-0.05, docs/models.md).
The still photos in ``real-people/train`` (``make_real_people.py``: a footballer, a portrait, a dancer, with
MediaPipe teacher masks that were looked at one by one) show people at the scale photos of people have. Each one's
mask cuts its people out (one RGBA cut-out per photo: its bounding box, alpha = the mask); each composite pastes one
of them on a random crop of a training background photo of ``make_person_composites.py`` (its held-out background
packages are never used), scaled to 0.6-1.2 frame heights with the same appearance jitter as the composites
(``jitter``: brightness, contrast, saturation, hue within +-0.08 x 180 degrees, gray, blur, stretch, rotation),
flipped half the time; a cut-out whose person is cut by the photo's bottom edge (a portrait, an upper body) is
bottom-aligned, so the frame cuts it where the photo did; one in four composites is gray. Each photo itself, scaled
to the working size, is written ``--repeat`` times (the training loader takes one random crop per file per
epoch). Writes::

    OUT/images/p-0000.jpg  OUT/masks/p-0000.png     composites (mask 255 = person)
    OUT/images/r-STEM-K.jpg OUT/masks/r-STEM-K.png  the photos themselves, K = 0 .. repeat - 1
    OUT/real-composites.json                        sources, order, counts, seed

Seeded and deterministic: the same sources in the same ``--stems`` order give the same files. Run from the
repository root, after make_real_people.py::

    python examples/recipes/make_real_composites.py --real data/real-people/train --out data/real-composites \\
        --stems portrait-b,messi5,messi5-crop,australia,australia-crop-upper --count 1500 --repeat 15
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_person_composites import VAL_PACKAGES, jitter, source_pool  # noqa: E402


def cutout(im: Image.Image, m: Image.Image, name: Path) -> tuple[Image.Image, bool]:
    """A photo ("RGB") and its mask ("L", 255 = person) -> (RGBA cut-out of the mask's bounding box with the mask
    as alpha, whether the mask reaches the bottom edge).

    Raises:
        SystemExit: the mask (file ``name``) marks nothing.
    """
    a = np.asarray(m) > 127
    if not a.any():
        raise SystemExit(f"{name}: marks no person")
    ys, xs = np.nonzero(a)
    rgba = im.copy()
    rgba.putalpha(m)
    return rgba.crop((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)), bool(ys.max() >= a.shape[0] - 3)


def paste(background: Image.Image, cuts: list[tuple[Image.Image, bool]], side: int,
          rng: np.random.Generator) -> tuple[Image.Image, np.ndarray, int]:
    """One composite: a random crop (0.5-1 of each side) of ``background`` at longest side ``side`` with one of
    ``cuts`` ((cut-out, reaches the bottom edge), :func:`cutout`), drawn at random, jittered, scaled to 0.6-1.2 frame heights (at most 1.3 frame widths), flipped half the time and pasted
    (bottom-aligned, up to 1/8 of its height below the frame, when ``at_bottom``; else anywhere vertically that
    keeps it inside). Returns the RGB composite, its (H, W) uint8 mask (255 = person) and the cut-out's index."""
    bw, bh = background.size
    c = rng.uniform(0.5, 1.0)
    cw, ch = int(bw * c), int(bh * c)
    x0, y0 = int(rng.integers(0, bw - cw + 1)), int(rng.integers(0, bh - ch + 1))
    f = side / max(cw, ch)
    canvas = (round(cw * f), round(ch * f))
    image = background.crop((x0, y0, x0 + cw, y0 + ch)).resize(canvas, Image.Resampling.BILINEAR).convert("RGBA")
    which = int(rng.integers(len(cuts)))
    cut, at_bottom = cuts[which]
    cut = jitter(cut, rng, 0.08)
    s = min(canvas[1] * rng.uniform(0.6, 1.2) / cut.height, 1.3 * canvas[0] / cut.width)
    cut = cut.resize((max(2, round(cut.width * s)), max(2, round(cut.height * s))), Image.Resampling.LANCZOS)
    if rng.random() < 0.5:
        cut = cut.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    x = int(rng.integers(min(0, canvas[0] - cut.width) - cut.width // 4,
                         max(0, canvas[0] - cut.width) + cut.width // 4 + 1))
    if at_bottom:
        y = canvas[1] - cut.height + int(rng.integers(0, cut.height // 8 + 1))
    else:
        y = canvas[1] - cut.height - int(rng.integers(0, max(1, canvas[1] - cut.height + 1)))
    layer = Image.new("RGBA", canvas, (0, 0, 0, 0))
    layer.paste(cut, (x, y))
    mask = np.asarray(layer.getchannel("A")) >= 128
    rgb = Image.alpha_composite(image, layer).convert("RGB")
    if rng.random() < 0.25:
        rgb = rgb.convert("L").convert("RGB")
    return rgb, np.where(mask, 255, 0).astype(np.uint8), which


def build(data: Path, real: Path, stems: list[str], out: Path, count: int, repeat: int, side: int,
          seed: int) -> dict:
    """Write the folder of the module docstring; returns its manifest.

    Raises:
        SystemExit: a stem has no image/mask pair in ``real``, or its mask is empty.
    """
    missing = [s for s in stems if not (real / "images" / f"{s}.jpg").is_file()
               or not (real / "masks" / f"{s}.png").is_file()]
    if missing:
        raise SystemExit(f"{real}: no image/mask pair for {', '.join(missing)}")
    if out.exists():
        shutil.rmtree(out)
    (out / "images").mkdir(parents=True)
    (out / "masks").mkdir(parents=True)
    cuts = []
    for stem in stems:
        image, mask = real / "images" / f"{stem}.jpg", real / "masks" / f"{stem}.png"
        with Image.open(image) as f_im, Image.open(mask) as f_m:
            im, m = f_im.convert("RGB"), f_m.convert("L")
        f = side / max(im.size)
        size = (round(im.width * f), round(im.height * f))
        small, small_mask = im.resize(size, Image.Resampling.LANCZOS), m.resize(size, Image.Resampling.NEAREST)
        for k in range(repeat):
            small.save(out / "images" / f"r-{stem}-{k}.jpg", quality=92)
            small_mask.save(out / "masks" / f"r-{stem}-{k}.png")
        cuts.append(cutout(im, m, mask))
    _, _, photos = source_pool(data)
    backgrounds = [p for p in photos if p.parent.name not in VAL_PACKAGES]
    rng = np.random.default_rng(seed)
    items = []
    for k in range(count):
        bg = backgrounds[int(rng.integers(len(backgrounds)))]
        with Image.open(bg) as im:
            background = im.convert("RGB")
        rgb, mask, which = paste(background, cuts, side, rng)
        rgb.save(out / "images" / f"p-{k:04d}.jpg", quality=90)
        Image.fromarray(mask, mode="L").save(out / "masks" / f"p-{k:04d}.png")
        items.append({"image": f"p-{k:04d}.jpg", "person": stems[which], "background": str(bg.relative_to(data))})
    manifest = {"real": str(real), "stems": stems, "count": count, "repeat": repeat, "side": side, "seed": seed,
                "items": items}
    (out / "real-composites.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"), help="the shared data folder")
    parser.add_argument("--real", type=Path, required=True, help="real-people/train (images/, masks/)")
    parser.add_argument("--stems", required=True, help="comma-separated stems of the photos to cut out, in order")
    parser.add_argument("--out", type=Path, required=True, help="output folder (replaced)")
    parser.add_argument("--count", type=int, default=1500, help="composites")
    parser.add_argument("--repeat", type=int, default=15, help="copies of each photo itself")
    parser.add_argument("--side", type=int, default=384, help="longest side, pixels (the model's working size)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    m = build(args.data, args.real, args.stems.split(","), args.out, args.count, args.repeat, args.side, args.seed)
    print(f"{args.out}: {m['count']} composites + {len(m['stems'])} photos x {m['repeat']}")


if __name__ == "__main__":
    main()
