"""``unetcli export``: every registry model to ONNX and TorchScript, verified at another batch size and H x W than
the export example; a failed check leaves no file; ``predict --weights model.onnx`` (and ``.torchscript``) writes
what the PyTorch backend writes on real photos."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from conftest import run_cli, skimage_photo
from unetcli.cli import app
from unetcli.engine import export as export_engine
from unetcli.engine.export import ATOL, ExportOptions, export_model
from unetcli.engine.model import load_model
from unetcli.errors import ExportError
from unetcli.formats import FORMATS as FORMAT_TABLE
from unetcli.models.registry import REGISTRY_VERSION, get_spec, list_models
from unetcli.weights import load_pretrained_encoder, save_weights, sha256_file, shipped_weights

MODELS = list_models()
#: The registry models as parameters, the 31M-parameter ones marked slow.
MODEL_PARAMS = [pytest.param(n, marks=pytest.mark.slow) if get_spec(n).params > 10_000_000 else n for n in MODELS]
FORMATS = ("onnx", "torchscript")
SUFFIX = {"onnx": ".onnx", "torchscript": ".torchscript"}
#: (N, H, W) of the export example: small, so the 31M-parameter nets stay fast.
EXAMPLE = (1, 48, 40)
#: Run shapes that differ from the example in N, H and W, and are not multiples of 16 (the in-graph padding).
RUN_SHAPES = ((2, 75, 100), (1, 131, 67))
#: Input and output names of the exported graphs.
IO_NAMES = {"unet-colorize": ("gray", "rgb"), "unet-decolorize": ("rgb", "gray"), "unet-seg": ("rgb", "logits"),
            "simple-black": ("rgb", "gray"), "unet-seg-mobilenetv2": ("rgb", "logits"),
            "unet-colorize-mobilenetv2": ("gray", "ab")}

runner = CliRunner()


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """Factory: model name -> fp16 safetensors of a seeded model with BatchNorm statistics calibrated on one batch
    (cumulative average of a train-mode pass), so that eval-mode activations and outputs are of order 1 as in a
    trained net, and export-vs-PyTorch differences are measured at a realistic scale (with the default statistics
    the outputs of the deep nets shrink towards 0 and any comparison would pass)."""
    folder = tmp_path_factory.mktemp("export-weights")
    made: dict[str, Path] = {}

    def make(name: str) -> Path:
        if name not in made and get_spec(name).task == "colorize-lab" and shipped_weights(get_spec(name)):
            # A trained a/b head: a random one puts most pixels far outside the sRGB gamut, where the chroma search
            # of the recombination turns float rounding between runtimes into whole colours.
            made[name] = shipped_weights(get_spec(name))
        if name not in made:
            spec = get_spec(name)
            torch.manual_seed(0)
            model = spec.factory()
            keep = set()
            if spec.encoder_weights:  # a pretrained encoder keeps its ImageNet weights and statistics
                load_pretrained_encoder(model, spec)
                keep = set(model.encoder.modules())
            norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d) and m not in keep]
            for bn in norms:
                bn.reset_running_stats()
                bn.momentum = None
            if norms:
                with torch.no_grad():
                    model.train()
                    for m in keep:
                        m.eval()
                    model(torch.rand(2, spec.in_channels, 64, 64))
            made[name] = folder / f"{name}.safetensors"
            save_weights(model.eval(), made[name], {"model": spec.name})
        return made[name]

    return make


@pytest.fixture(scope="module")
def exported(weights, tmp_path_factory):
    """Factory: (model, format) -> (file, ExportResult), exported once per module through the engine."""
    folder = tmp_path_factory.mktemp("exports")
    done: dict[tuple[str, str], tuple[Path, export_engine.ExportResult]] = {}

    def make(name: str, fmt: str):
        if (name, fmt) not in done:
            n, h, w = EXAMPLE
            result = export_model(ExportOptions(model=name, format=fmt, weights=weights(name), batch_size=n,
                                                input_size=(h, w), output=folder / f"{name}{SUFFIX[fmt]}"))
            done[name, fmt] = (result.path, result)
        return done[name, fmt]

    return make


@pytest.fixture(scope="module")
def reference(weights):
    """Factory: (model, (N, H, W)) -> (input, PyTorch fp32 output), from the same fp16 weights the exports hold."""
    done: dict = {}

    def make(name: str, shape: tuple[int, int, int]):
        if (name, shape) not in done:
            spec = get_spec(name)
            model, _ = load_model(spec, weights(name))
            x = torch.rand(shape[0], spec.in_channels, shape[1], shape[2], generator=torch.Generator().manual_seed(1))
            with torch.inference_mode():
                done[name, shape] = (x, model(x).float())
        return done[name, shape]

    return make


def _run_export(path: Path, fmt: str, x: torch.Tensor) -> np.ndarray:
    """Run an exported file the way a user without unetcli would: onnxruntime, or torch.jit.load."""
    if fmt == "onnx":
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.inference_mode():
        return torch.jit.load(str(path)).eval()(x).numpy()


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", MODEL_PARAMS)
def test_export_is_verified_and_matches_pytorch_at_other_shapes(name, fmt, exported, reference, weights):
    path, result = exported(name, fmt)
    # The export verified itself at another N and H x W than its example, within the tolerance.
    assert result.example_shape[0] == EXAMPLE[0] and tuple(result.example_shape[2:]) == EXAMPLE[1:]
    n, _, h, w = result.check_shape
    assert n != EXAMPLE[0] and h != EXAMPLE[1] and w != EXAMPLE[2]
    assert ATOL == 1e-4 and result.atol >= ATOL  # 1e-4 per unit of output scale (absolute for outputs in [-1, 1])
    assert 0 <= result.max_abs_diff <= result.atol
    assert result.checker is (fmt == "onnx")
    # Independently of the engine: the file runs at the shapes and gives PyTorch's answers.
    for shape in RUN_SHAPES:
        x, ref = reference(name, shape)
        out = _run_export(path, fmt, x)
        assert out.shape == tuple(ref.shape) == (shape[0], ref.shape[1], shape[1], shape[2])
        assert float(np.abs(out - ref.numpy()).max()) <= ATOL * max(1.0, float(ref.abs().max())), (name, fmt, shape)
        assert float(ref.abs().max()) > 0.1  # the comparison is not between two near-zero outputs


@pytest.mark.parametrize("name", MODEL_PARAMS)
def test_onnx_file_has_named_dynamic_io_and_metadata(name, exported, weights):
    path, result = exported(name, "onnx")
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert {o.domain or "ai.onnx": o.version for o in model.opset_import}["ai.onnx"] == result.opset >= 17
    spec = get_spec(name)
    (inp,), (out,) = model.graph.input, model.graph.output
    assert (inp.name, out.name) == IO_NAMES[name]
    assert _dims(inp) == ["batch", spec.in_channels, "height", "width"]
    assert _dims(out) == ["batch", spec.out_channels, "height", "width"]
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["model"] == name and meta["registry_version"] == str(REGISTRY_VERSION)
    assert meta["weights_sha256"] == sha256_file(weights(name))
    assert meta["input_range"] == "[0, 1]" and "no mean/std" in meta["input_normalization"]
    assert meta["output"].startswith(IO_NAMES[name][1])


def _dims(value: onnx.ValueInfoProto) -> list:
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


def test_torchscript_file_carries_the_same_metadata(exported, weights):
    path, _ = exported("unet-decolorize", "torchscript")
    extra = {"unetcli.json": ""}
    torch.jit.load(str(path), _extra_files=extra)
    meta = json.loads(extra["unetcli.json"])
    assert meta["model"] == "unet-decolorize" and meta["weights_sha256"] == sha256_file(weights("unet-decolorize"))


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """Three real photos (scikit-image's samples), small, as JPEG and PNG, one gray, one with alpha."""
    folder = tmp_path_factory.mktemp("export-photos")
    Image.fromarray(skimage_photo("astronaut")).resize((120, 120)).save(folder / "astronaut.jpg", quality=90)
    Image.fromarray(skimage_photo("coffee")).resize((150, 100)).save(folder / "coffee.png")
    rgba = Image.fromarray(skimage_photo("chelsea")).resize((113, 75)).convert("RGBA")
    rgba.putalpha(128)
    rgba.save(folder / "chelsea_alpha.png")
    Image.fromarray(skimage_photo("rocket")).resize((90, 60)).convert("L").save(folder / "rocket_gray.png")
    return folder


def _predict(photos: Path, out: Path, name: str, weights_file: Path) -> dict[str, np.ndarray]:
    args = ["predict", str(photos), str(out), "-m", name, "-w", str(weights_file), "--workers", "0", "-q",
            "--precision", "fp32"]
    if not get_spec(name).full_resolution:
        args += ["--size", "64"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    return {p.name: np.asarray(Image.open(p), np.int16) for p in sorted(out.glob("[!.]*"))}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", MODEL_PARAMS)
def test_predict_with_an_export_writes_what_pytorch_writes(name, fmt, exported, weights, photos, tmp_path):
    path, _ = exported(name, fmt)
    expected = _predict(photos, tmp_path / "pytorch", name, weights(name))
    got = _predict(photos, tmp_path / fmt, name, path)
    assert sorted(got) == sorted(expected) and len(got) == 4
    for file, image in got.items():
        assert image.shape == expected[file].shape, file
        if get_spec(name).task == "segment":
            # 0/255 masks: a pixel may flip only where the probability is within float rounding of the threshold.
            assert np.mean(image != expected[file]) <= 1e-3, file
        else:
            assert np.abs(image - expected[file]).max() <= 1, file  # within 1/255


def test_cli_end_to_end_in_a_subprocess_export_then_predict(weights, photos, tmp_path):
    out_file = tmp_path / "models" / "sb.onnx"
    r = run_cli("export", "simple-black", "--weights", weights("simple-black"), "--output", out_file,
                "--input-size", "32x24", "--batch-size", "2", "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert Path(result["path"]) == out_file and out_file.is_file()
    assert result["check_shape"] == [3, 3, 43, 29] and result["max_abs_diff"] <= 1e-4 and result["checker"]
    r = run_cli("predict", photos, tmp_path / "out", "-m", "simple-black", "-w", out_file, "--workers", "0")
    assert r.returncode == 0 and "done 4, skipped 0, failed 0" in r.stderr and "[cpu, fp32]" in r.stderr, r.stderr


def test_default_output_name_and_printed_verification(weights, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["export", "simple-black", "-w", str(weights("simple-black")), "-f", "torchscript"])
    assert r.exit_code == 0, r.output
    assert "verified: torch.jit.load" in r.stderr and "max abs diff" in r.stderr
    assert r.stdout.strip() == "simple-black.torchscript" and (tmp_path / "simple-black.torchscript").is_file()


def test_shipped_weights_are_used_when_present_and_missing_ones_are_a_clear_error(weights, tmp_path, monkeypatch):
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    monkeypatch.setenv("UNETCLI_WEIGHTS_DIR", str(shipped))
    r = runner.invoke(app, ["export", "simple-black", "-o", str(tmp_path / "a.onnx")])
    assert r.exit_code == 2 and "simple-black has no shipped weights yet" in r.output
    assert "Traceback" not in r.output and not (tmp_path / "a.onnx").exists()
    for suffix in (".safetensors", ".json"):
        shutil.copy(weights("simple-black").with_suffix(suffix), shipped / f"simple-black{suffix}")
    r = runner.invoke(app, ["export", "simple-black", "-o", str(tmp_path / "a.onnx"), "--json"])
    assert r.exit_code == 0, r.output
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "a.onnx")).metadata_props}
    assert meta["weights_sha256"] == sha256_file(shipped / "simple-black.safetensors")


