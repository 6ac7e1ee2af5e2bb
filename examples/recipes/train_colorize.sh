#!/usr/bin/env bash
# How the shipped unet-colorize weights were trained (run from the repository root, ../shared/data/photos beside it),
# command for command. About 1.5 hours on a 2-core AMX-BF16 CPU (bf16 autocast): run it in the background,
#   nohup examples/recipes/train_colorize.sh > runs/train_colorize.log 2>&1 &
#
# The run was stopped and resumed with different --epochs, and each resume re-spreads the cosine schedule over the
# new total (epochs 1-27 over 60, 28-44 over 44, 45-46 over 100, 47-80 over 80); every resume continues from the
# last finished epoch, so the stops below reproduce it. The first stop was a kill after epoch 27 (a resumed run
# sees the same crops as an uninterrupted one; `unetcli train --resume` continues from RUN/last.pt).
# A stale metrics.csv from an earlier run in the same folder would confuse the polling: start with an empty $run.
#
# The shipped weights are RUN/best.safetensors as it stood after epoch 57 (then the best validation PSNR): of the
# checkpoints the run kept, the one with the highest validation colourfulness. The run's final weights (best PSNR,
# epoch 76) render the package photos at 28.8 % of their colourfulness, under the bar of a third; epoch 57's: 33.4 %.
set -euo pipefail
run=runs/unet-colorize
# stop_after E CMD...: run CMD, kill it once epoch E's checkpoint (last.pt, written after metrics.csv) is on disk.
stop_after() {
  local epoch=$1; shift
  "$@" & local pid=$!
  until grep -q "^$epoch," $run/metrics.csv 2>/dev/null && [ $run/last.pt -nt $run/metrics.csv ]; do sleep 2; done
  kill -9 $pid; wait $pid || true
}
stop_after 27 unetcli train --model unet-colorize --data ../shared/data/photos --epochs 60 --lr-schedule cosine \
  --out $run
unetcli train --resume $run --epochs 44
stop_after 46 unetcli train --resume $run --epochs 100
# Epochs 47-80 over 80; keep best.* as it stands after epoch 57 (the shipped weights).
unetcli train --resume $run --epochs 80 &
trainer=$!
until grep -q '^57,' $run/metrics.csv 2>/dev/null; do sleep 10; done
mkdir -p $run-epoch57 && cp $run/best.safetensors $run-epoch57/unet-colorize.safetensors \
  && cp $run/best.json $run-epoch57/unet-colorize.json && cp $run/split.json $run-epoch57/
wait $trainer
python examples/recipes/evaluate.py $run $run-epoch57   # scores both into their cards; then:
# cp $run-epoch57/unet-colorize.* weights/
