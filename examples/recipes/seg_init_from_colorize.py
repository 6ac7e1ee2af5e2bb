#!/usr/bin/env python
"""Initial weights for unet-seg whose encoder is a trained unet-colorize encoder (colorization as a
self-supervised pretext task: Zhang, Isola & Efros, "Colorful Image Colorization", ECCV 2016, section 3.2, and
Larsson et al., "Colorization as a Proxy Task for Visual Understanding", CVPR 2017).

The two seed U-Nets share their encoder: (3x3 conv, BatchNorm, ReLU) x 2 stages of 64-128-256-512 and a
1024-channel bottom stage (colorize ``enc1..enc5``, seg ``enc.0..enc.3`` + ``bridge``). Only the first
convolution differs: colorize reads luminance (1 channel), seg reads RGB (3 channels). Its RGB weights are the
gray weights times the ``skimage.color.rgb2gray`` coefficients (0.2125, 0.7154, 0.0721), so on any photo the
first layer computes exactly what the colorize net computed on ``rgb2gray(photo)``. The decoder and output layer
keep their random initialisation (seed 0).

Usage (from the repository root)::

    python examples/recipes/seg_init_from_colorize.py COLORIZE.safetensors runs/unet-seg-init.safetensors
    unetcli train --model unet-seg --weights runs/unet-seg-init.safetensors --data ... --val-data ...
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from unetcli.models.registry import get_spec
from unetcli.weights import load_state, save_weights

#: skimage.color.rgb2gray: Y = 0.2125 R + 0.7154 G + 0.0721 B.
RGB2GRAY = torch.tensor([0.2125, 0.7154, 0.0721])
#: colorize stage prefix -> seg stage prefix (``Down`` = max-pool + DoubleConv, hence the ``.1``).
STAGES = {"enc1.": "enc.0.", "enc2.1.": "enc.1.", "enc3.1.": "enc.2.", "enc4.1.": "enc.3.", "enc5.1.": "bridge."}


def seg_from_colorize(colorize_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A unet-seg state dict (1 class) with the colorize encoder copied in; decoder randomly initialised.

    Raises:
        KeyError / RuntimeError: the state dict is not a unet-colorize one.
    """
    torch.manual_seed(0)
    seg = get_spec("unet-seg").factory(num_classes=1)
    state = seg.state_dict()
    copied = 0
    for key, value in colorize_state.items():
        for src, dst in STAGES.items():
            if key.startswith(src):
                target = dst + key[len(src):]
                if key == "enc1.0.weight":  # (64, 1, 3, 3) gray -> (64, 3, 3, 3) RGB
                    value = value * RGB2GRAY.view(1, 3, 1, 1)
                state[target].copy_(value)
                copied += 1
    seg.load_state_dict(state)
    print(f"copied {copied} encoder tensors from unet-colorize")
    return seg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("colorize", type=Path, help="unet-colorize .safetensors")
    ap.add_argument("out", type=Path, help="unet-seg .safetensors to write")
    args = ap.parse_args()
    state, info = load_state(args.colorize, get_spec("unet-colorize"))
    model = seg_from_colorize(state)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_weights(model, args.out, {"model": "unet-seg", "init": {
        "encoder": f"unet-colorize {args.colorize.name} (sha256 {info.sha256})",
        "first_conv": "gray weights x rgb2gray coefficients", "decoder": "random (torch.manual_seed(0))"}})
    print(args.out)


if __name__ == "__main__":
    main()
