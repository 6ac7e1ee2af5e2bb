#!/usr/bin/env bash
# How to train the unet-seg (seed architecture, person) weights (run from the repository root, ../shared/data
# beside it): FitNets hints, then function matching (Beyer et al., CVPR 2022) from the pretrained-encoder person
# segmenter.
# Why not the masks: trained on the composites' masks from scratch, the seed's 31 M network learnt the 13 training
# people, not "person": over 16-96 k composites the held-out people scored 0.33-0.52 with no upward trend while
# the training people rose to 0.69 (docs/models.md). A teacher that has seen ImageNet marks people it never saw
# (0.72 on the same held-out composites), and its probabilities on mixed-up crops carry more per crop than a mask.
# 1. The teacher and the training folder: examples/recipes/train_seg_mobilenetv2.sh (its stage 3 writes
#    runs/seg-mnv2-tex and data/seg-train-tex; data/person-composites-384/val is the held-out validation set).
# 2. Start the encoder from the shipped colorize weights (colorization as a pretext task: from the masks, 0.33
#    after 16 k composites where random starts of similar length reached 0.26-0.28), then teach it the teacher's
#    encoder features at strides 2-16 (FitNets hints, seg_init_fitnets.py: 1,598 steps of 16 crops of 192 px,
#    40 min, encoder only). After one epoch of step 3, held-out composites 0.38 with the hints, 0.23 without.
# 3. unetcli train --teacher: each batch of 192-px crops (at the working scale, longest side 384) is mixed up
#    (crop i with crop i-1, a weight uniform in [0, 1]) and the targets are the teacher's probabilities on those
#    pixels; validation scores the masks. Cosine over 6 epochs of 10,989 crops; on a 2-core AVX512-BF16 CPU
#    2.8 crops/s (bf16): about 65 min an epoch, 6.5 h in all (the seed's network at 256-px crops: 1.5 crops/s).
#    A checkpoint every 10 min; after any stop `unetcli train --resume runs/unet-seg` continues, mid-epoch too.
#      nohup examples/recipes/train_seg.sh > runs/train_seg.log 2>&1 &
# 4. Full-resolution IoU on the held-out composites and real people into the model card (evaluate.py; --ship
#    copies weights and card into weights/).
set -euo pipefail
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
python examples/recipes/seg_init_from_colorize.py weights/unet-colorize.safetensors runs/unet-seg-init.safetensors
python examples/recipes/seg_init_fitnets.py --init runs/unet-seg-init.safetensors \
  --teacher runs/seg-mnv2-tex/unet-seg-mobilenetv2.safetensors --data data/seg-train-tex/images --steps 1598 \
  --out runs/unet-seg-fitnets.safetensors
unetcli train --model unet-seg --weights runs/unet-seg-fitnets.safetensors --data data/seg-train-tex \
  --val-data data/person-composites-384/val --teacher runs/seg-mnv2-tex/unet-seg-mobilenetv2.safetensors \
  --size 192 --batch-size 16 --epochs 6 --lr 5e-4 --lr-schedule cosine --workers 0 --out runs/unet-seg
python examples/recipes/evaluate.py runs/unet-seg
