#!/usr/bin/env python
"""Build the person-segmentation training set of the shipped unet-seg weights: real person cut-outs pasted on
real background photos, in the standard ``DATA/images`` + ``DATA/masks`` layout.

No hand-made person masks could be had offline, so the data is made the way matting and segmentation sets such
as Adobe's composition-1k are made: exact masks come from the alpha channel of real cut-outs pasted on real
photos. Object cut-outs (animals, vehicles, food, things) are pasted too as distractors and labelled
background, so the model learns "person", not "pasted thing"; the two among them that are real people (a
firefighter in a protective suit, an astronaut on a spacewalk) are pasted as the distractors are, but labelled
person. Each paste gets a random scale, position and flip, a slight blur of its edge, a colour jitter (hue
included) and a small stretch and rotation, so neither the seam nor the clothes of the few people in the pool are
a cue.

Validation holds out whole people (every cut-out of a person, by name stem: ``cassy-dancing-2`` -> ``cassy``)
and whole background packages (every photo of a source package), so its IoU measures people and scenes never
seen in training.

Writes::

    OUT/train/images/00000.jpg  OUT/train/masks/00000.png   (mask: 8-bit, 255 = person, 0 = background)
    OUT/val/images/...          OUT/val/masks/...
    OUT/composites.json         what went where (cut-outs, backgrounds, split, seed, counts)

Run from the repository root (../shared/data beside it)::

    python examples/recipes/make_person_composites.py --out data/person-composites
    unetcli train --model unet-seg --data data/person-composites/train --val-data data/person-composites/val

The output depends only on the arguments (seeded), so the shipped weights' data can be rebuilt exactly.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

#: People whose every cut-out goes to validation only (name stems, about 20% of the 41 cut-outs).
VAL_PEOPLE = ("marissa", "mako", "thai")
#: Background source packages whose every photo goes to validation only (about 11% of the photos).
VAL_PACKAGES = ("opencv-doc", "mate-backgrounds", "palapeli-data")
#: Background photos that show people themselves: left out, since their people would be labelled background.
PHOTOS_WITH_PEOPLE = ("messi5.jpg", "tobogan-4x3.jpg", "all-sports-mural.jpg", "berkeley-mural.jpg",
                      "mural-faro.jpg", "clothing-store.jpg")
#: Object cut-outs that are photos of real people (in a protective suit, in a spacesuit): pasted where and as large
#: as the other objects (the random draws, and so every image, stay what they were without this list), but their
#: pixels are person in the mask. Labelled background before 2026-12-05, they taught that people in suits are not
#: people (44 of 8,000 training composites; docs/models.md). Not here: the paratrooper (a few pixels of person under
#: a parachute that fills the cut-out), the nutcracker figurine, Santa's cartoon face and the cartoon cat:
#: background, as they were.
OBJECTS_SHOWING_PEOPLE = ("tuxpaint_fireman240a", "tuxpaint_spacewalk")


def person_name(path: Path) -> str:
    """The person a cut-out shows, from its file name: ``cassy-dancing-2.png`` -> ``cassy``, ``dan3`` -> ``dan``."""
    return re.sub(r"\d+$", "", path.stem.split("-")[0].split("_")[0]).lower()


def load_rgba(path: Path) -> Image.Image:
    """A cut-out as RGBA (alpha = the object's exact mask)."""
    with Image.open(path) as im:
        return im.convert("RGBA")


def shows_person(path: Path) -> bool:
    """An object cut-out that is a photo of a real person (:data:`OBJECTS_SHOWING_PEOPLE`)."""
    return path.stem in OBJECTS_SHOWING_PEOPLE


def jitter(cut: Image.Image, rng: np.random.Generator, hue: float = 1.0) -> Image.Image:
    """Random appearance and shape changes of an RGBA cut-out, so that a model cannot learn the few people of
    the pool by their clothes, colours or exact outline: brightness, contrast and saturation (factors 0.6-1.4),
    a hue rotation (half the time; by up to ``hue`` x 180 degrees either way, 1.0: any), gray (1 in 8), a slight
    blur (1 in 4), an aspect stretch (0.8-1.25) and a
    rotation of up to 15 degrees (half the time). Alpha follows every geometric change."""
    rgb, alpha = cut.convert("RGB"), cut.getchannel("A")
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        rgb = enhancer(rgb).enhance(float(rng.uniform(0.6, 1.4)))
    if rng.random() < 0.5:
        h, sat, val = rgb.convert("HSV").split()
        shift = int(rng.integers(0, 256))
        if hue < 1.0:  # a bounded shift around 0, drawn from the same number (older sets rebuild bit for bit)
            shift = round((shift - 128) * hue) % 256
        h = h.point(lambda v: (v + shift) % 256)
        rgb = Image.merge("HSV", (h, sat, val)).convert("RGB")
    if rng.random() < 0.125:
        rgb = rgb.convert("L").convert("RGB")
    if rng.random() < 0.25:
        rgb = rgb.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 1.5))))
    rgb.putalpha(alpha)
    w, h = rgb.size
    stretch = float(rng.uniform(0.8, 1.25))
    rgb = rgb.resize((max(2, round(w * stretch)), h), Image.Resampling.BICUBIC)
    if rng.random() < 0.5:
        rgb = rgb.rotate(float(rng.uniform(-15, 15)), Image.Resampling.BICUBIC, expand=True)
    return rgb


