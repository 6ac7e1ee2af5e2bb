#!/usr/bin/env python
"""How much better unet-seg weights do on the people they were trained on than on unseen people.

Builds (once) 300 composites of the TRAINING people pasted on the HELD-OUT background packages and objects, with
the recipe of make_person_composites.py, and scores each weights file at full resolution on them and on the
validation composites (held-out people on the same held-out scenes). A large gap means the model learns the few
people of the pool rather than "person"; similar numbers mean it is simply under-trained. The README's unet-seg
table comes from this script.

Run from the repository root (../shared/data beside it)::

    python examples/recipes/seg_people_gap.py data/person-composites-20k/val runs/unet-seg-20k/best.safetensors
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
import make_person_composites as recipe  # noqa: E402 - the composite recipe itself, not a copy of it

from unetcli.engine.evaluate import evaluate_masks  # noqa: E402


def build_training_people_set(data: Path, out: Path, count: int = 300, side: int = 256) -> None:
    """``count`` composites of the training people on held-out backgrounds and objects into ``out`` (seeded)."""
    people, objects, photos = recipe.source_pool(data)
    cut_people = [recipe.load_rgba(p) for p in people if recipe.person_name(p) not in recipe.VAL_PEOPLE]
    backgrounds = [p for p in photos if p.parent.name in recipe.VAL_PACKAGES]
    val_paths = objects[::3]  # the validation objects of the recipe's split
    val_objects = [recipe.load_rgba(o) for o in val_paths]
    rng = np.random.default_rng((0, 7))
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(exist_ok=True)
    for k in range(count):
        with Image.open(backgrounds[int(rng.integers(len(backgrounds)))]) as im:
            background = im.convert("RGB")
        n_people = int(rng.choice([0, 1, 1, 1, 2, 2]))
        pasted = [cut_people[int(i)] for i in rng.integers(0, len(cut_people), n_people)]
        picks = [int(i) for i in rng.integers(0, len(val_objects), int(rng.integers(0, 4)))]
        rgb, mask = recipe.composite(background, pasted, [val_objects[i] for i in picks], side, rng,
                                     objects_showing_people=[recipe.shows_person(val_paths[i]) for i in picks])
        rgb.save(out / "images" / f"{k:05d}.jpg", quality=90)
        Image.fromarray(mask, mode="L").save(out / "masks" / f"{k:05d}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("val", type=Path, help="validation composites (held-out people), e.g. DATA/val")
    parser.add_argument("weights", type=Path, nargs="+", help="unet-seg .safetensors or training checkpoints .pt")
    parser.add_argument("--data", type=Path, default=Path("../shared/data"), help="the shared data folder")
    parser.add_argument("--out", type=Path, default=Path("data/person-composites-training-people"),
                        help="where the training-people composites are built (once)")
    args = parser.parse_args()
    if not (args.out / "masks").is_dir():
        build_training_people_set(args.data, args.out)
    for weights in args.weights:
        for name, folder in (("held-out people", args.val), ("training people", args.out)):
            rows = evaluate_masks("unet-seg", folder, weights=str(weights), workers=0)
            print(f"{weights}: {name}: mean IoU {np.mean([r['iou'] for r in rows]):.3f} over {len(rows)} composites",
                  flush=True)


if __name__ == "__main__":
    main()
