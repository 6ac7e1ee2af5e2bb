#!/usr/bin/env python
"""Each person cut-out of the pool alone on a plain gray background: does a person segmenter find them?

A probe with nothing else in the frame (no scene, no distractors, no occlusion), so a low IoU means the model does
not take that person's look for a person at all. Each cut-out is scaled to 300 px high and pasted bottom-centre
on a 384 x 384 gray canvas; its alpha (>= 128) is the ground truth; threshold 0.5.

Scores a unetcli weights file (run from the project's venv) or MediaPipe's selfie and pose segmenters, the
teachers of make_real_people.py (run from the teacher venv of train_seg_mobilenetv2.sh)::

    python examples/recipes/seg_cutout_probe.py --weights runs/seg-mnv2-tex/unet-seg-mobilenetv2.safetensors
    /work/mpvenv/bin/python examples/recipes/seg_cutout_probe.py --mediapipe

Prints one line per cut-out (held-out people marked) and the mean over held-out and training people.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
import make_person_composites as recipe  # noqa: E402 - the composites recipe's pool and held-out people

CANVAS, HEIGHT, GRAY = 384, 300, (128, 128, 128, 255)


def probe(cut_path: Path) -> tuple[Image.Image, np.ndarray]:
    """The cut-out on the gray canvas (RGB) and its (H, W) bool ground truth."""
    with Image.open(cut_path) as im:
        cut = im.convert("RGBA")
    cut = cut.resize((max(1, round(cut.width * HEIGHT / cut.height)), HEIGHT), Image.Resampling.LANCZOS)
    canvas = Image.new("RGBA", (CANVAS, CANVAS), GRAY)
    x, y = (CANVAS - cut.width) // 2, CANVAS - HEIGHT - 20
    canvas.alpha_composite(cut, (x, y))
    truth = np.zeros((CANVAS, CANVAS), bool)
    truth[y:y + HEIGHT, x:x + cut.width] = np.asarray(cut.getchannel("A")) >= 128
    return canvas.convert("RGB"), truth


def segmenters(args: argparse.Namespace) -> dict:
    """name -> function(RGB image) -> (H, W) bool mask."""
    if args.mediapipe:
        from make_real_people import Teachers  # the teacher venv only (mediapipe, numpy < 2)
        teachers = Teachers()

        def pose_mask(rgb: np.ndarray) -> np.ndarray:
            found = teachers.pose.process(rgb).segmentation_mask
            return np.zeros(rgb.shape[:2], bool) if found is None else np.asarray(found) > 0.5
        return {"selfie": lambda im: teachers.selfie(np.asarray(im)) > 0.5,
                "pose": lambda im: pose_mask(np.ascontiguousarray(np.asarray(im)))}
    import unetcli
    model = unetcli.load(args.model, weights=args.weights)
    return {args.model: lambda im: np.asarray(model(im).convert("L")) > 127}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"), help="the shared data folder")
    parser.add_argument("--weights", type=Path, help="a unetcli segmenter's .safetensors")
    parser.add_argument("--model", default="unet-seg-mobilenetv2", help="the registry model of --weights")
    parser.add_argument("--mediapipe", action="store_true", help="score MediaPipe's selfie and pose segmenters")
    args = parser.parse_args()
    if not args.mediapipe and args.weights is None:
        parser.error("give --weights FILE or --mediapipe")
    people = recipe.source_pool(args.data)[0]
    models = segmenters(args)
    scores: dict[tuple[str, bool], list[float]] = {}
    for path in people:
        image, truth = probe(path)
        held_out = recipe.person_name(path) in recipe.VAL_PEOPLE
        line = []
        for name, segment in models.items():
            mask = segment(image)
            # numpy, not unetcli.metrics: the teacher venv has no unetcli (its numpy < 2)
            iou = float((mask & truth).sum() / max((mask | truth).sum(), 1))
            scores.setdefault((name, held_out), []).append(iou)
            line.append(f"{name} {iou:.2f}")
        print(f"{path.stem:22s} {'held out' if held_out else 'training'}  " + "  ".join(line))
    for (name, held_out), values in sorted(scores.items()):
        print(f"{name}: mean IoU {np.mean(values):.2f} over {len(values)} {'held-out' if held_out else 'training'} "
              f"cut-outs")


if __name__ == "__main__":
    main()
