"""Datasets: photos to predict on (one sample per file, errors as data) and photo crops to train on."""

from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from unetcli.errors import InputError
from unetcli.imageio import collect_inputs, read_photo, to_uint8
from unetcli.tasks.base import Task


class PredictDataset(Dataset):
    """One sample per input file, decoded and prepared by the task in a DataLoader worker.

    A file that cannot be used does not raise: its sample carries ``error`` (the reason) and ``input=None``,
    so one bad file never stops the batch.

    Sample dict: ``index`` (int), ``input`` ((C_in, h, w) float32 in [0, 1] or None), ``ctx`` (task context
    for ``Task.finish``), ``notes`` (list of str), ``error`` (str or None), ``seconds`` (float, time spent
    decoding and preparing).
    """

    def __init__(self, paths: list[Path], task: Task) -> None:
        self.paths = paths
        self.task = task

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict:
        started = time.perf_counter()
        sample = {"index": index, "input": None, "ctx": None, "notes": [], "error": None, "seconds": 0.0}
        try:
            photo = read_photo(self.paths[index])
            sample["input"], sample["ctx"] = self.task.prepare(photo)
            sample["notes"] = photo.notes
        except InputError as exc:
            sample["error"] = str(exc)
        except Exception as exc:  # noqa: BLE001 - reported per file, the batch goes on
            sample["error"] = f"could not be processed ({type(exc).__name__}: {exc})"
        sample["seconds"] = time.perf_counter() - started
        return sample


def keep_sample(sample: dict) -> dict:
    """``collate_fn`` for ``DataLoader(batch_size=None)``: hand samples over unchanged (no numpy->tensor pass)."""
    return sample


def load_training_photos(folder: Path, warn=None) -> tuple[list[Path], list[np.ndarray]]:
    """Decode every image below ``folder`` (recursively, sorted) into (H, W, 3) uint8 sRGB arrays.

    Photos are decoded once and kept in memory: re-decoding JPEGs every epoch would cost more CPU time than
    training the small models. Unreadable files are reported through ``warn(path, reason)`` and left out.

    Raises:
        UsageError: the folder has no image files.
    """
    paths, photos = [], []
    for path, _ in collect_inputs(str(folder), recursive=True):
        try:
            photos.append(to_uint8(read_photo(path).rgb))
            paths.append(path)
        except InputError as exc:
            if warn is not None:
                warn(path, str(exc))
    return paths, photos


def split_indices(n: int, val_split: float, seed: int) -> tuple[list[int], list[int]]:
    """A seeded shuffle of ``range(n)`` cut into (train, val) index lists; at least one of each when n >= 2."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    n_val = int(round(n * val_split))
    if val_split > 0 and n >= 2:
        n_val = min(max(n_val, 1), n - 1)
    return sorted(order[n_val:]), sorted(order[:n_val])


class PhotoCrops(Dataset):
    """Training/validation crops of in-memory photos, turned into (input, target) pairs by the task.

    Args:
        photos: (H, W, 3) uint8 sRGB arrays.
        task: gives ``training_pair(rgb)`` -> (input (C_in, s, s), target (C_out, s, s)).
        size: side of the square crops, pixels.
        train: random augmentation (True) or a deterministic view (False).
        full_resolution: the model runs at the photo's own scale (crops of ``size``, half at 1x, half at a
            1x to 2x downscale); otherwise it runs on the whole photo resized to ``size`` (crops cover 60-100% of each
            side and are resized to ``size`` x ``size``, like prediction's resize of the whole photo).
        seed: base of the per-sample random generator; augmentation depends on (seed, epoch, index) only, so a
            resumed run sees exactly the crops an uninterrupted one would.
        crops_per_photo: samples drawn from each photo per epoch (training; small crops of large photos).
    """

    def __init__(self, photos: list[np.ndarray], task: Task, size: int, train: bool, full_resolution: bool,
                 seed: int = 0, crops_per_photo: int = 1) -> None:
        self.photos = photos
        self.crops_per_photo = crops_per_photo if train else 1
        self.task = task
        self.size = size
        self.train = train
        self.full_resolution = full_resolution
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation stream of ``epoch`` (call before building the epoch's DataLoader)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.photos) * self.crops_per_photo

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rgb = self.photos[index % len(self.photos)]
        rng = np.random.default_rng((self.seed, self.epoch if self.train else 0, index))
        crop = self._train_view(rgb, rng) if self.train else self._val_view(rgb)
        return self.task.training_pair(crop.astype(np.float32) / 255.0)

    def _resize(self, rgb: np.ndarray, w: int, h: int) -> np.ndarray:
        return np.asarray(Image.fromarray(rgb).resize((w, h), Image.Resampling.BILINEAR))

    def _train_view(self, rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        s = self.size
        h, w = rgb.shape[:2]
        if self.full_resolution:
            # Half the crops at the photo's own scale (what prediction sees), half downscaled up to 2x.
            side = s if rng.random() < 0.5 else int(round(s * rng.uniform(1.0, 2.0)))
            if min(h, w) < side:  # small photo: upscale so a crop fits
                f = side / min(h, w)
                rgb = self._resize(rgb, max(side, round(w * f)), max(side, round(h * f)))
                h, w = rgb.shape[:2]
            y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
            crop = rgb[y:y + side, x:x + side]
            crop = self._resize(crop, s, s) if side != s else crop
        else:
            ch, cw = max(1, int(h * rng.uniform(0.6, 1.0))), max(1, int(w * rng.uniform(0.6, 1.0)))
            y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
            crop = self._resize(rgb[y:y + ch, x:x + cw], s, s)
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        return np.ascontiguousarray(crop)

    def _val_view(self, rgb: np.ndarray) -> np.ndarray:
        s = self.size
        h, w = rgb.shape[:2]
        if not self.full_resolution:
            return self._resize(rgb, s, s)
        if min(h, w) < s:
            f = s / min(h, w)
            rgb = self._resize(rgb, max(s, round(w * f)), max(s, round(h * f)))
            h, w = rgb.shape[:2]
        y, x = (h - s) // 2, (w - s) // 2
        return np.ascontiguousarray(rgb[y:y + s, x:x + s])
