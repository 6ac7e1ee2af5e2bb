#!/usr/bin/env python
"""Build the unet-seg-mobilenetv2 training folder: person composites and real photos of people, mixed.

``unetcli train`` draws the same number of crops from every photo (``--crops-per-photo`` applies to all alike),
so the few real pairs are given weight by repetition: each real pair appears ``REPEAT`` times under distinct
names (symlinks), so that real pairs are about ``--real-fraction`` of the samples. Writes::

    OUT/images/c-00000.jpg -> composites/images/00000.jpg        (symlinks, relative)
    OUT/masks/c-00000.png  -> composites/masks/00000.png
    OUT/real-384/{images,masks}/STEM.png                          real pairs scaled to the working size, once
    OUT/images/r-STEM-007.png -> ../real-384/images/STEM.png      (REPEAT symlinks per real pair)
    OUT/images/p-0000.jpg -> EXTRA/images/p-0000.jpg              (--extra: every pair of each folder, its own name)
    OUT/mix.json                                                  counts, fraction, sources

The real pairs are scaled here to the model's working size (longest side 384; ``unetcli.data.scale_longest_side``,
the function ``unetcli train`` uses: bilinear photo, nearest-neighbour mask), so the loader's own scaling is a
no-op and every repeat, which the loader decodes and keeps in memory as a separate photo, costs a 384-px image,
not a 1024-px one. ``unetcli`` reads symlinked image and mask files like files (``collect_inputs`` lists them,
``read_photo`` opens them).

Only ``real-people/train`` pairs are used (``--real-glob``: those whose stem matches, e.g. ``vtest-*`` for the
pedestrian frames while ``make_real_composites.py`` brings the still photos in through ``--extra``); the recipe
refuses a stem that ``real-people/MANIFEST.tsv`` puts in ``val``. The real fraction counts composites and real
pairs only, not the ``--extra`` pairs. Run from the repository root, after make_person_composites.py and make_real_people.py::

    python examples/recipes/mix_seg_train.py --composites data/person-composites-384/train \\
        --real data/real-people/train --real-glob 'vtest-*' --out data/seg-train --real-fraction 0.15
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from unetcli.data import find_mask_pairs, read_mask, scale_longest_side
from unetcli.imageio import read_photo


def link(target: Path, name: Path) -> None:
    """A relative symlink ``name`` -> ``target`` (so the data folder can be moved as a whole)."""
    name.symlink_to(os.path.relpath(target, name.parent))


def build(composites: Path, real: Path, out: Path, fraction: float, side: int, real_glob: str = "*",
          extra: tuple[Path, ...] = ()) -> dict:
    """Write the mixed folder (see the module docstring) and return its summary.

    Raises:
        SystemExit: a source folder has unusable pairs, a real pair is a val pair, two ``extra`` pairs share a
            name, or ``fraction`` not in (0, 1).
    """
    if not 0 < fraction < 1:
        raise SystemExit(f"--real-fraction {fraction}: expected a number between 0 and 1")
    comp_pairs, problems = find_mask_pairs(composites)
    real_pairs, real_problems = find_mask_pairs(real)
    real_pairs = [(p, m) for p, m in real_pairs if fnmatch.fnmatchcase(p.stem, real_glob)]
    if problems or real_problems:
        raise SystemExit("unusable pairs:\n  " + "\n  ".join((problems + real_problems)[:20]))
    manifest = real.parent / "MANIFEST.tsv"
    split = {}
    if manifest.is_file():
        for line in manifest.read_text().splitlines()[1:]:
            f = line.split("\t")
            split[Path(f[0]).stem] = f[1]
    held = [p.stem for p, _ in real_pairs if split.get(p.stem) == "val"]
    if held:
        raise SystemExit(f"{real}: val pairs in the training source: {', '.join(held)}")
    if out.exists():
        shutil.rmtree(out)
    for d in ("images", "masks", "real-384/images", "real-384/masks"):
        (out / d).mkdir(parents=True)
    for img, mask in comp_pairs:
        link(img, out / "images" / f"c-{img.name}")
        link(mask, out / "masks" / f"c-{mask.stem}{mask.suffix}")
    repeat = max(1, round(fraction * len(comp_pairs) / ((1 - fraction) * len(real_pairs))))
    real_px = 0
    for img, mask in real_pairs:
        rgb = read_photo(img).as_uint8()
        m = read_mask(mask, 1)
        rgb, m = scale_longest_side(rgb, m, side)
        real_px += int(m.sum())
        Image.fromarray(rgb).save(out / "real-384" / "images" / f"{img.stem}.png")
        Image.fromarray((m * 255).astype(np.uint8), mode="L").save(out / "real-384" / "masks" / f"{img.stem}.png")
        for k in range(repeat):
            link(out / "real-384" / "images" / f"{img.stem}.png", out / "images" / f"r-{img.stem}-{k:03d}.png")
            link(out / "real-384" / "masks" / f"{img.stem}.png", out / "masks" / f"r-{img.stem}-{k:03d}.png")
    extra_pairs = 0
    for folder in extra:
        found, problems = find_mask_pairs(folder)
        if problems:
            raise SystemExit(f"{folder}: unusable pairs:\n  " + "\n  ".join(problems[:20]))
        for img, mask in found:
            if os.path.lexists(out / "images" / img.name):
                raise SystemExit(f"{folder}: {img.name} is already in {out} (two sources with the same name)")
            link(img, out / "images" / img.name)
            link(mask, out / "masks" / mask.name)
        extra_pairs += len(found)
    pairs, problems = find_mask_pairs(out)
    if problems:
        raise SystemExit("mixed folder has unusable pairs:\n  " + "\n  ".join(problems[:20]))
    n_real = repeat * len(real_pairs)
    summary = {"extra": [str(e) for e in extra], "extra_pairs": extra_pairs,"composites": str(composites), "real": str(real), "side": side, "composite_pairs": len(comp_pairs),
               "real_pairs": len(real_pairs), "real_repeat": repeat, "real_samples": n_real,
               "samples": len(pairs), "real_fraction": round(n_real / (len(pairs) - extra_pairs), 4),
               "real_stems": sorted(p.stem for p, _ in real_pairs)}
    (out / "mix.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--composites", type=Path, required=True, help="composites' train folder")
    parser.add_argument("--real", type=Path, required=True, help="real-people/train folder")
    parser.add_argument("--out", type=Path, required=True, help="output folder (replaced)")
    parser.add_argument("--real-fraction", type=float, default=0.15, help="share of samples that are real pairs")
    parser.add_argument("--side", type=int, default=384, help="working size: longest side of the real pairs")
    parser.add_argument("--real-glob", default="*", help="only the real pairs whose stem matches (fnmatch)")
    parser.add_argument("--extra", type=Path, nargs="*", default=[],
                        help="folders (images/, masks/) whose pairs are linked in as they are")
    args = parser.parse_args()
    s = build(args.composites, args.real, args.out, args.real_fraction, args.side, args.real_glob,
              tuple(args.extra))
    print(f"{args.out}: {s['samples']} pairs = {s['composite_pairs']} composites + {s['real_pairs']} real pairs "
          f"x {s['real_repeat']} ({s['real_fraction']:.1%} real) + {s['extra_pairs']} --extra pairs")


if __name__ == "__main__":
    main()
