#!/usr/bin/env bash
# How the shipped unet-colorize weights were trained (run from the repository root, ../shared/data/photos beside it).
# About an hour on a 2-core AMX-BF16 CPU: run it in the background and continue with --resume after any stop:
#   nohup examples/recipes/train_colorize.sh > runs/train_colorize.log 2>&1 &
#   unetcli train --resume runs/unet-colorize --epochs 60
set -euo pipefail
unetcli train --model unet-colorize --data ../shared/data/photos --epochs 60 --lr-schedule cosine \
  --out runs/unet-colorize
python examples/recipes/evaluate.py runs/unet-colorize --ship
