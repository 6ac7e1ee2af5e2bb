#!/usr/bin/env python
"""Initial weights for unet-seg whose encoder regresses a pretrained MobileNetV2's features (FitNets hints:
Romero et al., "FitNets: Hints for Thin Deep Nets", ICLR 2015, stage 1; here the student is the wider network and
the hints come from a better-informed, not a deeper, teacher).

The seed's encoder stages at strides 2, 4, 8 and 16 (``enc.1``, ``enc.2``, ``enc.3``, ``bridge``: 128, 256, 512,
1024 channels) each feed a 1x1 convolution (the FitNets "regressor") that must reproduce the teacher encoder's
features at the same stride (MobileNetV2 stages of 16, 24, 32, 96 channels). Loss: mean squared error per stage
on the teacher's features standardised per channel (mean and std of the first batches), so that no stage
dominates by its scale; the four stages weigh the same. The teacher is the person segmenter's encoder
(``unet-seg-mobilenetv2``: ImageNet MobileNetV2 fine-tuned on people), so its features carry "person" as well as
ImageNet's edges and parts. Only the encoder trains; the decoder and output layer are copied unchanged from
``--init`` (random in seg_init_from_colorize.py's output). Then train the whole network on the teacher's outputs
or on masks (examples/recipes/train_seg.sh).

Crops: every image of ``--data`` (composites and real photos; masks are not read) scaled to longest side 384 (the
unet-seg working size), a random ``--size`` crop, a random horizontal flip. bf16 autocast and channels_last where
the CPU or GPU has bf16 (as ``unetcli train``), Adam, constant learning rate. A run stops after ``--steps`` or
``--minutes``, whichever comes first, or on Ctrl-C, and writes the weights it has then (no resume: rerun).

Usage (from the repository root)::

    python examples/recipes/seg_init_from_colorize.py weights/unet-colorize.safetensors runs/unet-seg-init.safetensors
    python examples/recipes/seg_init_fitnets.py --init runs/unet-seg-init.safetensors \
        --teacher runs/seg-mnv2-tex/unet-seg-mobilenetv2.safetensors --data data/seg-train-tex/images \
        --steps 1598 --out runs/unet-seg-fitnets.safetensors
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from unetcli.devices import autocast, precision_name, resolve_precision, select_device
from unetcli.engine.model import load_model
from unetcli.models.registry import get_spec
from unetcli.weights import read_card, save_weights

SEED = get_spec("unet-seg")
#: (student channels, teacher channels) at strides 2, 4, 8, 16: unet-seg's enc.1, enc.2, enc.3, bridge against
#: MobileNetV2Encoder's first four stages.
HINTS = ((128, 16), (256, 24), (512, 32), (1024, 96))


def student_features(seg: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """The seed unet-seg encoder's stage outputs at strides 2, 4, 8, 16: (N, 128|256|512|1024, H/s, W/s)."""
    feats = []
    x = seg.enc[0](x)
    for block in (*seg.enc[1:], seg.bridge):
        x = block(seg.pool(x))
        feats.append(x)
    return feats


