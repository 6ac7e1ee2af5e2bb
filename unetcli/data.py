"""Datasets: photos to predict on (one sample per file, errors as data) and photo crops to train on."""

from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, get_worker_info

from unetcli.errors import InputError, UsageError
from unetcli.imageio import read_photo
from unetcli.inputs import collect_inputs, is_image_name
from unetcli.tasks.base import Task, longest_side_size


class Loader(DataLoader):
    """``torch.utils.data.DataLoader`` without its warning when ``num_workers`` exceeds the CPUs this process may use
    (1-core containers, ``taskset``): the worker count is the user's explicit choice (or our documented default),
    and the warning would break the promise that ``--quiet`` prints only errors and the final count. (A loader
    class rather than a process-wide ``warnings`` filter, so importing unetcli changes no global state.)"""

    def check_worker_number_rationality(self) -> None:
        return None


class PredictDataset(Dataset):
    """One sample per input file, decoded and prepared by the task in a DataLoader worker.

    A file that cannot be used does not raise: its sample carries ``error`` (the reason) and ``input=None``,
    so one bad file never stops the batch.

    Sample dict: ``index`` (int), ``input`` ((C_in, h, w) float32 in [0, 1], or uint8 holding 255 x that:
    ``Task.prepare_compact``; None after an error), ``ctx`` (task context for ``Task.finish``), ``notes`` (list of
    str), ``error`` (str or None), ``seconds`` (float, time spent decoding and preparing). Photos are decoded at the
    reduced scale the task allows (``Task.reduced_size``).

    Args:
        paths: the files.
        task: prepares each decoded photo.
        indices: the indices of ``paths`` this dataset serves, in order (default: all); item k is file
            ``indices[k]`` and its sample's ``index`` is ``indices[k]``.
        busy: shared memory (``multiprocessing.RawArray``, one slot per DataLoader worker) in which each worker
            keeps the index it is decoding (-1: none), so that when a worker process is killed the file it was
            decoding is known (:meth:`busy_indices`).
    """

    def __init__(self, paths: list[Path], task: Task, indices: list[int] | None = None, busy=None) -> None:
        self.paths = paths
        self.task = task
        self.indices = list(range(len(paths))) if indices is None else indices
        self.busy = busy

    def __len__(self) -> int:
        return len(self.indices)

    def busy_indices(self) -> set[int]:
        """The files the workers were decoding when last seen (after a worker died: the one it was decoding)."""
        return {i for i in (self.busy or []) if i >= 0}

    def __getitem__(self, k: int) -> dict:
        index = self.indices[k]
        worker = get_worker_info()
        if self.busy is not None and worker is not None:
            self.busy[worker.id] = index
        try:
            return self._sample(index)
        finally:
            if self.busy is not None and worker is not None:
                self.busy[worker.id] = -1

    def _sample(self, index: int) -> dict:
        started = time.perf_counter()
        sample = {"index": index, "input": None, "ctx": None, "notes": [], "error": None, "seconds": 0.0}
        try:
            photo = read_photo(self.paths[index], reduce_to=self.task.reduced_size)
            sample["input"], sample["ctx"] = self.task.prepare_compact(photo)
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
            photos.append(read_photo(path).as_uint8())
            paths.append(path)
        except InputError as exc:
            if warn is not None:
                warn(path, str(exc))
    return paths, photos