def _perturbed(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` with its first conv's weights shifted: exports of it no longer match ``model``."""
    import copy

    bad = copy.deepcopy(model)
    with torch.no_grad():
        next(m for m in bad.modules() if isinstance(m, torch.nn.Conv2d)).weight.add_(0.05)
    return bad


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_export_that_differs_from_pytorch_fails_and_leaves_no_file(fmt, weights, tmp_path, monkeypatch):
    real = FORMAT_TABLE[fmt].write
    monkeypatch.setattr(FORMAT_TABLE[fmt], "write", lambda model, *a, **k: real(_perturbed(model), *a, **k))
    out_file = tmp_path / f"sb{SUFFIX[fmt]}"
    r = runner.invoke(app, ["export", "simple-black", "-w", str(weights("simple-black")), "-f", fmt,
                            "-o", str(out_file), "--input-size", "16"])
    assert r.exit_code == 1, r.output
    assert "verification failed" in r.stderr and "was not written" in r.stderr and "Traceback" not in r.output
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temporary


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_corrupt_export_fails_its_check_and_leaves_no_file(fmt, weights, tmp_path, monkeypatch):
    def write_garbage(model, example, path, *args, **kwargs):
        Path(path).write_bytes(b"\x08\x07garbage, not a model")

    monkeypatch.setattr(FORMAT_TABLE[fmt], "write", write_garbage)
    out_file = tmp_path / f"sb{SUFFIX[fmt]}"
    with pytest.raises(ExportError, match="onnx.checker rejected" if fmt == "onnx" else "could not run"):
        export_model(ExportOptions(model="simple-black", format=fmt, weights=weights("simple-black"),
                                   output=out_file, input_size=(16, 16)))
    assert list(tmp_path.iterdir()) == []


def test_failed_export_keeps_an_existing_good_file_untouched(weights, tmp_path, monkeypatch):
    out_file = tmp_path / "sb.onnx"
    out_file.write_bytes(b"previous export")
    monkeypatch.setattr(export_engine, "ATOL", -1.0)  # every verification fails
    r = runner.invoke(app, ["export", "simple-black", "-w", str(weights("simple-black")), "-o", str(out_file),
                            "--input-size", "16"])
    assert r.exit_code == 1 and out_file.read_bytes() == b"previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sb.onnx"]


@pytest.mark.parametrize("missing", ["onnx", "onnxruntime", "onnxscript"])
def test_missing_optional_packages_name_the_extra(missing, weights, tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, missing, None)  # makes `import missing` fail
    r = runner.invoke(app, ["export", "simple-black", "-w", str(weights("simple-black")), "-o",
                            str(tmp_path / "x.onnx")])
    assert r.exit_code == 2 and "pip install 'unetcli[export]'" in r.stderr and f"'{missing}'" in r.stderr
    assert "Traceback" not in r.output and not (tmp_path / "x.onnx").exists()


def test_predict_with_onnx_needs_onnxruntime_and_the_right_model(exported, photos, tmp_path, monkeypatch):
    path, _ = exported("simple-black", "onnx")
    r = runner.invoke(app, ["predict", str(photos), str(tmp_path / "o"), "-m", "unet-seg", "-w", str(path)])
    assert r.exit_code == 2 and "this export is of simple-black, not unet-seg" in r.stderr
    r = runner.invoke(app, ["predict", str(photos), str(tmp_path / "o"), "-m", "simple-black", "-w", str(path),
                            "--precision", "bf16"])
    assert r.exit_code == 2 and "exported models run in fp32" in r.stderr
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    r = runner.invoke(app, ["predict", str(photos), str(tmp_path / "o"), "-m", "simple-black", "-w", str(garbage)])
    assert r.exit_code == 2 and "not a loadable ONNX model" in r.stderr and "Traceback" not in r.output
    monkeypatch.setitem(__import__("sys").modules, "onnxruntime", None)
    r = runner.invoke(app, ["predict", str(photos), str(tmp_path / "o"), "-m", "simple-black", "-w", str(path)])
    assert r.exit_code == 2 and "pip install 'unetcli[export]'" in r.stderr


@pytest.mark.parametrize("args, message", [
    (["--opset", "17"], "--opset 17: the ONNX export needs opset 18 or newer"),
    (["--format", "torchscript", "--opset", "18"], "--opset applies to --format onnx only"),
    (["--output", "model.pt"], "--format onnx files must end in .onnx"),
    (["--input-size", "big"], "expected N or HxW"),
])
def test_usage_errors_are_one_line_and_exit_2(args, message, weights):
    r = runner.invoke(app, ["export", "simple-black", "-w", str(weights("simple-black")), *args])
    assert r.exit_code == 2 and message in r.stderr and "Traceback" not in r.output, r.output
