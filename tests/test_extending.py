"""Extending unetcli from outside the package: a fifth model (one spec + one ``nn.Module``), an export format and an
output type, each defined in this file and registered at run time; ``predict``, ``summary``, ``export``, ``models``
and the Python API then take them without any change to ``unetcli/``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn
from typer.testing import CliRunner

import unetcli
from conftest import held_out_photos, skimage_photo
from unetcli.cli import app
from unetcli.errors import UsageError, WeightsError
from unetcli.formats import Format, compare, register_format, unregister_format
from unetcli.models import ModelSpec, get_spec, register_model, unregister_model
from unetcli.outputs import RENDERERS, Renderer, register_renderer
from unetcli.tasks import TASKS, DecolorizeTask, make_task, register_task, unregister_task
from unetcli.weights import save_weights

runner = CliRunner()


class ToyGray(nn.Module):
    """A toy fifth model: RGB -> gray with one 1x1 convolution and a sigmoid, 4 parameters.

    Input: (N, 3, H, W) float32 sRGB in [0, 1]. Output: (N, 1, H, W) float32 in (0, 1).
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 1, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.conv(x))


TOY_SPEC = ModelSpec(name="toy-gray", aliases=("toy",), task="decolorize", factory=ToyGray, in_channels=3,
                     out_channels=1, params=4, seed="tests/test_extending.py", train_size=32, full_resolution=True,
                     loss="mae", size_divisor=1, tile_overlap=0, bf16_faithful=False,
                     description="a toy model registered by a test")


class ToyFormat(Format):
    """A toy export format: the weights as float32 safetensors with the model name in the header (``.toyz``); the
    loader rebuilds the registry model from the name."""

    name = "toyz"
    backend = "toyz"
    default_suffix = ".toyz"
    suffixes = (".toyz",)

    def write(self, model, example, path, input_name, output_name, metadata, settings) -> None:
        state = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(path), metadata={"model": metadata["model"]})

    def verify(self, path, reference, x, input_name, settings):
        with torch.inference_mode():
            out = self._module(Path(path), torch.device("cpu"))(x)
        return compare(out, reference, "toyz"), "toyz loader"

    def load(self, path, spec, device):
        if self.model_name(path) != spec.name:
            raise WeightsError(f"{path}: this export is of {self.model_name(path)}, not {spec.name}")
        return self._module(path, device)

    def model_name(self, path):
        with safe_open(str(path), framework="pt") as f:
            return (f.metadata() or {}).get("model")

    def _module(self, path: Path, device: torch.device) -> nn.Module:
        model = get_spec(self.model_name(path)).factory()
        model.load_state_dict(load_file(str(path)))
        return model.to(device).eval()


@pytest.fixture
def toy_model(tmp_path):
    """The toy model registered, with weights whose model card names it; unregistered afterwards."""
    register_model(TOY_SPEC)
    try:
        torch.manual_seed(0)
        model = ToyGray()
        with torch.no_grad():
            model.conv.weight.copy_(torch.tensor([0.6, 1.8, 0.2]).view(1, 3, 1, 1))
            model.conv.bias.fill_(-1.3)
        weights = tmp_path / "toy-gray.safetensors"
        save_weights(model, weights, {"model": "toy-gray"}, dtype=torch.float32)
        yield weights
    finally:
        unregister_model("toy-gray")


@pytest.fixture
def toy_format():
    register_format(ToyFormat())
    try:
        yield "toyz"
    finally:
        unregister_format("toyz")


def _reference(photo: Path) -> np.ndarray:
    """What the toy model computes for a photo, in numpy: sigmoid(0.6 R + 1.8 G + 0.2 B - 1.3), 8-bit."""
    rgb = np.asarray(Image.open(photo).convert("RGB"), np.float64) / 255
    gray = 1 / (1 + np.exp(-(rgb @ np.array([0.6, 1.8, 0.2]) - 1.3)))
    return np.clip(np.rint(gray * 255), 0, 255).astype(np.uint8)