def read_mask(path: Path, num_classes: int) -> np.ndarray:
    """Decode a segmentation mask into (H, W) uint8 class indices.

    Accepted: 8-bit single-channel images (Pillow modes "L", "P" as Pascal VOC writes them, "1"). One class:
    0/255 masks (any value >= 128 is the class, so anti-aliased edges are fine) or 0/1 masks (a mask whose
    largest value is 1). Several classes: class indices 0..num_classes-1.

    Raises:
        InputError: unreadable or corrupt file, more than one channel, or an index out of range; the message
            says which.
    """
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            arr = np.asarray(im.convert("L") if mode == "1" else im)
    except Exception as exc:  # noqa: BLE001 - any decoder failure is reported with the file
        raise InputError(f"cannot read the mask ({type(exc).__name__}: {exc})") from exc
    if mode not in ("L", "P", "1"):
        raise InputError(f"mask is mode {mode}; expected an 8-bit single-channel PNG (mode L or P)")
    if num_classes == 1:
        return (arr >= (1 if arr.max(initial=0) <= 1 else 128)).astype(np.uint8)
    top = int(arr.max(initial=0))
    if top >= num_classes:
        raise InputError(f"class index {top} out of range for --classes {num_classes} (expected 0..{num_classes - 1})")
    return arr.astype(np.uint8)


#: EXIF orientation (tag 0x0112) -> the Pillow transpose that turns stored pixels upright, for the four orientations
#: that swap width and height (the table ``ImageOps.exif_transpose`` uses). Pillow applies it only to an image
#: that carries the tag itself; a mask file carries none, so its image's orientation is applied here.
_SWAPPING_ORIENTATIONS = {5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270,
                          7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}


def align_mask(mask: np.ndarray, image_path: Path, shape: tuple[int, int]) -> np.ndarray:
    """Match a (h, w) uint8 mask to its image as the image is shown, (H, W) = ``shape`` (EXIF orientation applied).

    Images are read with their EXIF orientation applied (:func:`unetcli.imageio.read_photo`). A mask drawn on the
    upright photo has the shown size and is used as it is; a mask that follows the image's stored pixels (what a
    tool that ignores EXIF, such as a plain ``PIL.Image.open``, produces) has width and height swapped against a
    sideways-stored photo (orientations 5-8) and is turned the same way as its image. Flips and 180-degree turns
    keep the size, so such a mask cannot be told apart: it is taken as drawn on the upright photo.

    Raises:
        InputError: the mask fits neither orientation; the message gives both sizes.
    """
    if mask.shape == tuple(shape):
        return mask
    h, w = shape
    with Image.open(image_path) as im:
        orientation = im.getexif().get(0x0112, 1)
    if mask.shape == (w, h) and orientation in _SWAPPING_ORIENTATIONS:
        return np.asarray(Image.fromarray(mask).transpose(_SWAPPING_ORIENTATIONS[orientation]))
    raise InputError(f"mask is {mask.shape[1]}x{mask.shape[0]} but its image {Path(image_path).name} is {w}x{h}"
                     + (" (as shown, after its EXIF orientation)" if orientation != 1 else ""))


#: Image folder names under ``--data``: ours, and milesial/Pytorch-UNet's (``data/imgs`` + ``data/masks``).
IMAGE_DIRS = ("images", "imgs")
#: Mask file stems tried for an image ``STEM``: the same stem, or milesial's / Carvana's ``STEM_mask`` (its
#: ``--mask-suffix``-free default layout: ``imgs/0cdf5b5d0ce1_01.jpg`` + ``masks/0cdf5b5d0ce1_01_mask.gif``).
MASK_STEMS = ("{}", "{}_mask")


