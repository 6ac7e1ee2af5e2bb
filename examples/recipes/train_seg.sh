#!/usr/bin/env bash
# How to train the unet-seg (person) weights (run from the repository root, ../shared/data beside it).
# NOT yet enough on a 2-core CPU: runs of 10-20 k composites reached a validation IoU near 0.2-0.3 (bar 0.85); the
# model is under-trained (README, "Weights"). Optionally start the encoder from the colorize weights:
#   python examples/recipes/seg_init_from_colorize.py weights/unet-colorize.safetensors runs/unet-seg-init.safetensors
#   and add  --weights runs/unet-seg-init.safetensors  to the train command below.
# 1. Person composites (real cut-outs on real photos; held-out people and background packages for validation).
# 2. Several hours on a 2-core AMX-BF16 CPU (minutes on a GPU): run it in the background and continue with --resume after any stop:
#      nohup examples/recipes/train_seg.sh > runs/train_seg.log 2>&1 &
#      unetcli train --resume runs/unet-seg --epochs 12
# 3. Full-resolution IoU / Dice on the held-out composites into the model card, then copy into weights/.
set -euo pipefail
python examples/recipes/make_person_composites.py --out data/person-composites
unetcli train --model unet-seg --data data/person-composites/train --val-data data/person-composites/val \
  --epochs 12 --lr-schedule cosine --out runs/unet-seg
python examples/recipes/evaluate.py runs/unet-seg --ship