def test_a_fifth_model_from_a_test_file_runs_everywhere(toy_model, tmp_path):
    photos = held_out_photos()
    assert "toy-gray" in unetcli.list_models()
    # models
    r = runner.invoke(app, ["models", "--json"])
    assert r.exit_code == 0 and "toy-gray" in r.stdout, r.output
    # predict (the CLI, in this process so that the registration holds)
    out = tmp_path / "out"
    r = runner.invoke(app, ["predict", str(photos[0].parent), str(out), "-m", "toy", "-w", str(toy_model), "-q"])
    assert r.exit_code == 0, r.output
    # the API: the same pixels as the CLI wrote, and the toy's own arithmetic (within 8-bit rounding)
    toy = unetcli.load("toy", weights=toy_model, device="cpu", precision="fp32")
    for photo in photos:
        api = np.asarray(toy(Image.open(photo)))
        with Image.open(out / (photo.stem + ".png")) as written:
            np.testing.assert_array_equal(api, np.asarray(written))
        assert np.abs(api.astype(int) - _reference(photo)).max() <= 1
    # summary
    r = runner.invoke(app, ["summary", "toy-gray", "-w", str(toy_model), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["total_params"] == 4
    # export (TorchScript), then predict and the API on the export
    exported = tmp_path / "toy.torchscript"
    r = runner.invoke(app, ["export", "toy-gray", "-w", str(toy_model), "--format", "torchscript", "-o",
                            str(exported)])
    assert r.exit_code == 0, r.output
    assert unetcli.load(exported, device="cpu").spec.name == "toy-gray"
    np.testing.assert_array_equal(np.asarray(unetcli.load(exported, device="cpu")(Image.open(photos[0]))),
                                  np.asarray(Image.open(out / (photos[0].stem + ".png"))))


def test_a_registered_model_name_is_checked():
    register_model(TOY_SPEC)
    try:
        with pytest.raises(UsageError, match="already in the registry"):
            register_model(TOY_SPEC)
    finally:
        unregister_model("toy-gray")
    assert "toy-gray" not in unetcli.list_models()
    with pytest.raises(UsageError, match="unknown task"):
        register_model(ModelSpec(name="bad", task="sketch", factory=ToyGray, in_channels=3, out_channels=1, params=4,
                                 seed="", train_size=32, full_resolution=True, loss="mae"))
    with pytest.raises(TypeError):
        ModelSpec("positional", "decolorize")  # every field is keyword-only


def test_a_task_from_a_test_file_is_registered_and_checked():
    class SketchTask(DecolorizeTask):
        """A gray task under another name (what a plugin's or a recipe's task looks like to the registry)."""

    with pytest.raises(UsageError, match="already exists"):
        register_task("decolorize", SketchTask)
    with pytest.raises(UsageError, match="not a unetcli.tasks.Task subclass"):
        register_task("sketch", dict)
    spec = ModelSpec(name="toy-sketch", task="sketch", factory=ToyGray, in_channels=3, out_channels=1, params=4,
                     seed="", train_size=32, full_resolution=True, loss="mae")
    register_task("sketch", SketchTask)
    try:
        register_model(spec)
        assert isinstance(make_task(get_spec("toy-sketch")), SketchTask)
    finally:
        unregister_model("toy-sketch")
        unregister_task("sketch")
        unregister_task("decolorize")  # built-in: left alone
    assert "sketch" not in TASKS and TASKS["decolorize"] is DecolorizeTask
    with pytest.raises(UsageError, match="unknown task"):
        register_model(spec)


def test_a_format_from_a_test_file_exports_and_runs(toy_model, toy_format, tmp_path):
    path = tmp_path / "toy.toyz"
    r = runner.invoke(app, ["export", "toy", "-w", str(toy_model), "--format", toy_format, "-o", str(path)])
    assert r.exit_code == 0, r.output
    assert path.is_file() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left
    photo = held_out_photos()[1]
    out = tmp_path / "out"
    r = runner.invoke(app, ["predict", str(photo), str(out), "-m", "toy", "-w", str(path), "-q"])
    assert r.exit_code == 0, r.output
    api = unetcli.load(path, device="cpu")  # the model is read from the file
    assert api.spec.name == "toy-gray"
    np.testing.assert_array_equal(np.asarray(api(Image.open(photo))), np.asarray(Image.open(out / (photo.stem +
                                                                                                       ".png"))))
    r = runner.invoke(app, ["export", "toy", "-w", str(toy_model), "--format", toy_format, "-o",
                            str(tmp_path / "toy.onnx")])
    assert r.exit_code == 2 and "must end in .toyz" in r.stderr


def test_an_output_type_from_a_test_file(random_weights):
    def render_outline(labels: np.ndarray, num_classes: int, ctx: dict) -> Image.Image:
        edge = np.zeros_like(labels, dtype=bool)
        edge[1:, :] |= labels[1:, :] != labels[:-1, :]
        edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
        rgb = ctx["rgb"].copy()
        rgb[edge] = (0, 255, 0)
        return Image.fromarray(rgb, mode="RGB")

    register_renderer(Renderer("outline", ("segment",), render_outline, needs_photo=True))
    try:
        photo = skimage_photo("astronaut")[::4, ::4]
        seg = unetcli.load("seg", weights=random_weights("unet-seg"), device="cpu", precision="fp32",
                           output_type="outline")
        out = seg(photo)
        assert out.mode == "RGB" and out.size == (photo.shape[1], photo.shape[0])
        with pytest.raises(UsageError, match="expected one of mask, overlay, cutout, palette, outline"):
            unetcli.load("seg", output_type="sketch")
    finally:
        RENDERERS.pop("outline")
