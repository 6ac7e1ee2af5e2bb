#!/usr/bin/env bash
# How the shipped simple-black and unet-decolorize weights were trained (run from the repository root, with
# ../shared/data/photos beside it). Long runs: start with nohup, follow the log, continue with --resume after any stop:
#   nohup examples/recipes/train_gray_models.sh > runs/train_gray.log 2>&1 &
#   unetcli train --resume runs/unet-decolorize-stage1 --epochs 40      # after an interruption
set -euo pipefail
unetcli train --model simple-black --data ../shared/data/photos --epochs 40 --lr 0.01 --lr-schedule cosine \
  --precision fp32 --out runs/simple-black
# unet-decolorize in two stages. Stage 1: small crops, many per photo; BatchNorm statistics frozen after 4 epochs
# (with batch statistics the fit plateaus near 31 dB validation PSNR; see engine/train.py freeze_batchnorm).
# (The shipped stage 1 ran with --out runs/unet-decolorize and was copied to runs/unet-decolorize-stage1.)
unetcli train --model unet-decolorize --data ../shared/data/photos --epochs 40 --size 64 --crops-per-photo 8 \
  --freeze-bn-after 4 --lr-schedule cosine --out runs/unet-decolorize-stage1
# Stage 2: fine-tune at a lower learning rate on larger crops, half of them at the photos' own scale.
unetcli train --model unet-decolorize --data ../shared/data/photos \
  --weights runs/unet-decolorize-stage1/unet-decolorize.safetensors --epochs 12 --lr 0.0003 --size 96 \
  --crops-per-photo 6 --freeze-bn-after 0 --lr-schedule cosine --out runs/unet-decolorize-ft
# Score at full resolution on held-out photos and on scikit-image's/scikit-learn's photos, write the numbers into
# the model cards, and copy weights + cards into weights/:
python examples/recipes/evaluate.py runs/simple-black runs/unet-decolorize-ft --ship
