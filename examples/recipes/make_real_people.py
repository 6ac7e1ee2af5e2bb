#!/usr/bin/env python
"""Build real-photo person-segmentation data with pseudo-labels from offline teacher models (MediaPipe).

Three folders, in the standard ``images`` + ``masks`` layout (mask: 8-bit PNG, 255 = person, 0 = background,
same stem as the image)::

    OUT/real-people/train/{images,masks}/   real photos of people, pseudo-labelled (extra training data)
    OUT/real-people/val/{images,masks}/     other people and scenes, held out (real-photo evaluation set)
    OUT/real-people/MANIFEST.tsv            file, split, source package, original path, licence, teachers, notes
    OUT/no-people/{images,masks}/           real photos with nobody in them (checked by eye), all-zero masks

Sources (all offline, from Debian bookworm packages):

* ``opencv-doc`` 4.6.0+dfsg-12 (Apache-2.0 AND BSD-3-Clause per debian/copyright ``Files: *``; the photos' own
  provenance is not documented upstream): ``examples/data/messi5.jpg``, ``basketball1.png``,
  ``basketball2.png``, the two face-swap tutorial portraits in ``opencv4/html`` and frames of
  ``examples/data/vtest.avi`` (a fixed camera filming pedestrians).
* ``gcompris-qt-data`` 3.1-2: photos of musicians packed in ``rcc/explore_world_music.rcc`` (a Qt resource
  file, read by ``read_rcc`` below); licence and author of each from the resource's README (``MUSICIANS``).
* No-people photos: ``../shared/data/photos/{opencv-doc,mate-backgrounds,palapeli-data}`` (the held-out
  background packages of ``make_person_composites.py``), minus those that show a person (``NO_PEOPLE_SKIP``);
  every one was looked at.
* With ``--shared-people``: the photos of ``../shared/data/photos`` that show people (``SHARED_PEOPLE``), into
  ``train``, with source package and licence from ``photos/MANIFEST.tsv``; never a photo of a held-out background
  package of ``make_person_composites.py`` or of ``val`` (refused). ``--scan-shared TSV`` runs the gated teacher
  over all 411 shared photos to find candidates (and ``--review`` overlays of each hit); every hit and every
  photo was looked at. The 2026-12-04 scan found none usable: pose fired on 24 photos, one a person (messi5,
  held out), 23 things (fish, tools, statues, a bird): ``SHARED_SCAN``; the photos with people where pose
  fired on nobody are crowds, tiny figures and murals: ``SHARED_PEOPLE_NOT_FOUND``. So ``SHARED_PEOPLE`` is
  empty and the flag adds nothing today; it is there for photos added to the shared pool later.

Split (by scene: a photo's crops go with it): ``train`` = the vtest.avi pedestrians (one outdoor scene, many
different walkers) and the still photos of ``TRAIN_STILLS`` (a footballer, a portrait, a painted dancer; their
people are cut out and pasted at portrait scale by ``make_real_composites.py``); ``val`` = every other photo (other
people, other scenes: a portrait, an indoor ball player, a seated group of musicians), plus a few crops of those
photos (``CROPS``: head-and-shoulders and single-person framings of the same people, named ``<photo>-crop-*``;
count them as one scene with their photo). Until 2026-12-05 every still photo was in ``val``; measured then:
models that never saw a real person at portrait scale marked nothing on the portraits (IoU 0.00-0.05), and a few
real people pasted at portrait scale moved the other fold's portraits to 0.71-0.79 (docs/models.md).

Teachers (MediaPipe 0.10.21, Apache-2.0, CPU): ``pose`` (pose_landmark_full with segmentation) and
``selfie_segmentation`` (general model). The selfie model marks 10-25 % of the pixels of photos with nobody
as person, so it is never trusted on its own: pose finds each person (run again and again with every found
person greyed out, so groups are found one by one), the selfie model is run only on a crop around each found
person, and the mask is the mean of the two teachers' probabilities inside that person's box, > 0.5.
For ``vtest.avi`` the people are small and moving: a per-pixel median over frames gives the background, the
foreground blobs give the people, the teachers run on an upscaled crop of each blob, and the mask is their
agreement (foreground AND teacher, each allowed a few pixels of slack); a moving upright blob in which pose
finds nobody (two people walking side by side) is kept only where the selfie model, gated by the motion, covers
most of it. The selfie model alone marks 23 % of the pixels of the no-people photos as person (26 of 41
photos over 1 %); the gated method marks none (pose fires on none of them): see ``no-people/MANIFEST.tsv``.
It is no person detector, though: on 23 of the other 370 shared photos pose fires on a thing (``SHARED_SCAN``).
Every kept mask was looked at as an overlay; the rejected ones are listed in ``REJECT`` with the reason.

Setup and run (from the repository root)::

    python3 -m venv /work/mpvenv
    /work/mpvenv/bin/pip install mediapipe==0.10.21 'numpy<2' pillow
    mkdir -p /work/dl && cd /work/dl && apt-get update && apt-get download opencv-doc gcompris-qt-data
    dpkg -x opencv-doc_*.deb /work/dl/opencv-doc && dpkg -x gcompris-qt-data_*.deb /work/dl/gcompris && cd -
    OMP_NUM_THREADS=1 /work/mpvenv/bin/python examples/recipes/make_real_people.py --out data \\
        --review /tmp/real-people-review --tests tests/data/real-people --shared-people
    # finding shared photos with people (writes a TSV and overlays of the hits; look at each):
    OMP_NUM_THREADS=1 /work/mpvenv/bin/python examples/recipes/make_real_people.py --out data \\
        --scan-shared /tmp/shared-scan.tsv --review /tmp/shared-scan

(bookworm packages: opencv-doc 4.6.0+dfsg-12, gcompris-qt-data 3.1-2.) Everything is deterministic: fixed
sources, fixed frames, no randomness; the teachers run single-threaded on CPU.
"""