def crops(paths: list[Path], size: int, batch: int, rng: random.Random):
    """Endless batches (N, 3, size, size) float32 sRGB in [0, 1] of random crops at the working scale."""
    while True:
        xs = []
        for p in rng.sample(paths, batch):
            im = Image.open(p).convert("RGB")  # the recipe's own composites and photos: plain files
            f = SEED.working_size / max(im.size)
            w, h = max(size, round(im.width * f)), max(size, round(im.height * f))
            im = im.resize((w, h), Image.Resampling.BILINEAR)
            x0, y0 = rng.randint(0, w - size), rng.randint(0, h - size)
            a = np.asarray(im.crop((x0, y0, x0 + size, y0 + size)), np.float32) / 255.0
            xs.append(a[:, ::-1] if rng.random() < 0.5 else a)
        yield torch.from_numpy(np.ascontiguousarray(np.stack(xs))).permute(0, 3, 1, 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--init", type=Path, required=True, help="unet-seg .safetensors to start from")
    ap.add_argument("--teacher", type=Path, required=True, help="unet-seg-mobilenetv2 .safetensors")
    ap.add_argument("--data", type=Path, required=True, help="folder of training images (composites, photos)")
    ap.add_argument("--out", type=Path, required=True, help="unet-seg .safetensors to write")
    ap.add_argument("--size", type=int, default=192, help="crop side, pixels (default 192)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--minutes", type=float, default=40.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--log-every", type=int, default=50, metavar="STEPS", help="print the mean losses every STEPS")
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    device = select_device("auto")
    dtype = resolve_precision("auto", device)
    seg, init_info = load_model(SEED, args.init, device)  # checks each file against its card's sha256
    seg.train()
    teacher, teacher_info = load_model(get_spec("unet-seg-mobilenetv2"), args.teacher, device)
    encoder = teacher.encoder.requires_grad_(False)
    heads = nn.ModuleList(nn.Conv2d(c, tc, 1) for c, tc in HINTS).to(device, memory_format=torch.channels_last)
    params = [p for n, p in seg.named_parameters() if n.startswith(("enc.", "bridge."))] + list(heads.parameters())
    opt = torch.optim.Adam(params, lr=args.lr)

    paths = sorted(p for p in args.data.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    batches = crops(paths, args.size, args.batch_size, random.Random(args.seed))
    # Per-channel standardisation of the teacher's features, fixed from the first 4 batches.
    with torch.no_grad(), autocast(device, dtype):
        sample = [encoder(next(batches).to(device).contiguous(memory_format=torch.channels_last))[:4]
                  for _ in range(4)]
    stages = [torch.cat([s[i].float() for s in sample]) for i in range(len(HINTS))]
    stats = [(f.mean((0, 2, 3), keepdim=True), f.std((0, 2, 3), keepdim=True).clamp_min(1e-3)) for f in stages]

    log, start, step = [], time.perf_counter(), 0
    running = np.zeros(4)
    try:
        while step < args.steps and time.perf_counter() - start < args.minutes * 60:
            x = next(batches).to(device).contiguous(memory_format=torch.channels_last)
            with torch.no_grad(), autocast(device, dtype):
                targets = [(f.float() - m) / s for f, (m, s) in zip(encoder(x)[:4], stats)]
            with autocast(device, dtype):
                preds = [head(f) for head, f in zip(heads, student_features(seg, x))]
            losses = [F.mse_loss(p.float(), t) for p, t in zip(preds, targets)]
            opt.zero_grad(set_to_none=True)
            sum(losses).backward()
            opt.step()
            step += 1
            running += [v.item() for v in losses]
            if step % args.log_every == 0:
                minutes = round((time.perf_counter() - start) / 60, 1)
                mse = dict(zip(("2", "4", "8", "16"), np.round(running / args.log_every, 4).tolist()))
                log.append({"step": step, "crops": step * args.batch_size, "minutes": minutes, "mse_by_stride": mse})
                print(json.dumps(log[-1]), flush=True)
                running[:] = 0
    except KeyboardInterrupt:
        print(f"stopped at step {step}", flush=True)
    seg.eval()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_weights(seg.to("cpu", memory_format=torch.contiguous_format), args.out, {"model": "unet-seg", "init": {
        "method": "FitNets hints (examples/recipes/seg_init_fitnets.py)", "command": " ".join(
            ["python", "examples/recipes/seg_init_fitnets.py"] + sys.argv[1:]),
        "from": f"{args.init} (sha256 {init_info.sha256})", "from_init": read_card(args.init).get("init"),
        "teacher": f"unet-seg-mobilenetv2 {args.teacher} (sha256 {teacher_info.sha256}), encoder features at "
                   "strides 2-16", "steps": step, "crops": step * args.batch_size, "size": args.size,
        "batch_size": args.batch_size, "lr": args.lr, "precision": precision_name(dtype), "log": log[-20:]}},
        dtype=torch.float32)
    print(args.out)


if __name__ == "__main__":
    main()
