"""The unet-colorize-mobilenetv2 variants measured for its model card, registered under their own names and run
through the ``unetcli`` command with the remaining arguments (the shipped model is the one that measured best):

* ``unet-colorize-mobilenetv2-bins``: Zhang et al.'s classification variant: 529 a/b-bin logits (1x1 head),
  cross-entropy on soft targets rebalanced with Zhang et al.'s lambda 0.5, annealed-mean decoding
  (unetcli/tasks/colorize_lab.py);
* ``unet-colorize-mobilenetv2-l<L>``: the regression head with rebalancing lambda L (0.5 is Zhang et al.'s; 1 is no
  rebalancing; the shipped model uses 0.8), e.g. ``-l0.5``.

    python examples/recipes/colorize_variants.py train --model unet-colorize-mobilenetv2-bins \\
        --data ../shared/data/photos --epochs 15 --lr-schedule cosine --workers 0 --out runs/colorize-bins
    python examples/recipes/colorize_variants.py predict -w runs/colorize-bins/best.safetensors photos/ out/
    python examples/recipes/colorize_variants.py evaluate runs/colorize-bins     # examples/recipes/evaluate.py
"""

from __future__ import annotations

import dataclasses
import runpy
import sys
from pathlib import Path

from unetcli.cli import main
from unetcli.models.colorize_mobilenetv2 import SPEC, UNetColorizeMobileNetV2
from unetcli.models.registry import register_model
from unetcli.tasks import register_task
from unetcli.tasks.colorize_lab import NUM_BINS, LabColorizeTask


def bins_model(in_channels: int = 1, out_channels: int = NUM_BINS) -> UNetColorizeMobileNetV2:
    """The bin-logits variant: (N, 1, H, W) luminance -> (N, 529, H, W) logits."""
    return UNetColorizeMobileNetV2(in_channels, out_channels)


register_task("colorize-lab-bins", type("LabColorizeTaskBins", (LabColorizeTask,), {"rebalance_lambda": 0.5}))
BINS_SPEC = dataclasses.replace(
    SPEC, name="unet-colorize-mobilenetv2-bins", aliases=(), factory=bins_model, out_channels=NUM_BINS,
    task="colorize-lab-bins",
    params=6_637_793, loss="rebalanced-cross-entropy (a/b bins)",
    description="gray photo -> colour (529 a/b bins, annealed mean), ImageNet-pretrained MobileNetV2 encoder")


def lambda_spec(lam: float):
    """The regression variant with rebalancing ``lambda`` = ``lam``: its own task class and registry name."""
    task = type(f"LabColorizeTaskL{lam:g}", (LabColorizeTask,), {"rebalance_lambda": lam})
    register_task(f"colorize-lab-l{lam:g}", task)
    return dataclasses.replace(SPEC, name=f"unet-colorize-mobilenetv2-l{lam:g}", aliases=(),
                               task=f"colorize-lab-l{lam:g}", loss=f"rebalanced-huber (lambda {lam:g})")


if __name__ == "__main__":
    register_model(BINS_SPEC)
    for lam in (0.5, 0.7, 0.9, 1.0):
        register_model(lambda_spec(lam))
    if sys.argv[1:2] == ["evaluate"]:
        sys.argv = [str(Path(__file__).with_name("evaluate.py"))] + sys.argv[2:]
        runpy.run_path(sys.argv[0], run_name="__main__")
    else:
        main(sys.argv[1:])