from __future__ import annotations

import argparse
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

OPENCV_DATA = "usr/share/doc/opencv-doc/examples/data"
MUSIC = "gcompris/src/activities/explore_world_music/resource/music"
OPENCV_LICENCE = "Apache-2.0 AND BSD-3-Clause (debian/copyright Files: *; photo provenance undocumented)"

#: gcompris-qt-data musicians (file stem, licence from the resource's README, author).
MUSICIANS = {
    "australia": ("CC-BY-2.0", "Steve Evans, commons File:Australia_Aboriginal_Culture_009.jpg"),
    "ireland": ("CC-BY-2.0", "candyschwartz, commons File:Lunny_irvine_o_flynn_glackin.jpg"),
    "italy": ("CC0-1.0", "SoriamuséuM, commons File:Ópera_cásina.jpg"),
    "mexico": ("CC0-1.0", "Elidealista, commons File:Wikipedia_10_Guadalajara_-_Mariachi.jpg"),
    "japan": ("Public-Domain", "takami torao, commons File:Agidaiko03.jpg"),
    "orchestra": ("Public-Domain", "ABC Informática, commons File:Orchestra_of_the_18th_Century.jpg"),
}

#: Still photos whose people go to ``train`` (with their crops); every other still photo is ``val``.
TRAIN_STILLS = ("messi5", "portrait-b", "australia")

#: Portrait crops (x0, y0, x1, y1 as fractions of the image) of the still photos, added to their photo's split as
#: extra framings (head-and-shoulders / single person) of the same people.
CROPS = {
    "mexico": [("mexico-crop-right", (0.45, 0.0, 1.0, 1.0))],
    "italy": [("italy-crop-centre", (0.25, 0.1, 0.75, 1.0))],
    "ireland": [("ireland-crop-left", (0.0, 0.0, 0.5, 1.0)), ("ireland-crop-right", (0.5, 0.0, 1.0, 1.0))],
    "australia": [("australia-crop-upper", (0.0, 0.0, 1.0, 0.55))],
    "messi5": [("messi5-crop", (0.25, 0.0, 0.8, 1.0))],
    "basketball1": [("basketball1-crop-left", (0.0, 0.0, 0.5, 1.0))],
    "basketball2": [("basketball2-crop-left", (0.0, 0.0, 0.5, 1.0))],
    "portrait-a": [("portrait-a-crop-face", (0.2, 0.0, 0.8, 0.6))],
}

#: vtest.avi frames used (32-65 frames apart, so mostly different pedestrians); all go to train (one scene).
VTEST_FRAMES = (40, 72, 105, 170, 202, 235, 300, 332, 365, 430, 462, 495, 560, 592, 625, 690, 722, 755)

#: Photos whose teacher mask was rejected on review (stem -> reason). Filled in after looking at overlays.
REJECT: dict[str, str] = {
    "italy": "stage crowd of ~12 people, pose found 2: most people would be labelled background",
    "italy-crop-centre": "crowd, most people missed, holes in the found ones",
    "mexico": "background spectators unlabelled, guitar/hands merged into the nearest person, one player missed",
    "mexico-crop-right": "half-visible background people unlabelled, guitar neck labelled person",
    "japan": "night festival, dozens of tiny drummers, pose found 2 (and labelled drums)",
    "orchestra": "~40 tiny musicians, pose found none",
    "basketball1": "right man (blurred, cut by the frame): lower body full of holes; his left-half crop is kept",
    "basketball2": "right man (blurred, cut by the frame): lower body full of holes; his left-half crop is kept",
    "vtest-0072": "a group of four pedestrians walking together unlabelled (one merged blob, pose found none)",
    "vtest-0105": "two pedestrians unlabelled (one far away on the top path, one behind the sign)",
    "vtest-0495": "a dark-clothed pedestrian between two others unlabelled",
    "vtest-0755": "a dark-clothed pedestrian on the left unlabelled, one tiny one by the van",
    "scenetext01": "two people cut by the frame edges, pose found none: mask empty",
}

