"""Score trained weights at full resolution on photos kept out of training; write the numbers into the model card.

Usage (from the repository root):
    python examples/recipes/evaluate.py RUN [RUN ...] [--ship]

For each run folder (written by ``unetcli train``) the final weights are run through ``unetcli``'s own predict
pipeline on
  * the run's validation photos (``split.json``: never trained on), at their full resolution, and
  * scikit-image's (and scikit-learn's) bundled colour photographs (independent of the training pool),
in fp32 and in the default precision (bf16 autocast where the CPU supports it), and the outputs are compared with
the reference (``skimage.color.rgb2gray`` for the gray models; for colorize the original colour photo, next to
the grayscale baseline and the colourfulness of output and original). The per-set means go into the model card under
``metrics.evaluation``; ``--ship`` then copies weights and card into ``weights/``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import skimage.data
from PIL import Image

from unetcli.devices import cpu_has_fast_bf16
from unetcli.engine.evaluate import evaluate_masks, evaluate_photos
from unetcli.weights import read_card, write_json_atomic

SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field", "retina")


def _package_files(folder: Path) -> list[Path]:
    """scikit-image's bundled colour photos, and scikit-learn's two sample photos when it is installed."""
    files = []
    for name in SKIMAGE_PHOTOS:
        path = folder / f"{name}.png"
        Image.fromarray(getattr(skimage.data, name)()).save(path)
        files.append(path)
    try:
        from sklearn.datasets import load_sample_images

        bunch = load_sample_images()
        for name, image in zip(bunch.filenames, bunch.images):
            path = folder / f"sklearn_{Path(name).stem}.png"
            Image.fromarray(image).save(path)
            files.append(path)
    except ImportError:
        pass
    return files


def _summary(rows: list[dict], key: str) -> dict:
    values = [r[key] for r in rows]
    return {"mean": round(statistics.fmean(values), 2), "min": round(min(values), 2), "n": len(values)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--ship", action="store_true", help="copy weights and card into weights/")
    ap.add_argument("--real-people", type=Path, default=Path("data/real-people/val"),
                    help="segmentation: held-out real photos of people with teacher masks "
                         "(examples/recipes/make_real_people.py); skipped if missing")
    ap.add_argument("--package-people", type=Path, default=Path("data/package-people"),
                    help="segmentation: scikit-image's photos of people with teacher masks (never trained on; "
                         "make_real_people.py --package-photos); skipped if missing")
    ap.add_argument("--no-people", type=Path, default=Path("data/no-people"),
                    help="segmentation: real photos without people (all-zero masks); skipped if missing")
    args = ap.parse_args()
    precisions = ["fp32"] + (["bf16"] if cpu_has_fast_bf16() else [])
    with tempfile.TemporaryDirectory() as tmp:
        package_photos = _package_files(Path(tmp))
        for run in args.runs:
            split = json.loads((run / "split.json").read_text())
            held_out = [Path(p) for p in split["val"]]
            weights = next(p for p in run.glob("*.safetensors") if p.stem not in ("best",))
            card = read_card(weights)
            if card["model"].startswith("unet-seg"):
                _evaluate_segmentation(weights, card, Path(split["val_data"]), precisions,
                                       args.real_people, args.package_people, args.no_people)
                _ship(weights, args.ship)
                continue
            colorize = card["model"].startswith("unet-colorize")
            evaluation = {"resolution": "full (each photo at its own size)",
                          "reference": "the original colour photo (input: its rgb2gray, 8-bit)" if colorize
                          else "skimage.color.rgb2gray"}
            evaluation["units"] = "psnr in dB (skimage peak_signal_noise_ratio, data_range 1); colorfulness: " \
                                  "Hasler & Suesstrunk 2003 on 0..255; mean/min over photos"
            keys = ["psnr", "psnr_gray_baseline", "colorfulness", "colorfulness_original"] if colorize else ["psnr"]
            for precision in precisions:
                for set_name, photos in (("held_out", held_out), ("packages", package_photos)):
                    rows = evaluate_photos(card["model"], photos, weights=str(weights), precision=precision,
                                           workers=2)
                    entry = {k: _summary(rows, k) for k in keys}
                    if set_name == "packages":
                        entry["per_photo"] = {Path(r["photo"]).stem: {k: round(r[k], 2) for k in keys} for r in rows}
                    evaluation[f"{set_name}_{precision}"] = entry
                    print(run, precision, set_name, {k: entry[k] for k in keys}, flush=True)
            evaluation["held_out_photos"] = [str(p) for p in held_out]
            evaluation["package_photos"] = [p.stem for p in package_photos]
            card.setdefault("metrics", {})["evaluation"] = evaluation
            write_json_atomic(weights.with_suffix(".json"), card)
            _ship(weights, args.ship)
    return 0


def _ship(weights: Path, ship: bool) -> None:
    if ship:
        dest = Path("weights")
        shutil.copy2(weights, dest / weights.name)
        shutil.copy2(weights.with_suffix(".json"), dest / weights.with_suffix(".json").name)
        print(f"shipped {dest / weights.name}")


def _evaluate_segmentation(weights: Path, card: dict, val_data: Path, precisions: list[str], real_people: Path,
                           package_people: Path, no_people: Path) -> None:
    """Segmentation: IoU / Dice at full resolution, per precision, on the held-out composites (--val-data of the run:
    people and background packages never seen in training), on held-out real photos of people and on scikit-image's
    photos of people (teacher masks), and the fraction of pixels marked as person on real photos without people."""
    evaluation = {"resolution": "full (each image at its own size; probabilities upsampled, then 0.5)",
                  "held_out_data": str(val_data),
                  "units": "IoU and Dice of the person mask per image, mean/min over images; an image with no "
                           "person predicted empty scores 1; marked_fraction: person pixels / all pixels"}
    sets = [("held_out", val_data)] + [(name, folder) for name, folder in (("real_people", real_people),
                                                                          ("package_people", package_people),
                                                                          ("no_people", no_people))
                                       if (folder / "images").is_dir()]
    for precision in precisions:
        for set_name, folder in sets:
            rows = evaluate_masks(card["model"], folder, weights=str(weights), precision=precision, workers=2)
            marked = sum(r["predicted_pixels"] for r in rows) / sum(r["size"][0] * r["size"][1] for r in rows)
            if set_name == "no_people":
                entry = {"marked_fraction": round(marked, 5), "n": len(rows),
                         "worst": sorted(({"image": Path(r["image"]).name,
                                           "marked": round(r["predicted_pixels"] / (r["size"][0] * r["size"][1]), 4)}
                                          for r in rows), key=lambda r: -r["marked"])[:5]}
                print(weights, precision, set_name, entry["marked_fraction"], flush=True)
                evaluation[f"{set_name}_{precision}"] = entry
                continue
            with_people = [r for r in rows if r["true_pixels"]]
            entry = {k: _summary(rows, k) for k in ("iou", "dice")}
            entry["iou_images_with_people"] = _summary(with_people, "iou")
            union = sum(r["union_pixels"] for r in rows)  # IoU over all pixels of all images
            entry["iou_pooled"] = round(sum(r["intersection_pixels"] for r in rows) / union if union else 1.0, 4)
            if set_name == "held_out":
                entry["by_people"] = _by_people(rows, folder)
            per_image = set_name != "held_out"
            entry["per_image" if per_image else "worst"] = sorted(
                ({"image": Path(r["image"]).name, "iou": round(r["iou"], 3)} for r in rows),
                key=lambda r: r["iou"])[:None if per_image else 5]
            evaluation[f"{set_name}_{precision}"] = entry
            print(weights, precision, set_name, {k: entry[k] for k in ("iou", "dice", "iou_images_with_people")},
                  flush=True)
        evaluation["data"] = {name: str(folder) for name, folder in sets}
    card.setdefault("metrics", {})["evaluation"] = evaluation
    write_json_atomic(weights.with_suffix(".json"), card)


def _by_people(rows: list[dict], folder: Path) -> dict:
    """Mean IoU of the composites grouped by the held-out people in them ("marissa", "mako+thai", "nobody"), from
    the composites recipe's ``composites.json`` beside the folder and its own rule for whom a cut-out shows
    (``make_person_composites.person_name``); {} for a folder that has none."""
    from make_person_composites import person_name  # the recipe beside this one (its folder is on sys.path)

    recipe = folder.parent / "composites.json"
    if not recipe.is_file():
        return {}
    items = json.loads(recipe.read_text())["splits"]["val"]["items"]
    people = {item["image"]: item["people"] for item in items}
    groups: dict[str, list[float]] = {}
    for r in rows:
        names = {person_name(Path(cutout)) for cutout in people.get(Path(r["image"]).name, [])}
        groups.setdefault("+".join(sorted(names)) or "nobody", []).append(r["iou"])
    return {group: {"iou": round(statistics.fmean(v), 3), "n": len(v)} for group, v in sorted(groups.items())}


if __name__ == "__main__":
    sys.exit(main())
