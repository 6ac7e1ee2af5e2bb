"""bf16 autocast stays faithful to fp32 for every model that ``--precision auto`` runs in bf16.

The registry's ``bf16_faithful=True`` promises that bf16 outputs stay within 40 dB PSNR of fp32 on real photos
(``unetcli.models.registry.ModelSpec``). This checks the promise for every such model through the real
``unetcli predict`` command (``--precision fp32`` vs ``--precision bf16``) on the held-out photos in
``tests/data/photos``; masks (``unet-seg``) are compared as the fraction of mask pixels that differ instead, on
photos with people in them (``tests/data/person-composites``, held out of the person model's training) where
that folder exists.

Shipped weights are used where the project has them. Models without shipped weights run on random weights of
their architecture (``random_weights`` in conftest.py): that still catches a bf16 path that breaks the
network's arithmetic (a layer that overflows, a wrong cast, a wrong output shape or mode), but it is no proof of
how trained weights behave, so the test switches to ``weights/<name>.safetensors`` as soon as that file exists.
For ``unet-seg`` the random-weights check is nearly vacuous: an untrained net's logits are almost constant
(measured: about -0.15 with a spread of 0.002 over a photo), so every mask is all background in both precisions;
its mask comparison becomes meaningful with trained weights only.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from conftest import DATA, held_out_photos, run_cli
from unetcli.devices import cpu_has_fast_bf16
from unetcli.models.registry import get_spec, list_models
from unetcli.weights import shipped_weights

#: Every registry model that ``--precision auto`` may run in bf16.
BF16_MODELS = [get_spec(name) for name in list_models() if get_spec(name).bf16_faithful]
#: PSNR bar (dB) of bf16 against fp32 outputs, per photo.
MIN_PSNR = 40.0
#: Masks: at most this fraction of pixels may differ between bf16 and fp32.
MAX_MASK_DIFF = 0.005
#: Photos with people for the person-mask model (a mask of background only would compare trivially).
PEOPLE = DATA / "person-composites" / "images"


def photos_for(spec) -> list:
    """A few real photos for ``spec``: photos with people for segmentation (when present), else held-out photos."""
    if spec.task == "segment" and PEOPLE.is_dir():
        return sorted(PEOPLE.glob("*.jpg"))[:4]
    return held_out_photos()


def psnr_8bit(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two 8-bit images (any shape), peak 255; 120 dB for identical images."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2) / 255.0**2
    return float(10 * np.log10(1 / max(mse, 1e-12)))


def test_every_bf16_model_is_covered():
    # The list above is built from the registry, so a new bf16_faithful model is tested without editing this file.
    assert {"unet-colorize", "unet-decolorize", "unet-seg"} <= {s.name for s in BF16_MODELS}
    assert "simple-black" not in {s.name for s in BF16_MODELS}


@pytest.mark.parametrize("spec", BF16_MODELS, ids=lambda s: s.name)
def test_bf16_outputs_stay_faithful_to_fp32(spec, random_weights, tmp_path):
    if not cpu_has_fast_bf16():
        pytest.skip("no native bf16 on this CPU: --precision auto runs fp32 here")
    photos = photos_for(spec)
    assert len(photos) >= 2
    shipped = shipped_weights(spec)
    weights = [] if shipped is not None else ["--weights", random_weights(spec.name)]
    listed = tmp_path / "photos.txt"
    listed.write_text("".join(f"{p}\n" for p in photos))
    outs = {}
    for precision in ("fp32", "bf16"):
        r = run_cli("predict", "-m", spec.name, *weights, "--precision", precision, "--workers", "0",
                    "--files-from", listed, photos[0].parent, tmp_path / precision)
        assert r.returncode == 0, r.stderr
        assert f"cpu, {precision}" in r.stderr
        outs[precision] = {p.name: np.asarray(Image.open(p)) for p in sorted((tmp_path / precision).glob("[!.]*"))}
    assert sorted(outs["fp32"]) == sorted(outs["bf16"]) and len(outs["fp32"]) == len(photos)
    source = "shipped" if shipped is not None else "random"
    for name, a in outs["fp32"].items():
        b = outs["bf16"][name]
        assert a.shape == b.shape, name
        if spec.task == "segment":
            assert a.ndim == 2 and a.dtype == np.uint8, name  # one 8-bit mask: 0/255, or class indices
            diff = float(np.mean(a != b))
            assert diff <= MAX_MASK_DIFF, f"{spec.name} ({source} weights) {name}: {diff:.2%} of mask pixels differ"
        else:
            value = psnr_8bit(a, b)
            assert value >= MIN_PSNR, f"{spec.name} ({source} weights) {name}: bf16 vs fp32 {value:.1f} dB"