#: Known, accepted flaws of kept masks (written into MANIFEST.tsv).
NOTES = {
    "messi5": "blurred spectators in the stands are left background (not segmentable)",
    "messi5-crop": "blurred spectators in the stands are left background",
    "australia": "the didgeridoo he holds is partly in the mask; rope skirt partly missing",
    "australia-crop-upper": "the didgeridoo he holds is partly in the mask",
    "portrait-b": "small stair-step notch at the lower-left shoulder",
    "basketball1-crop-left": "hands+ball region partly in the mask",
    "basketball2-crop-left": "hands+ball region partly in the mask; next frame of basketball1 (same man)",
    "vtest-0592": "lower legs of the standing man at the left end of the path partly missing",
}

#: Shared photos (../shared/data/photos, 'package/name') that show people, found by ``--scan-shared`` (the
#: gated teacher fired) and checked by eye, none in a held-out package: extra train pairs with ``--shared-people``.
#: Empty: the scan of all 411 (2026-12-04) found no usable person photo outside the held-out packages (below).
SHARED_PEOPLE: tuple[str, ...] = ()

#: What ``--scan-shared`` found, looked at one by one (photo -> verdict). Pose fired on 24 of the 411 photos;
#: only messi5 shows a person, and it is held out (composites' val package opencv-doc, and real-people val).
#: The other 23 are false detections on things (fish, tools, statues, a bird, a dolphin, a helicopter): the
#: gated teacher, which marks nothing on the 41 held-out no-people photos, marks person pixels on 6 % of the
#: other shared photos, so it is a labeller for photos known to show people, not a person detector.
SHARED_SCAN: dict[str, str] = {
    "opencv-doc/messi5.jpg": "a footballer: held out (real-people val; composites' val package)",
    **{f"gcompris-qt-data/categorization_{k}.jpg": "no person: pose fired on a thing, mask on it" for k in (
        "fish14", "fish5", "fish8", "hammer1", "hammer2", "hammer5", "plier1", "screwDriver2", "windmill",
        "IndiaGate", "monument3")},
    "gcompris-qt-data/erase_dolphin.jpg": "no person: the dolphin masked",
    "gcompris-qt-data/erase_kingfisher.jpg": "no person: the bird masked",
    "gcompris-qt-data/explore_monuments_cabrillo.jpg": "a stone statue, not a person (masked whole)",
    "gcompris-qt-data/explore_monuments_rangGhar.jpg": "no person, empty mask",
    "gcompris-qt-data/categorization_usCapitol.jpg": "tiny tourists (~15 px) unlabelled, dome tip masked",
    "gcompris-qt-data/explore_monuments_victoriaMemorial.jpg": "tiny visitors unlabelled, a speck masked",
    "gcompris-qt-data/explore_monuments_wormsCathedral.jpg": "tiny people on benches unlabelled, towers masked",
    "jigzo-data/heli-4x3.jpg": "tiny people on the boat unlabelled, the helicopter masked",
    "jigzo-data/tobogan-4x3.jpg": "232x176 px, no recognisable person (PHOTOS_WITH_PEOPLE); the slide tube masked",
    "lomiri-wallpapers-16.04/free_by_Peter_Nerlich.jpg": "a toy bird masked",
    "plasma-workspace-wallpapers/Kite.jpg": "a kite, empty mask",
    "scratch/atom-playground.jpg": "no person, a climbing frame masked",
}
#: Photos with people where pose found nobody (looked at on contact sheets of all 411): crowds and painted
#: people, none segmentable into a training mask. The stadium crowds and the cinema stay composite
#: backgrounds (their people at 384 px are texture, left background as messi5's spectators are).
SHARED_PEOPLE_NOT_FOUND = {
    "scratch/baseball-field.jpg": "stadium crowd, people a few pixels tall",
    "scratch/football-field.jpg": "stadium crowd and a marching band ~20 px tall",
    "scratch/the-movies-inside.jpg": "two seated people ~20 px tall; posters of faces",
    "scratch/all-sports-mural.jpg": "painted people (PHOTOS_WITH_PEOPLE)",
    "scratch/berkeley-mural.jpg": "painted people (PHOTOS_WITH_PEOPLE)",
    "scratch/mural-faro.jpg": "painted people (PHOTOS_WITH_PEOPLE)",
    "scratch/clothing-store.jpg": "clothes racks, one blurred figure ~30 px far back (PHOTOS_WITH_PEOPLE)",
}

#: Held-out background package photos that show (parts of) people: not in the no-people set.
NO_PEOPLE_SKIP = ("messi5.jpg", "x_scenetext01.jpg", "x_scenetext03.jpg", "x_scenetext04.jpg",
                  "x_scenetext06.jpg")