def find_mask_pairs(folder: Path) -> tuple[list[tuple[Path, Path]], list[str]]:
    """Match the images of ``folder/images/`` (or ``folder/imgs/``) with their masks in ``folder/masks/``.

    A mask has the image's stem (``images/a.jpg`` + ``masks/a.png``) or the stem with ``_mask`` appended
    (``imgs/a.jpg`` + ``masks/a_mask.gif``, the layout of milesial/Pytorch-UNet and the Kaggle Carvana set); any
    image format Pillow reads. Nothing is decoded.

    Returns:
        ((image, mask) path pairs, sorted by image; problems: one line per image with no mask or several).

    Raises:
        UsageError: no images/ (imgs/) or masks/ folder, or both images/ and imgs/.
    """
    found_dirs = [folder / name for name in IMAGE_DIRS if (folder / name).is_dir()]
    if len(found_dirs) > 1:
        raise UsageError(f"--data {folder}: both images/ and imgs/ folders; keep the images in one of them")
    img_dir = found_dirs[0] if found_dirs else folder / IMAGE_DIRS[0]
    mask_dir = folder / "masks"
    for d in (img_dir, mask_dir):
        if not d.is_dir():
            raise UsageError(f"--data {folder}: no {d.name}/ folder; segmentation data is DATA/images/* (or "
                             f"DATA/imgs/*) with masks DATA/masks/* of the same names, or NAME_mask.* (8-bit PNG "
                             f"or GIF)")
    masks: dict[str, list[Path]] = {}
    for m in sorted(mask_dir.iterdir()):
        if m.is_file() and is_image_name(m):
            masks.setdefault(m.stem, []).append(m)
    pairs, problems = [], []
    for path, _ in collect_inputs(str(img_dir)):
        found = [m for pattern in MASK_STEMS for m in masks.get(pattern.format(path.stem), [])]
        if len(found) == 1:
            pairs.append((path, found[0]))
        else:
            problems.append(f"{path}: " + (f"no mask {mask_dir}/{path.stem}.png (or {path.stem}_mask.*)"
                                           if not found else "several masks: " + ", ".join(map(str, found))))
    return pairs, problems


def raise_data_problems(folder: Path, problems: list[str]) -> None:
    """One UsageError listing (up to 20 of) the unusable image/mask pairs of ``folder``; nothing if none."""
    if problems:
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise UsageError(f"--data {folder}: {len(problems)} image/mask pair(s) cannot be used:\n  "
                         + "\n  ".join(problems[:20]) + more)


def load_segmentation_pairs(folder: Path, num_classes: int) -> tuple[list[Path], list[np.ndarray], list[np.ndarray]]:
    """Decode ``folder/images/*`` (or ``imgs/*``) and their masks ``folder/masks/<stem>[_mask].*`` into memory.

    The layout users of U-Net tools have (milesial/Pytorch-UNet's ``data/imgs`` + ``data/masks``, the Kaggle
    Carvana set): one mask per image, matched by file stem (:func:`find_mask_pairs`), masks as described in
    :func:`read_mask`.

    Returns:
        (image paths, (H, W, 3) uint8 sRGB images, (H, W) uint8 class-index masks: 0/1 for one class).

    Raises:
        UsageError: no images/ or masks/ folder, or any pair that cannot be used (missing or duplicate mask, an
            unreadable image or mask, sizes that differ (EXIF orientation considered: :func:`align_mask`), an
            index out of range). Every problem is listed (up to 20) with its file, so one run of the command
            shows all there is to fix; training does not start on partial data.
    """
    pairs, problems = find_mask_pairs(folder)
    paths, images, labels = [], [], []
    for path, mask_path in pairs:
        try:
            rgb = read_photo(path).as_uint8()
        except InputError as exc:
            problems.append(f"{path}: {exc}")
            continue
        try:
            mask = align_mask(read_mask(mask_path, num_classes), path, rgb.shape[:2])
        except InputError as exc:
            problems.append(f"{mask_path}: {exc}")
            continue
        paths.append(path)
        images.append(rgb)
        labels.append(mask)
    raise_data_problems(folder, problems)
    return paths, images, labels


