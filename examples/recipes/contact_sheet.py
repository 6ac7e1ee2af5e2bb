"""Make a before/after contact sheet with ``unetcli predict``: one row per photo, columns side by side.

Usage (from the repository root):
    python examples/recipes/contact_sheet.py --model colorize --out examples/colorize_contact_sheet.jpg PHOTO...
    python examples/recipes/contact_sheet.py --model unet-colorize --model unet-colorize-mobilenetv2 --out X.jpg P...

colorize: input gray | unetcli output (one column per --model) | original colour photo (the photo is decolorized
first, like a user's black-and-white scan). decolorize / simple-black: original | unetcli output | skimage rgb2gray
reference.
seg: photo | mask | cut-out (``--output-type cutout``, shown on a checkerboard).
The layout is the package's (``unetcli.sheets.contact_sheet``, what ``unetcli compare`` writes): every row is
scaled to the same height; the sheet is written as JPEG (quality 90) or PNG by its extension. For outputs that
already exist, ``unetcli compare INPUT OUTPUT --reference REF -o SHEET.jpg`` makes the same sheet without a recipe.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from skimage.color import rgb2gray

from unetcli.imageio import read_photo, to_uint8
from unetcli.models.registry import get_spec
from unetcli.sheets import contact_sheet, save_sheet


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("photos", nargs="+", type=Path)
    ap.add_argument("--model", required=True, action="append",
                    help="registry model; colorizers may be given several times (one column each)")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--row-height", type=int, default=200)
    ap.add_argument("--weights", action="append", default=None, help="weights for each --model, in order")
    args = ap.parse_args()
    specs = [get_spec(m) for m in args.model]
    task = specs[0].task
    colorize = task.startswith("colorize")
    if len(specs) > 1 and not all(s.task.startswith("colorize") for s in specs):
        ap.error("several --model only for colorizers")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in"
        src.mkdir()
        originals = []
        for i, photo in enumerate(args.photos):
            rgb = to_uint8(read_photo(photo).rgb)
            originals.append(Image.fromarray(rgb))
            first = Image.fromarray(to_uint8(rgb2gray(rgb)), "L") if colorize else originals[-1]
            first.save(src / f"{i:03d}.png")
        outs = []
        for k, spec in enumerate(specs):
            out = Path(tmp) / f"out{k}"
            cmd = [sys.executable, "-m", "unetcli", "predict", "--model", spec.name, str(src), str(out), "--quiet"]
            if args.weights:
                cmd += ["--weights", args.weights[k]]
            if task == "segment":  # one run: the cut-out's alpha is the mask
                cmd += ["--output-type", "cutout"]
            subprocess.run(cmd, check=True)
            outs.append(out)
        rows = []
        for i, original in enumerate(originals):
            first = Image.open(src / f"{i:03d}.png").convert("RGB")
            written = [Image.open(out / f"{i:03d}.png") for out in outs]
            for im in written:
                im.load()
            if colorize:
                rows.append([first, *written, original])
                labels = ["input (gray)", *(f"unetcli {s.name}" for s in specs), "original"]
            elif task == "segment":  # the cut-out is shown over a checkerboard by contact_sheet
                rows.append([original, written[0].getchannel("A"), written[0]])
                labels = ["photo", "unetcli seg mask", "cut-out (alpha = mask)"]
            else:
                ref = Image.fromarray(to_uint8(rgb2gray(np.asarray(original) / 255.0)), "L")
                rows.append([original, written[0], ref])
                labels = ["input", f"unetcli {specs[0].name}", "skimage rgb2gray"]
    save_sheet(contact_sheet(rows, labels, args.row_height), args.out)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