# --------------------------------------------------------------------------------------------- Qt .rcc
def read_rcc(path: Path) -> dict[str, bytes]:
    """All files of a Qt binary resource (.rcc) file: {'/dir/name': bytes} (zlib-compressed entries inflated)."""
    b = path.read_bytes()
    if b[:4] != b"qres":
        raise ValueError(f"{path}: not a Qt resource file")
    version, tree, data, names = struct.unpack(">IIII", b[4:20])
    entry = 22 if version >= 2 else 14

    def name(off: int) -> str:
        (n,) = struct.unpack(">H", b[names + off:names + off + 2])
        return b[names + off + 6:names + off + 6 + 2 * n].decode("utf-16-be")

    out: dict[str, bytes] = {}

    def walk(i: int, prefix: str) -> None:
        e = tree + i * entry
        noff, flags = struct.unpack(">IH", b[e:e + 6])
        nm = name(noff) if i else ""
        if flags & 2:  # directory
            count, first = struct.unpack(">II", b[e + 6:e + 14])
            for c in range(first, first + count):
                walk(c, prefix + nm + "/")
            return
        (doff,) = struct.unpack(">I", b[e + 10:e + 14])
        (size,) = struct.unpack(">I", b[data + doff:data + doff + 4])
        raw = b[data + doff + 4:data + doff + 4 + size]
        if flags & 1:
            raw = zlib.decompress(raw[4:])
        elif flags & 4:
            raise ValueError(f"{path}: zstd-compressed entry {prefix + nm}")
        out[prefix + nm] = raw

    walk(0, "")
    return out


# --------------------------------------------------------------------------------------------- teachers
class Teachers:
    """MediaPipe pose (with segmentation) and selfie segmentation, CPU, created once."""

    def __init__(self) -> None:
        import mediapipe as mp

        self.pose = mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1, enable_segmentation=True,
                                           min_detection_confidence=0.5)
        self.selfie_model = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)

    def selfie(self, rgb: np.ndarray) -> np.ndarray:
        return np.asarray(self.selfie_model.process(np.ascontiguousarray(rgb)).segmentation_mask, np.float32)

    def people(self, rgb: np.ndarray, max_people: int = 8) -> list[tuple[np.ndarray, tuple[int, int, int, int]]]:
        """Find people one by one: pose, then grey out the found person and run pose again.

        Returns [(pose segmentation probability (H, W), person box (x0, y0, x1, y1))]."""
        img = np.ascontiguousarray(rgb.copy())
        h, w = img.shape[:2]
        found = []
        for _ in range(max_people):
            r = self.pose.process(img)
            if r.pose_landmarks is None:
                break
            lm = np.array([[p.x * w, p.y * h, p.visibility] for p in r.pose_landmarks.landmark])
            seg = np.asarray(r.segmentation_mask, np.float32)
            pts = [lm[lm[:, 2] > 0.5, :2]]
            ys, xs = np.nonzero(seg > 0.5)
            if len(xs):
                pts.append(np.stack([xs, ys], 1))
            pts = np.concatenate(pts) if sum(len(p) for p in pts) else lm[:, :2]
            x0, y0 = pts.min(0)
            x1, y1 = pts.max(0)
            bw, bh = x1 - x0, y1 - y0
            box = (int(max(0, x0 - 0.15 * bw)), int(max(0, y0 - 0.2 * bh)),
                   int(min(w, x1 + 0.15 * bw + 1)), int(min(h, y1 + 0.1 * bh + 1)))
            if box[2] - box[0] < 8 or box[3] - box[1] < 8:
                break
            found.append((seg, box))
            blank = seg > 0.3
            blank[box[1]:box[3], box[0]:box[2]] = True
            img = img.copy()
            img[blank] = 127
        return found

    def mask(self, rgb: np.ndarray, max_people: int = 8) -> tuple[np.ndarray, dict]:
        """Gated pseudo-label of a photo known to show people: (H, W) bool and info."""
        h, w = rgb.shape[:2]
        prob = np.zeros((h, w), np.float32)
        people = self.people(rgb, max_people)
        for seg, (x0, y0, x1, y1) in people:
            # selfie on a crop around the person (its own scale), only inside the person's box
            px, py = (x1 - x0) // 4, (y1 - y0) // 4
            cx0, cy0, cx1, cy1 = max(0, x0 - px), max(0, y0 - py), min(w, x1 + px), min(h, y1 + py)
            crop_sel = self.selfie(rgb[cy0:cy1, cx0:cx1])
            sel = np.zeros((h, w), np.float32)
            sel[cy0:cy1, cx0:cx1] = crop_sel
            both = 0.5 * (seg + sel)
            prob[y0:y1, x0:x1] = np.maximum(prob[y0:y1, x0:x1], both[y0:y1, x0:x1])
        return prob > 0.5, {"people_found": len(people)}


