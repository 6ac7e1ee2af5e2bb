"""Score trained weights at full resolution on photos kept out of training; write the numbers into the model card.

Usage (from the repository root):
    python examples/recipes/evaluate.py RUN [RUN ...] [--ship]

For each run folder (written by ``unetcli train``) the final weights are run through ``unetcli``'s own predict
pipeline on
  * the run's validation photos (``split.json``: never trained on), at their full resolution, and
  * scikit-image's bundled colour photographs (independent of the training pool),
in fp32 and in the default precision (bf16 autocast where the CPU supports it), and the outputs are compared with
the reference (``skimage.color.rgb2gray`` for the gray models). The per-set means go into the model card under
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

import numpy as np
import skimage.data
from PIL import Image

from unetcli.devices import cpu_has_fast_bf16
from unetcli.engine.evaluate import evaluate_photos
from unetcli.weights import read_card, write_json_atomic

SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field", "retina")


def _skimage_files(folder: Path) -> list[Path]:
    files = []
    for name in SKIMAGE_PHOTOS:
        path = folder / f"{name}.png"
        Image.fromarray(getattr(skimage.data, name)()).save(path)
        files.append(path)
    return files


def _summary(rows: list[dict], key: str) -> dict:
    values = [r[key] for r in rows]
    return {"mean": round(statistics.fmean(values), 2), "min": round(min(values), 2), "n": len(values)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--ship", action="store_true", help="copy weights and card into weights/")
    args = ap.parse_args()
    precisions = ["fp32"] + (["bf16"] if cpu_has_fast_bf16() else [])
    with tempfile.TemporaryDirectory() as tmp:
        package_photos = _skimage_files(Path(tmp))
        for run in args.runs:
            split = json.loads((run / "split.json").read_text())
            held_out = [Path(p) for p in split["val"]]
            weights = next(p for p in run.glob("*.safetensors") if p.stem not in ("best",))
            card = read_card(weights)
            evaluation = {"resolution": "full (each photo at its own size)", "reference": "skimage.color.rgb2gray"}
            for precision in precisions:
                for set_name, photos in (("held_out", held_out), ("skimage", package_photos)):
                    rows = evaluate_photos(card["model"], photos, weights=str(weights), precision=precision,
                                           workers=2)
                    evaluation[f"{set_name}_{precision}"] = {"psnr_db": _summary(rows, "psnr")}
                    if set_name == "skimage":
                        evaluation[f"{set_name}_{precision}"]["per_photo_psnr_db"] = {
                            Path(r["photo"]).stem: round(r["psnr"], 2) for r in rows}
                    print(run, precision, set_name, evaluation[f"{set_name}_{precision}"]["psnr_db"], flush=True)
            evaluation["held_out_photos"] = [str(p) for p in held_out]
            evaluation["skimage_photos"] = list(SKIMAGE_PHOTOS)
            card.setdefault("metrics", {})["evaluation"] = evaluation
            write_json_atomic(weights.with_suffix(".json"), card)
            if args.ship:
                dest = Path("weights")
                shutil.copy2(weights, dest / weights.name)
                shutil.copy2(weights.with_suffix(".json"), dest / weights.with_suffix(".json").name)
                print(f"shipped {dest / weights.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
