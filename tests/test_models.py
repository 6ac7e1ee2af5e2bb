"""The registry reproduces the seed architectures exactly, and every model accepts any H x W."""

from __future__ import annotations

import pytest
import torch
from torchinfo import summary

from conftest import held_out_photos
from unetcli.engine.backends import prepare_for_inference
from unetcli.engine.model import load_model
from unetcli.errors import UsageError
from unetcli.imageio import read_photo
from unetcli.models import create_model, get_spec, list_models
from unetcli.tasks import make_task
from unetcli.weights import shipped_weights

# The issue's table: PyTorch trainable parameters as torchinfo reports them (seed 001's summary for colorize).
EXPECTED_PARAMS = {"unet-colorize": 31_042_499, "unet-decolorize": 1_944_049, "unet-seg": 31_043_521,
                   "simple-black": 12,
                   # smp Unet(encoder_name="mobilenet_v2", decoder_channels=(256, 128, 64, 32, 16), classes=1)
                   "unet-seg-mobilenetv2": 6_628_945,
                   # the same body on a gray input with a 2-channel (a/b) head
                   "unet-colorize-mobilenetv2": 6_629_090}
EXPECTED_IO = {"unet-colorize": (1, 3), "unet-decolorize": (3, 1), "unet-seg": (3, 1), "simple-black": (3, 1),
               "unet-seg-mobilenetv2": (3, 1), "unet-colorize-mobilenetv2": (1, 2)}


def test_registry_lists_the_four_seed_models_and_the_pretrained_encoder_ones():
    assert set(list_models()) >= {"unet-colorize", "unet-decolorize", "unet-seg", "simple-black"}
    assert list_models("unet-*") == ["unet-colorize", "unet-colorize-mobilenetv2", "unet-decolorize", "unet-seg",
                                     "unet-seg-mobilenetv2"]


@pytest.mark.parametrize("alias,name", [("colorize", "unet-colorize-mobilenetv2"), ("decolorize", "unet-decolorize"),
                                        ("seg", "unet-seg"), ("simple-black", "simple-black")])
def test_aliases_resolve(alias, name):
    assert get_spec(alias).name == name


def test_the_colorize_alias_is_a_colorizer_that_ships_weights():
    # "colorize" names the best colorizer the project ships (issue 16): it must have weights to run on.
    assert get_spec("colorize").task.startswith("colorize") and shipped_weights(get_spec("colorize")) is not None


def test_unknown_name_lists_valid_names():
    with pytest.raises(UsageError, match="valid names: .*unet-colorize"):
        get_spec("unet-colourise")


@pytest.mark.parametrize("name", list_models())
def test_parameter_counts_match_the_seeds(name):
    stats = summary(create_model(name), input_size=(1, get_spec(name).in_channels, 64, 64), device="meta",
                    verbose=0)
    assert stats.trainable_params == EXPECTED_PARAMS[name] == get_spec(name).params
    assert stats.total_params == EXPECTED_PARAMS[name]


def test_colorize_mult_adds_match_seed_001_summary():
    stats = summary(create_model("unet-colorize"), input_size=(32, 1, 128, 128), device="meta", verbose=0)
    assert round(stats.total_mult_adds / 1e9, 2) == 436.66
    # The seed's torchinfo memory estimate, to the MB.
    assert round(stats.to_megabytes(stats.total_output_bytes), 2) == 4609.54


def test_seg_parameter_count_grows_with_classes():
    # 64 -> num_classes 1x1 conv: 65 parameters per extra class.
    n1 = sum(p.numel() for p in create_model("unet-seg", num_classes=1).parameters())
    n23 = sum(p.numel() for p in create_model("unet-seg", num_classes=23).parameters())
    assert n23 - n1 == 22 * 65


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("hw", [(75, 100), (1, 1), (33, 17), (64, 64)])
def test_any_height_and_width_gives_the_same_size_out(name, hw):
    spec = get_spec(name)
    model = create_model(name).eval()
    with torch.inference_mode():
        y = model(torch.rand(2, spec.in_channels, *hw))
    assert y.shape == (2, EXPECTED_IO[name][1], *hw)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", ["unet-decolorize", "simple-black"])
def test_gray_models_output_in_unit_range(name):
    with torch.inference_mode():
        y = create_model(name).eval()(torch.rand(1, 3, 40, 56) * 3 - 1)
    assert y.min() >= 0 and y.max() <= 1


def test_padding_does_not_leak_across_the_crop():
    # Padding happens at the bottom/right only: the output for an image that is already a multiple of 16
    # equals the same image run alone, whatever is appended in the padded region.
    model = create_model("unet-decolorize").eval()
    x = torch.rand(1, 3, 48, 64)
    with torch.inference_mode():
        assert torch.equal(model(x), model.forward_padded(x))



@pytest.mark.parametrize("name", ["unet-colorize", "unet-decolorize", "unet-seg"])
def test_inference_preparation_folds_batchnorm_without_changing_fp32_outputs(name, random_weights):
    """predict's model (BatchNorm folded into the convolutions) computes what the trained model computes."""
    spec = get_spec(name)
    x = make_task(spec, size=64).prepare(read_photo(held_out_photos()[0]))[0][None]
    if spec.full_resolution:  # the gray models run on the photo itself; a 64x96 corner is enough
        x = x[:, :, :64, :96]
    weights = random_weights(name)
    model, _ = load_model(spec, weights)
    fast = prepare_for_inference(load_model(spec, weights)[0], None)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    with torch.inference_mode():
        torch.testing.assert_close(fast(x), model(x), rtol=1e-4, atol=1e-4)