# --------------------------------------------------------------------------------------------- vtest
def vtest_frames(avi: Path, frames: tuple[int, ...]) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """The chosen RGB frames of vtest.avi and the per-pixel median background (of every 5th frame)."""
    import cv2

    cap = cv2.VideoCapture(str(avi))
    out, stack, i = {}, [], 0
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        rgb = bgr[:, :, ::-1].copy()
        if i % 5 == 0:
            stack.append(rgb)
        if i in frames:
            out[i] = rgb
        i += 1
    return out, np.median(np.stack(stack), 0).astype(np.uint8)


def vtest_mask(t: Teachers, rgb: np.ndarray, bg: np.ndarray) -> tuple[np.ndarray, dict]:
    """Pedestrians of one frame: foreground blobs (median background) that the teachers agree are people."""
    import cv2

    diff = np.abs(rgb.astype(np.int16) - bg.astype(np.int16)).max(2)
    fg = (diff > 28).astype(np.uint8)
    fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, np.ones((7, 7), np.uint8))
    n, lab, stats, _ = cv2.connectedComponentsWithStats(fg)
    h, w = fg.shape
    out = np.zeros((h, w), bool)
    kept, dropped, fallback = 0, 0, 0
    for k in range(1, n):
        x, y, bw, bh, area = stats[k]
        if area < 300 or bh < 30:
            continue
        px, py = max(12, bw // 2), max(12, bh // 4)
        x0, y0, x1, y1 = max(0, x - px), max(0, y - py), min(w, x + bw + px), min(h, y + bh + py)
        crop = rgb[y0:y1, x0:x1]
        f = max(1.0, 320 / crop.shape[0])
        big = cv2.resize(crop, (round(crop.shape[1] * f), round(crop.shape[0] * f)), interpolation=cv2.INTER_CUBIC)
        ppl = t.people(big, 3)
        sel = t.selfie(big)
        blob = lab[y0:y1, x0:x1] == k
        if ppl:
            prob = np.zeros(big.shape[:2], np.float32)
            for seg, (bx0, by0, bx1, by1) in ppl:
                both = 0.5 * (seg + sel)
                prob[by0:by1, bx0:bx1] = np.maximum(prob[by0:by1, bx0:bx1], both[by0:by1, bx0:bx1])
            teach = cv2.resize(prob, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR) > 0.5
        else:
            # pose found nobody (e.g. two people walking side by side): keep an upright moving blob if the
            # selfie model (gated here by motion, never alone) agrees on most of it
            teach = cv2.resize(sel, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR) > 0.5
            if bh < bw or teach[blob].mean() < 0.5:
                dropped += 1
                continue
            fallback += 1
        slack = np.ones((5, 5), np.uint8)
        agree = (blob & (cv2.dilate(teach.astype(np.uint8), slack) > 0)) | \
                (teach & (cv2.dilate(blob.astype(np.uint8), slack) > 0))
        out[y0:y1, x0:x1] |= agree
        kept += 1
    return out, {"blobs_kept": kept, "blobs_selfie_in_motion": fallback, "blobs_dropped": dropped}


# --------------------------------------------------------------------------------------------- output
def overlay(rgb: np.ndarray, mask: np.ndarray, path: Path, title: str) -> None:
    """Review image: the photo (left) and the photo with the mask in red and its outline (right)."""
    import cv2

    ov = rgb.astype(np.float32).copy()
    ov[mask] = 0.5 * ov[mask] + 0.5 * np.array([255, 0, 0])
    edge = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    ov[edge] = (255, 255, 0)
    both = np.concatenate([rgb, ov.astype(np.uint8)], 1)
    im = Image.fromarray(both)
    im.thumbnail((1400, 700))
    ImageDraw.Draw(im).text((4, 4), title, fill=(255, 255, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)


def save_pair(out: Path, stem: str, rgb: np.ndarray, mask: np.ndarray, max_side: int = 1024) -> None:
    im = Image.fromarray(rgb)
    m = Image.fromarray(np.where(mask, 255, 0).astype(np.uint8), mode="L")
    if max(im.size) > max_side:
        f = max_side / max(im.size)
        size = (round(im.size[0] * f), round(im.size[1] * f))
        im = im.resize(size, Image.Resampling.LANCZOS)
        m = m.resize(size, Image.Resampling.BILINEAR).point(lambda v: 255 if v >= 128 else 0)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    im.save(out / "images" / f"{stem}.jpg", quality=95)
    m.save(out / "masks" / f"{stem}.png")


def crop_frac(a: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    h, w = a.shape[:2]
    return a[round(box[1] * h):round(box[3] * h), round(box[0] * w):round(box[2] * w)]


# --------------------------------------------------------------------------------------------- shared photos
def held_out_shared() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(background packages held out by ``make_person_composites.py``'s val split, shared photos already among
    the still photos (messi5, in a held-out package too)): no shared photo of either is added by
    ``--shared-people``."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from make_person_composites import VAL_PACKAGES  # numpy + Pillow only: imports in the teacher venv too

    return tuple(VAL_PACKAGES), ("opencv-doc/messi5.jpg",)


def shared_manifest(data: Path) -> dict[str, tuple[str, str]]:
    """{'package/name.jpg': (source package, licence)} from ``DATA/photos/MANIFEST.tsv``."""
    out = {}
    for line in (data / "photos" / "MANIFEST.tsv").read_text().splitlines()[1:]:
        f = line.split("\t")
        out[f[0].removeprefix("photos/")] = (f[2], f[3])
    return out


def scan_shared(t: Teachers, data: Path, tsv: Path, review: Path | None) -> None:
    """Run the gated teacher (pose finds people, selfie only inside their boxes) over every shared photo and
    write ``photo, package, held_out, people_found, person_frac`` to ``tsv`` (and an overlay of each photo
    where it fires into ``review/scan-*.png``), to find the shared photos that show people: the candidates of
    ``SHARED_PEOPLE``, which were then looked at one by one."""
    held_pkgs, held_photos = held_out_shared()
    rows = []
    for p in sorted((data / "photos").rglob("*.jpg")):
        rel = str(p.relative_to(data / "photos"))
        rgb = np.asarray(Image.open(p).convert("RGB"))
        mask, info = t.mask(rgb)
        held = p.parent.name in held_pkgs or rel in held_photos
        rows.append(f"{rel}\t{p.parent.name}\t{int(held)}\t{info['people_found']}\t{mask.mean():.4f}")
        if info["people_found"] and review:
            overlay(rgb, mask, review / f"scan-{p.parent.name}-{p.stem}.png",
                    f"{rel} people_found={info['people_found']}{' HELD OUT' if held else ''}")
    tsv.parent.mkdir(parents=True, exist_ok=True)
    tsv.write_text("photo\tpackage\theld_out\tpeople_found\tperson_frac\n" + "\n".join(rows) + "\n")
    fired = [r for r in rows if r.split("\t")[3] != "0"]
    print(f"scan: {len(rows)} shared photos, pose fired on {len(fired)} -> {tsv}")


def add_shared_people(t: Teachers, data: Path, emit) -> None:
    """The shared photos that show people (``SHARED_PEOPLE``), pseudo-labelled like the still photos, into
    ``train`` (``emit`` applies ``SHARED_REJECT`` via ``REJECT``). Raises SystemExit if one is held out."""
    held_pkgs, held_photos = held_out_shared()
    lic = shared_manifest(data)
    for rel in SHARED_PEOPLE:
        pkg = rel.split("/")[0]
        if pkg in held_pkgs or rel in held_photos:
            raise SystemExit(f"{rel}: held out (composites' val packages or real-people val), not for train")
        rgb = np.asarray(Image.open(data / "photos" / rel).convert("RGB"))
        mask, info = t.mask(rgb)
        package, licence = lic[rel]
        emit(shared_stem(rel), "train", rgb, mask, package, f"../shared/data/photos/{rel}", licence,
             "mediapipe pose_landmark_full seg + selfie_segmentation(general, per-person crop), mean > 0.5",
             f"shared photo; people_found={info['people_found']}")


def shared_stem(rel: str) -> str:
    """``scratch/clothing-store.jpg`` -> ``shared-scratch-clothing-store``."""
    return "shared-" + rel.removesuffix(".jpg").replace("/", "-")


def build(args: argparse.Namespace) -> list[list[str]]:
    t = Teachers()
    ocv = args.opencv_doc / OPENCV_DATA
    rows: list[list[str]] = []
    rp = args.out / "real-people"
    for d in (rp, args.out / "no-people"):
        if d.exists():
            shutil.rmtree(d)
    if args.review and args.review.exists():
        shutil.rmtree(args.review)

    def emit(stem: str, split: str, rgb: np.ndarray, mask: np.ndarray, package: str, orig: str, licence: str,
             teachers: str, notes: str) -> None:
        if args.review:
            overlay(rgb, mask, args.review / f"{split}-{stem}.png", f"{split} {stem} {notes}")
        if stem in REJECT:
            print(f"rejected {stem}: {REJECT[stem]}")
            return
        save_pair(rp / split, stem, rgb, mask)
        if stem in NOTES:
            notes = f"{notes}; {NOTES[stem]}"
        rows.append([f"{stem}.jpg", split, package, orig, licence, teachers, notes])
        print(f"{split:5s} {stem:24s} person={mask.mean():.3f} {notes}")

    still = "mediapipe pose_landmark_full seg + selfie_segmentation(general, per-person crop), mean > 0.5"
    # --- still photos
    photos = [("messi5", "val", "opencv-doc", f"{OPENCV_DATA}/messi5.jpg", OPENCV_LICENCE, ocv / "messi5.jpg"),
              ("basketball1", "val", "opencv-doc", f"{OPENCV_DATA}/basketball1.png", OPENCV_LICENCE,
               ocv / "basketball1.png"),
              ("basketball2", "val", "opencv-doc", f"{OPENCV_DATA}/basketball2.png", OPENCV_LICENCE,
               ocv / "basketball2.png")]
    html = "usr/share/doc/opencv-doc/opencv4/html"
    for stem, name in (("portrait-a", "227943776_1.jpg"), ("portrait-b", "230501201_1.jpg")):  # face-swap tutorial
        photos.append((stem, "val", "opencv-doc", f"{html}/{name}", OPENCV_LICENCE, args.opencv_doc / html / name))
    photos.append(("scenetext01", "val", "opencv-doc", "usr/share/doc/opencv-doc/examples/text/scenetext01.jpg",
                   OPENCV_LICENCE, args.opencv_doc / "usr/share/doc/opencv-doc/examples/text/scenetext01.jpg"))
    rcc = read_rcc(args.gcompris / "usr/share/gcompris-qt/rcc/explore_world_music.rcc")
    import io

    music_split = {"australia": "val", "ireland": "val", "italy": "val", "mexico": "val", "japan": "train",
                   "orchestra": "train"}
    for stem, (lic, author) in MUSICIANS.items():
        data = rcc[f"/{MUSIC}/{stem}.webp"]
        photos.append((stem, music_split[stem], "gcompris-qt-data",
                       f"rcc/explore_world_music.rcc:/{MUSIC}/{stem}.webp", f"{lic} ({author})", io.BytesIO(data)))
    for stem, split, package, orig, licence, src in photos:
        split = "train" if stem in TRAIN_STILLS else split
        rgb = np.asarray(Image.open(src).convert("RGB"))
        mask, info = t.mask(rgb)
        emit(stem, split, rgb, mask, package, orig, licence, still, f"people_found={info['people_found']}")
        for cstem, box in CROPS.get(stem, []):
            c = np.ascontiguousarray(crop_frac(rgb, box))
            cm, cinfo = t.mask(c)
            emit(cstem, split, c, cm, package, f"{orig} crop {box}", licence, still,
                 f"crop of {stem}; people_found={cinfo['people_found']}")
    if args.shared_people:
        add_shared_people(t, args.data, emit)
    # --- vtest.avi pedestrians
    frames, bg = vtest_frames(ocv / "vtest.avi", VTEST_FRAMES)
    for i in VTEST_FRAMES:
        mask, info = vtest_mask(t, frames[i], bg)
        emit(f"vtest-{i:04d}", "train", frames[i], mask, "opencv-doc", f"{OPENCV_DATA}/vtest.avi frame {i}",
             OPENCV_LICENCE, "median background (every 5th frame) AND (pose seg + selfie on upscaled blob crop)",
             f"blobs_kept={info['blobs_kept']} (selfie-in-motion only: {info['blobs_selfie_in_motion']}) "
             f"blobs_dropped={info['blobs_dropped']}")
    # --- no-people photos (checked by eye); also measure what the teachers mark on them
    np_out = args.out / "no-people"
    np_rows = []
    for pkg in ("opencv-doc", "mate-backgrounds", "palapeli-data"):
        for p in sorted((args.data / "photos" / pkg).glob("*.jpg")):
            if p.name in NO_PEOPLE_SKIP or len(np_rows) >= args.no_people:
                continue
            rgb = np.asarray(Image.open(p).convert("RGB"))
            selfie_frac = float((t.selfie(rgb) > 0.5).mean())
            gated, info = t.mask(rgb)
            stem = f"{pkg}-{p.stem}"
            save_pair(np_out, stem, rgb, np.zeros(rgb.shape[:2], bool))
            np_rows.append([f"{stem}.jpg", pkg, str(p.relative_to(args.data)), f"{selfie_frac:.4f}",
                            f"{float(gated.mean()):.4f}", str(info["people_found"])])
    with open(np_out / "MANIFEST.tsv", "w") as f:
        f.write("file\tsource_package\tshared_path\tselfie_alone_frac\tgated_teacher_frac\tpose_people_found\n")
        for r in np_rows:
            f.write("\t".join(r) + "\n")
    sf = np.array([float(r[3]) for r in np_rows])
    gf = np.array([float(r[4]) for r in np_rows])
    print(f"no-people: {len(np_rows)} photos; pixels marked person: selfie alone mean {sf.mean():.4f} "
          f"(>1% on {(sf > 0.01).sum()}), gated teacher mean {gf.mean():.4f} (>1% on {(gf > 0.01).sum()}, "
          f"pose fired on {sum(r[5] != '0' for r in np_rows)})")
    with open(rp / "MANIFEST.tsv", "w") as f:
        f.write("file\tsplit\tsource_package\toriginal_path\tlicence\tteachers\tnotes\n")
        for r in rows:
            f.write("\t".join(r) + "\n")
    if args.tests:
        copy_tests(rp, rows, args.tests)
    if args.package_photos:
        package_people(t, args.package_photos, args.out / "package-people", args.review)
    return rows


def package_people(t: Teachers, src: Path, out: Path, review: Path | None) -> None:
    """Teacher masks (the gated method of the still photos) for the photos of people that ship inside Python
    packages (scikit-image's astronaut and cameraman, exported into ``src`` as PNG by the shell recipe: this venv
    has no scikit-image), into ``out/{images,masks}``: real people that no training set of this project ever
    contains, for ``evaluate.py``'s ``package_people`` figure. Raises SystemExit if ``src`` has no PNG."""
    photos = sorted(src.glob("*.png"))
    if not photos:
        raise SystemExit(f"{src}: no PNG photos")
    if out.exists():
        shutil.rmtree(out)
    (out / "images").mkdir(parents=True)
    (out / "masks").mkdir(parents=True)
    for p in photos:
        rgb = np.asarray(Image.open(p).convert("RGB"))
        mask, info = t.mask(rgb)
        Image.fromarray(rgb).save(out / "images" / p.name)
        Image.fromarray(np.where(mask, 255, 0).astype(np.uint8), mode="L").save(out / "masks" / p.name)
        if review:
            overlay(rgb, mask, review / f"package-{p.stem}.png", f"package {p.stem}")
        print(f"package {p.stem:20s} person={mask.mean():.3f} people_found={info['people_found']}")


#: Images copied (small) into the tests: CC-BY-2.0 photos with a documented author and source.
TEST_PICKS = ("australia", "australia-crop-upper", "ireland", "ireland-crop-right")


def copy_tests(rp: Path, rows: list[list[str]], dest: Path, side: int = 320, max_bytes: int = 60_000) -> None:
    """Downscaled JPEG copies (<= max_bytes) of TEST_PICKS (from ``rp``'s train or val split) with their masks,
    and a LICENSES.tsv."""
    if dest.exists():
        shutil.rmtree(dest)
    (dest / "images").mkdir(parents=True)
    (dest / "masks").mkdir(parents=True)
    lic = {r[0][:-4]: r for r in rows}
    lines = ["file\tsource\tlicence"]
    for stem in TEST_PICKS:
        split = rp / next(r[1] for r in rows if r[0] == f"{stem}.jpg")
        im = Image.open(split / "images" / f"{stem}.jpg")
        f = side / max(im.size)
        size = (round(im.size[0] * f), round(im.size[1] * f))
        im = im.resize(size, Image.Resampling.LANCZOS)
        for q in (90, 85, 80, 75, 70):
            im.save(dest / "images" / f"{stem}.jpg", quality=q)
            if (dest / "images" / f"{stem}.jpg").stat().st_size <= max_bytes:
                break
        m = Image.open(split / "masks" / f"{stem}.png").resize(size, Image.Resampling.BILINEAR)
        m.point(lambda v: 255 if v >= 128 else 0).save(dest / "masks" / f"{stem}.png")
        r = lic[stem]
        lines.append(f"{stem}.jpg\tDebian gcompris-qt-data 3.1-2, {r[3]} (downscaled; mask: MediaPipe pseudo-label, "
                     f"examples/recipes/make_real_people.py)\t{r[4]}")
    (dest / "LICENSES.tsv").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"), help="the shared data folder")
    parser.add_argument("--opencv-doc", type=Path, default=Path("/work/dl/opencv-doc"), help="dpkg -x of opencv-doc")
    parser.add_argument("--gcompris", type=Path, default=Path("/work/dl/gcompris"), help="dpkg -x of gcompris-qt-data")
    parser.add_argument("--out", type=Path, required=True, help="writes OUT/real-people and OUT/no-people")
    parser.add_argument("--no-people", type=int, default=41, help="at most this many no-people photos")
    parser.add_argument("--review", type=Path, help="also write overlay PNGs of every mask here")
    parser.add_argument("--tests", type=Path, help="also copy a few small val pairs here (tests/data/real-people)")
    parser.add_argument("--package-photos", type=Path,
                        help="also pseudo-label these PNG photos (scikit-image's people) into OUT/package-people")
    parser.add_argument("--shared-people", action="store_true",
                        help="also pseudo-label the shared photos that show people (SHARED_PEOPLE) into train")
    parser.add_argument("--scan-shared", type=Path, metavar="TSV",
                        help="only run the gated teacher over every shared photo, write TSV (+ --review overlays)")
    args = parser.parse_args()
    if args.scan_shared:
        scan_shared(Teachers(), args.data, args.scan_shared, args.review)
        return
    build(args)


if __name__ == "__main__":
    main()