def place(cut: Image.Image, canvas: tuple[int, int], height_frac: tuple[float, float],
          rng: np.random.Generator, closeup: bool = False) -> tuple[Image.Image, np.ndarray]:
    """Scale (to a random fraction of the canvas height), flip and position a cut-out on a transparent canvas.

    ``closeup``: the cut-out is scaled to 1.2-2.6 canvas heights and placed head near the top, so that the frame
    shows a portrait or an upper body cut by the bottom border (what photos of people mostly are, and what
    composites of whole bodies never show).

    Returns the RGBA layer of the canvas size and the layer's binary mask (H, W) bool (alpha >= 128, before the
    edge blur).
    """
    cw, ch = canvas
    w, h = cut.size
    target_h = ch * (rng.uniform(1.2, 2.6) if closeup else rng.uniform(*height_frac))
    f = min(target_h / h, (1.3 if closeup else 0.95) * cw / w)
    size = (max(2, round(w * f)), max(2, round(h * f)))
    cut = cut.resize(size, Image.Resampling.LANCZOS)
    if rng.random() < 0.5:
        cut = cut.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if closeup:  # head inside the frame, near the top; horizontally anywhere that keeps the body's middle in
        x = int(rng.integers(min(0, cw - size[0]) - size[0] // 4, max(0, cw - size[0]) + size[0] // 4 + 1))
        y = int(rng.integers(-size[1] // 20, ch // 5 + 1))
    else:  # mostly inside the frame; sometimes cut by the border, as people in real photos are
        x = int(rng.integers(-size[0] // 4, cw - 3 * size[0] // 4 + 1))
        y = int(rng.integers(-size[1] // 6, ch - 5 * size[1] // 6 + 1))
    layer = Image.new("RGBA", canvas, (0, 0, 0, 0))
    layer.paste(cut, (x, y))
    mask = np.asarray(layer.getchannel("A")) >= 128
    blurred = layer.getchannel("A").filter(ImageFilter.GaussianBlur(float(rng.uniform(0.4, 1.2))))
    layer.putalpha(blurred)
    return layer, mask


def composite(background: Image.Image, people: list[Image.Image], objects: list[Image.Image], side: int,
              rng: np.random.Generator, closeup: bool = False, hue: float = 1.0,
              objects_showing_people: list[bool] | None = None) -> tuple[Image.Image, np.ndarray]:
    """One training sample: a random crop of ``background`` (longest side ``side``) with the cut-outs pasted in
    random order (``closeup``: the first person as a portrait/upper body filling the frame, see ``place``).
    ``objects_showing_people[i]``: object ``i`` is placed as an object but its pixels are person in the mask.
    Returns the RGB composite and its (H, W) uint8 mask (255 where a person is visible)."""
    bw, bh = background.size
    crop = rng.uniform(0.5, 1.0)
    cw, ch = max(16, int(bw * crop)), max(16, int(bh * crop))
    x, y = int(rng.integers(0, bw - cw + 1)), int(rng.integers(0, bh - ch + 1))
    f = side / max(cw, ch)
    canvas = (max(16, round(cw * f)), max(16, round(ch * f)))
    image = background.crop((x, y, x + cw, y + ch)).resize(canvas, Image.Resampling.BILINEAR).convert("RGBA")
    mask = np.zeros((canvas[1], canvas[0]), bool)
    labels = objects_showing_people or [False] * len(objects)
    layers = [(c, True, True) for c in people] + [(c, False, person) for c, person in zip(objects, labels)]
    order = rng.permutation(len(layers))
    if closeup:  # the close person (layer 0) is pasted last: nothing stands in front of a portrait
        order = [i for i in order if i != 0] + [0]
    for i in order:
        cut, is_person, counts_as_person = layers[i]
        layer, shape = place(jitter(cut, rng, hue), canvas, (0.4, 0.95) if is_person else (0.15, 0.6), rng,
                             closeup=bool(closeup and i == 0 and is_person))
        image = Image.alpha_composite(image, layer)
        mask = (mask | shape) if counts_as_person else (mask & ~shape)  # a later object hides the person behind it
    rgb = image.convert("RGB")
    if rng.random() < 0.3:  # whole-image softness and noise, so pasted and background pixels look alike
        rgb = rgb.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 0.8))))
    if closeup and rng.random() < 0.25:  # old and archival photos: black and white, sometimes soft
        rgb = rgb.convert("L").convert("RGB")
        if rng.random() < 0.5:
            rgb = rgb.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.8, 2.0))))
    return rgb, np.where(mask, 255, 0).astype(np.uint8)


