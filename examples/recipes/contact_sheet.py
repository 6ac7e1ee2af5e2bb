"""Make a before/after contact sheet with ``unetcli predict``: one row per photo, columns side by side.

Usage (from the repository root):
    python examples/recipes/contact_sheet.py --model colorize --out examples/colorize_contact_sheet.jpg PHOTO...

colorize: input gray | unetcli output | original colour photo (the photo is decolorized first, like a user's
black-and-white scan). decolorize / simple-black: original | unetcli output | skimage rgb2gray reference.
seg: photo | mask | cut-out (``--output-type cutout``, shown on a checkerboard).
Every row is scaled to the same height; the sheet is written as JPEG (quality 90) or PNG by its extension.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from skimage.color import rgb2gray

from unetcli.imageio import read_photo, to_uint8
from unetcli.models.registry import get_spec


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("photos", nargs="+", type=Path)
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--row-height", type=int, default=200)
    ap.add_argument("--weights", default=None)
    args = ap.parse_args()
    spec = get_spec(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "in", Path(tmp) / "out"
        src.mkdir()
        originals = []
        for i, photo in enumerate(args.photos):
            rgb = to_uint8(read_photo(photo).rgb)
            originals.append(Image.fromarray(rgb))
            first = Image.fromarray(to_uint8(rgb2gray(rgb)), "L") if spec.task == "colorize" else originals[-1]
            first.save(src / f"{i:03d}.png")
        cmd = [sys.executable, "-m", "unetcli", "predict", "--model", spec.name, str(src), str(out), "--quiet"]
        if args.weights:
            cmd += ["--weights", args.weights]
        if spec.task == "segment":  # one run: the cut-out's alpha is the mask
            cmd += ["--output-type", "cutout"]
        subprocess.run(cmd, check=True)
        rows = []
        for i, original in enumerate(originals):
            first = Image.open(src / f"{i:03d}.png").convert("RGB")
            written = Image.open(out / f"{i:03d}.png")
            result = (written.getchannel("A") if spec.task == "segment" else written).convert("RGB")
            if spec.task == "colorize":
                cells, labels = [first, result, original], ["input (gray)", "unetcli colorize", "original"]
            elif spec.task == "segment":
                cut = written
                board = (np.indices((cut.height, cut.width)) // 12).sum(axis=0) % 2  # 12-px squares
                back = Image.fromarray(np.where(board, 205, 245).astype(np.uint8), "L").convert("RGBA")
                cells = [original, result, Image.alpha_composite(back, cut).convert("RGB")]
                labels = ["photo", "unetcli seg mask", "cut-out (alpha = mask)"]
            else:
                ref = Image.fromarray(to_uint8(rgb2gray(np.asarray(original) / 255.0)), "L").convert("RGB")
                cells, labels = [original, result, ref], ["input", f"unetcli {spec.name}", "skimage rgb2gray"]
            scale = args.row_height / original.height
            size = (max(1, round(original.width * scale)), args.row_height)
            row = Image.new("RGB", (3 * size[0] + 8, args.row_height), "white")
            for j, (cell, label) in enumerate(zip(cells, labels)):
                row.paste(cell.resize(size, Image.Resampling.LANCZOS), (j * (size[0] + 4), 0))
                if i == 0:
                    ImageDraw.Draw(row).text((j * (size[0] + 4) + 4, 4), label, fill="white", stroke_width=2,
                                             stroke_fill="black")
            rows.append(row)
    width = max(r.width for r in rows)
    sheet = Image.new("RGB", (width, sum(r.height + 4 for r in rows)), "white")
    y = 0
    for r in rows:
        sheet.paste(r, (0, y))
        y += r.height + 4
    sheet.save(args.out, quality=90)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
