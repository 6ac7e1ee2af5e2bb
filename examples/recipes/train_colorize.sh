#!/usr/bin/env bash
# How the shipped unet-colorize weights were trained (run from the repository root, ../shared/data/photos beside it),
# command for command. About 1.5 hours on a 2-core AMX-BF16 CPU (bf16 autocast): run it in the background,
#   nohup examples/recipes/train_colorize.sh > runs/train_colorize.log 2>&1 &
#
# The run was stopped and resumed with different --epochs, and each resume re-spreads the cosine schedule over the
# new total (epochs 1-27 over 60, 28-44 over 44, 45-46 over 100, 47-80 over 80); every resume continues from the
# last finished epoch, so the stops below reproduce it. The first stop was a kill after epoch 27 (a resumed run
# sees the same crops as an uninterrupted one; `unetcli train --resume` continues from RUN/last.pt).
#
# The shipped weights are RUN/best.safetensors as it stood after epoch 57 (then the best validation PSNR): of the
# checkpoints the run kept, the one with the highest validation colourfulness. The run's final weights (best PSNR,
# epoch 76) render the package photos at 28.8 % of their colourfulness, under the bar of a third; epoch 57's: 33.4 %.
set -euo pipefail
run=runs/unet-colorize
timeout --signal=KILL 1680 unetcli train --model unet-colorize --data ../shared/data/photos --epochs 60 \
  --lr-schedule cosine --out $run || true   # about 27 epochs; check $run/metrics.csv and resume from there
unetcli train --resume $run --epochs 44
timeout --signal=KILL 180 unetcli train --resume $run --epochs 100 || true   # 2 epochs (45, 46)
# Epochs 47-80 over 80; keep best.* as it stands after epoch 57 (the shipped weights).
unetcli train --resume $run --epochs 80 &
trainer=$!
until grep -q '^57,' $run/metrics.csv 2>/dev/null; do sleep 10; done
mkdir -p $run-epoch57 && cp $run/best.safetensors $run-epoch57/unet-colorize.safetensors \
  && cp $run/best.json $run-epoch57/unet-colorize.json && cp $run/split.json $run-epoch57/
wait $trainer
python examples/recipes/evaluate.py $run $run-epoch57   # scores both into their cards; then:
# cp $run-epoch57/unet-colorize.* weights/