def scale_longest_side(photo: np.ndarray, mask: np.ndarray | None, side: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Resize a photo (H, W, 3) uint8 (bilinear, antialiased) and its (H, W) uint8 class-index mask (nearest) so
    that the longest side is ``side`` pixels, aspect ratio kept; the scale models with a ``working_size`` see."""
    h, w = photo.shape[:2]
    size = longest_side_size((w, h), side)
    if size == (w, h):
        return photo, mask
    out = np.asarray(Image.fromarray(photo).resize(size, Image.Resampling.BILINEAR))
    if mask is not None:
        mask = np.asarray(Image.fromarray(mask).resize(size, Image.Resampling.NEAREST))
    return out, mask


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
        task: gives ``training_pair(rgb, mask)`` -> (input (C_in, s, s), target (C_out, s, s)).
        size: side of the square crops, pixels.
        train: random augmentation (True) or a deterministic view (False).
        full_resolution: the model runs at the photo's own scale (crops of ``size``, half at 1x, half at a
            1x to 2x downscale); otherwise it runs on the whole photo resized to ``size`` (crops cover 60-100% of each
            side and are resized to ``size`` x ``size``, like prediction's resize of the whole photo).
        seed: base of the per-sample random generator; augmentation depends on (seed, epoch, index) only, so a
            resumed run sees exactly the crops an uninterrupted one would.
        crops_per_photo: samples drawn from each photo per epoch (training; small crops of large photos).
        masks: (H, W) uint8 class-index masks, one per photo (segmentation): cropped, resized (nearest
            neighbour) and flipped together with their photo, and passed to ``task.training_pair``.
    """

    def __init__(self, photos: list[np.ndarray], task: Task, size: int, train: bool, full_resolution: bool,
                 seed: int = 0, crops_per_photo: int = 1, masks: list[np.ndarray] | None = None) -> None:
        self.photos = photos
        self.masks = masks
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
        k = index % len(self.photos)
        layers = [self.photos[k]] + ([self.masks[k]] if self.masks is not None else [])
        rng = np.random.default_rng((self.seed, self.epoch if self.train else 0, index))
        views = self._train_view(layers, rng) if self.train else self._val_view(layers)
        rgb = views[0].astype(np.float32) / 255.0
        return self.task.training_pair(rgb, views[1] if self.masks is not None else None)

    @staticmethod
    def _resize(layers: list[np.ndarray], w: int, h: int) -> list[np.ndarray]:
        """Photo bilinear, mask (second layer, class indices) nearest neighbour."""
        return [np.asarray(Image.fromarray(a).resize((w, h), Image.Resampling.NEAREST if i else
                                                     Image.Resampling.BILINEAR)) for i, a in enumerate(layers)]

    def _train_view(self, layers: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
        s = self.size
        h, w = layers[0].shape[:2]
        if self.full_resolution:
            # Half the crops at the photo's own scale (what prediction sees), half downscaled up to 2x.
            side = s if rng.random() < 0.5 else int(round(s * rng.uniform(1.0, 2.0)))
            if min(h, w) < side:  # small photo: upscale so a crop fits
                f = side / min(h, w)
                layers = self._resize(layers, max(side, round(w * f)), max(side, round(h * f)))
                h, w = layers[0].shape[:2]
            y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
            crops = [a[y:y + side, x:x + side] for a in layers]
            crops = self._resize(crops, s, s) if side != s else crops
        else:
            ch, cw = max(1, int(h * rng.uniform(0.6, 1.0))), max(1, int(w * rng.uniform(0.6, 1.0)))
            y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
            crops = self._resize([a[y:y + ch, x:x + cw] for a in layers], s, s)
        if rng.random() < 0.5:
            crops = [a[:, ::-1] for a in crops]
        return [np.ascontiguousarray(a) for a in crops]

    def _val_view(self, layers: list[np.ndarray]) -> list[np.ndarray]:
        s = self.size
        h, w = layers[0].shape[:2]
        if not self.full_resolution:
            return self._resize(layers, s, s)
        if min(h, w) < s:
            f = s / min(h, w)
            layers = self._resize(layers, max(s, round(w * f)), max(s, round(h * f)))
            h, w = layers[0].shape[:2]
        y, x = (h - s) // 2, (w - s) // 2
        return [np.ascontiguousarray(a[y:y + s, x:x + s]) for a in layers]