def source_pool(data: Path) -> tuple[list[Path], list[Path], list[Path]]:
    """(person cut-outs, object cut-outs, background photos without people) of the shared data folder, sorted."""
    people = sorted((data / "cutouts" / "person").glob("*.png"))
    objects = sorted((data / "cutouts" / "object").glob("*.png"))
    photos = sorted(p for p in (data / "photos").rglob("*.jpg") if p.name not in PHOTOS_WITH_PEOPLE)
    if not people or not objects or not photos:
        raise SystemExit(f"{data}: expected cutouts/person, cutouts/object and photos (see its README.md)")
    return people, objects, photos


def build(data: Path, out: Path, n_train: int, n_val: int, side: int, seed: int, closeups: float = 0.0,
          hue: float = 1.0) -> dict:
    """Write ``n_train`` + ``n_val`` composites into ``out`` (see the module docstring); returns the manifest.

    ``closeups``: the fraction of training composites with one person filling the frame (``place``); 0 draws
    exactly the random numbers of the recipe before close-ups existed, so older sets rebuild bit for bit.
    Validation composites never have close-ups (their figures stay comparable across runs). ``hue`` bounds the
    hue rotation of the cut-outs in training composites (1.0: any hue, as the first sets; a model trained so
    learns that skin of any colour is a person and real skin tones are not a cue, and marked only hair on real
    portraits: measured 0.16 IoU on real people)."""
    people, objects, photos = source_pool(data)
    split = {
        "train": ([p for p in people if person_name(p) not in VAL_PEOPLE],
                  [p for p in photos if p.parent.name not in VAL_PACKAGES]),
        "val": ([p for p in people if person_name(p) in VAL_PEOPLE],
                [p for p in photos if p.parent.name in VAL_PACKAGES]),
    }
    # Distractor objects are split too (every third to validation), so validation objects are unseen as well.
    obj_split = {"train": [o for i, o in enumerate(objects) if i % 3], "val": objects[::3]}
    manifest = {"seed": seed, "side": side, "closeups": closeups, "hue": hue, "val_people": list(VAL_PEOPLE),
                "objects_showing_people": list(OBJECTS_SHOWING_PEOPLE),
                "val_packages": list(VAL_PACKAGES),
                "excluded_backgrounds": list(PHOTOS_WITH_PEOPLE), "splits": {}}
    for name, count, sub_seed in (("train", n_train, 0), ("val", n_val, 1)):
        rng = np.random.default_rng((seed, sub_seed))
        cut_people, backgrounds = split[name]
        (out / name / "images").mkdir(parents=True, exist_ok=True)
        (out / name / "masks").mkdir(parents=True, exist_ok=True)
        person_cache = {p: load_rgba(p) for p in cut_people}
        object_cache: dict[Path, Image.Image] = {}
        items = []
        for k in range(count):
            bg_path = backgrounds[int(rng.integers(len(backgrounds)))]
            with Image.open(bg_path) as im:
                background = im.convert("RGB")
            closeup = bool(name == "train" and closeups > 0 and rng.random() < closeups)
            n_people = int(rng.choice([0, 1, 1, 1, 2, 2]))  # 1 in 6 has nobody: the empty mask is a case too
            n_people = max(n_people, 1) if closeup else n_people
            person_paths = [cut_people[int(i)] for i in rng.integers(0, len(cut_people), n_people)]
            object_paths = [obj_split[name][int(i)] for i in rng.integers(0, len(obj_split[name]),
                                                                           int(rng.integers(0, 4)))]
            objs = [object_cache.setdefault(path, load_rgba(path)) for path in object_paths]
            rgb, mask = composite(background, [person_cache[p] for p in person_paths], objs, side, rng, closeup,
                                  hue if name == "train" else 1.0,
                                  [shows_person(p) for p in object_paths])
            items.append({"image": f"{k:05d}.jpg", "closeup": closeup, "background": str(bg_path.relative_to(data)),
                          "people": [str(p.relative_to(data)) for p in person_paths],
                          "objects": [str(p.relative_to(data)) for p in object_paths]})
            rgb.save(out / name / "images" / f"{k:05d}.jpg", quality=int(rng.integers(80, 96)))
            Image.fromarray(mask, mode="L").save(out / name / "masks" / f"{k:05d}.png")
        manifest["splits"][name] = {"count": count, "people": [p.name for p in cut_people],
                                    "backgrounds": [str(p.relative_to(data)) for p in backgrounds],
                                    "objects": len(obj_split[name]), "items": items}
    (out / "composites.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"), help="the shared data folder")
    parser.add_argument("--out", type=Path, required=True, help="output folder (train/ and val/ inside)")
    parser.add_argument("--train", type=int, default=4000, help="training composites")
    parser.add_argument("--val", type=int, default=300, help="validation composites")
    parser.add_argument("--side", type=int, default=256, help="longest side of a composite, pixels")
    parser.add_argument("--closeups", type=float, default=0.0,
                        help="fraction of training composites with a portrait/upper body filling the frame")
    parser.add_argument("--hue", type=float, default=1.0,
                        help="largest hue rotation of training cut-outs, as a fraction of 180 degrees (1: any)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    m = build(args.data, args.out, args.train, args.val, args.side, args.seed, args.closeups, args.hue)
    for name, s in m["splits"].items():
        print(f"{name}: {s['count']} composites, {len(s['people'])} person cut-outs, "
              f"{len(s['backgrounds'])} backgrounds, {s['objects']} objects -> {args.out / name}")


if __name__ == "__main__":
    main()
