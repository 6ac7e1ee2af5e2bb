#!/usr/bin/env bash
# How the shipped simple-black and unet-decolorize weights were trained (run from the repository root, with
# ../shared/data/photos beside it). Long runs: start with nohup, follow the log, continue with --resume after any stop:
#   nohup examples/recipes/train_gray_models.sh > runs/train_gray.log 2>&1 &
#   unetcli train --resume runs/unet-decolorize --epochs 120      # after an interruption
set -euo pipefail
unetcli train --model simple-black --data ../shared/data/photos --epochs 40 --lr 0.01 --lr-schedule cosine \
  --precision fp32 --out runs/simple-black
unetcli train --model unet-decolorize --data ../shared/data/photos --epochs 120 --lr-schedule cosine \
  --out runs/unet-decolorize
# Score at full resolution on held-out photos and scikit-image's photos, write the numbers into the model cards,
# and copy weights + cards into weights/:
python examples/recipes/evaluate.py runs/simple-black runs/unet-decolorize --ship
