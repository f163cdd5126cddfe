"""128 and 256 px: the residual and spatial architectures, DiffAugment, and bad input refused before training.

Tiny models (a few channels) for a few steps, so everything runs in seconds on a CPU.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from safetensors.torch import load_file

from culturelab.generation import checkpoint
from culturelab.generation.cgan import CGANConfig, one_hot
from culturelab.generation.culture_classifier import CultureClassifier
from culturelab.generation.data import DatasetError, motif_images
from culturelab.generation.diffaugment import diff_augment, parse_policy
from culturelab.generation.evaluate import evaluate
from culturelab.generation.models import make_discriminator, make_generator
from culturelab.generation.sample import Condition, generate, native_bf16, png_bytes, write_stimulus_set
from culturelab.generation.train import ConfigError, train
from culturelab.platform.cli import main
from culturelab.platform.stimuli import Manifest

from .conftest import tiny_config

CULTURES = ["seigaiha", "girih", "kente"]


def tiny(arch: str, resolution: int, **kw) -> CGANConfig:
    spatial = dict(crop=32, local_dim=4, periodic_dim=4) if arch == "spatial" else {}
    return CGANConfig(
        cultures=CULTURES,
        resolution=resolution,
        arch=arch,
        z_dim=8,
        g_channels=2,
        d_channels=2,
        culture_dim=4,
        **spatial | kw,
    )


@pytest.fixture(scope="module")
def data128():
    torch.set_num_threads(1)
    return motif_images(8, 128, seed=0)


@pytest.mark.parametrize("resolution", [128, 256])
def test_resnet_shapes_and_projection(resolution):
    torch.manual_seed(0)
    cfg = tiny("resnet", resolution)
    g, d = make_generator(cfg), make_discriminator(cfg).eval()
    c = one_hot(torch.tensor([0, 1, 2, 0]), 3)
    x = g(torch.randn(4, g.noise_dim()), c)
    assert x.shape == (4, 3, resolution, resolution) and x.abs().max() <= 1
    logits = d(x[:1].repeat(4, 1, 1, 1), torch.eye(3)[[0, 1, 2, 0]])
    assert logits.shape == (4,) and len(set(logits[:3].tolist())) == 3  # same image, three cultures


def test_spatial_generator_draws_any_size_from_one_set_of_weights():
    torch.manual_seed(0)
    cfg = tiny("spatial", 128)
    g, d = make_generator(cfg).eval(), make_discriminator(cfg)
    c = one_hot(torch.tensor([0, 1]), 3)
    assert g.noise_dim(32) == 8 + 4 + 4 * 4 * 4 and g.noise_dim() == 8 + 4 + 4 * 16 * 16
    for size in (32, 128, 256):
        assert g(torch.randn(2, g.noise_dim(size)), c).shape == (2, 3, size, size)
    assert d.config.resolution == 32 and d(torch.rand(4, 3, 32, 32), one_hot(torch.tensor([0, 1, 2, 0]), 3)).shape == (
        4,
    )
    with pytest.raises(ValueError, match="square noise map"):
        g(torch.randn(2, g.noise_dim(32) + 1), c)


def test_architecture_settings_are_checked():
    with pytest.raises(ValueError, match="resolution must be one of"):
        tiny("resnet", 48)
    with pytest.raises(ValueError, match="resolution must be one of"):
        tiny("dcgan", 256)
    with pytest.raises(ValueError, match="arch"):
        tiny("vae", 128)
    with pytest.raises(ValueError, match="crop"):
        tiny("spatial", 128, crop=40)
    with pytest.raises(ValueError, match="spatial only"):
        CGANConfig(cultures=CULTURES, resolution=128, arch="resnet", crop=64)
    # a dcgan's stored config is what it was before architectures existed (old checkpoints still load)
    assert "arch" not in tiny("dcgan", 32).to_dict() and tiny("resnet", 128).to_dict()["arch"] == "resnet"


def test_diffaugment_is_differentiable_reproducible_and_does_what_it_says():
    x = torch.rand(6, 3, 16, 16, requires_grad=True)
    a = diff_augment(x, parse_policy("color,translation,cutout"), torch.Generator().manual_seed(0))
    b = diff_augment(x, parse_policy("color,translation,cutout"), torch.Generator().manual_seed(0))
    assert a.shape == x.shape and torch.equal(a, b)
    a.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    ones = torch.ones(64, 3, 16, 16)
    cut = diff_augment(ones, ("cutout",), torch.Generator().manual_seed(1))
    # an 8 x 8 square (half the side) anywhere, clipped at the edges: between 1/16 and 1/4 of the pixels
    zeroed = (cut == 0).float().mean(dim=(1, 2, 3))
    assert (zeroed > 1 / 16 - 1e-6).all() and (zeroed <= 0.25 + 1e-6).all() and zeroed.mean() > 0.15
    moved = diff_augment(ones, ("translation",), torch.Generator().manual_seed(2))
    assert set(moved.unique().tolist()) <= {0.0, 1.0} and (moved == 0).any()  # shifted in zeros, values kept
    assert parse_policy("") == () and parse_policy(" color , cutout") == ("color", "cutout")
    with pytest.raises(ValueError, match="unknown DiffAugment policy blur"):
        parse_policy("color,blur")


@pytest.mark.parametrize("arch", ["resnet", "spatial"])
def test_train_and_sample_at_128_px_with_diffaugment(tmp_path, data128, arch):
    cfg = tiny_config(
        tmp_path / "run",
        arch=arch,
        resolution=128,
        crop=32,
        local_dim=4,
        periodic_dim=4,
        g_channels=2,
        d_channels=2,
        per_culture=8,
        diffaug="color,translation,cutout",
        steps=2,
        sample_every=2,
    )
    path = train(cfg, data=data128, progress=False)
    g, header = checkpoint.load_generator(path)
    assert g.config.arch == arch and g.config.resolution == 128 and header["train"]["diffaug"] == cfg.diffaug
    assert Image.open(tmp_path / "run" / "samples" / "step-000002.png").height > 5 * 128  # full size, one row each
    out = write_stimulus_set(g, tmp_path / "set", [Condition({"girih": 1.0})], 3, seed=5)
    manifest = json.loads((out / "manifest.json").read_text())
    assert [(s["width"], s["height"]) for s in manifest["stimuli"]] == [(128, 128)] * 3
    assert manifest["generator"]["config"]["arch"] == arch
    Manifest.model_validate(manifest)  # the platform's own Contract 1 check
    # same seed, same bytes; a stimulus remade alone from its seed is the same image
    again = generate(g, torch.eye(5)[[1]], [6], torch.device("cpu"))[0]
    assert torch.equal(again, torch.from_numpy(np.array(Image.open(out / "images/girih-0001.png"))))


def test_resume_of_a_spatial_run_with_diffaugment_is_exact(tmp_path, data128):
    settings = dict(
        arch="spatial",
        resolution=128,
        crop=32,
        local_dim=4,
        periodic_dim=4,
        g_channels=2,
        d_channels=2,
        per_culture=8,
        diffaug="translation,cutout",
        sample_every=10,
    )
    train(tiny_config(tmp_path / "a", steps=3, **settings), data=data128, progress=False)
    train(tiny_config(tmp_path / "b", steps=2, **settings), data=data128, progress=False)
    train(tiny_config(tmp_path / "b", steps=3, resume=True, **settings), data=data128, progress=False)
    a = checkpoint.read(tmp_path / "a" / "checkpoint.safetensors")[1]
    b = checkpoint.read(tmp_path / "b" / "checkpoint.safetensors")[1]
    assert all(torch.equal(a[k], b[k]) for k in a)


def folder(root, counts: dict[str, int], size: int):
    for culture, n in counts.items():
        (root / culture).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (size, size + 10), (i * 40, 100, 200)).save(root / culture / f"{i}.png")
    return root


def run(*args):
    return CliRunner().invoke(main, ["generate", "train", *[str(a) for a in args]], catch_exceptions=False)


@pytest.mark.parametrize(
    ("counts", "size", "args", "message"),
    [
        (
            {"a": 8, "b": 3},
            128,
            ["--arch", "resnet", "--resolution", 128],
            "has 3 images of culture b; training at 128 px",
        ),
        ({"a": 8, "b": 8}, 100, ["--arch", "resnet", "--resolution", 128], "100 px on its shorter side, below 128 px"),
        ({"a": 1, "b": 8}, 128, ["--arch", "resnet", "--resolution", 128], "culture a of data folder"),
        ({"a": 8, "b": 8}, 128, ["--arch", "resnet", "--resolution", 48], "--resolution 48 is not supported by arch"),
        ({"a": 8, "b": 8}, 128, ["--resolution", 256], "--resolution 256 is not supported by arch dcgan"),
        ({"a": 8, "b": 8}, 128, ["--arch", "spatial", "--resolution", 128, "--crop", 40], "crop"),
        ({"a": 8, "b": 8}, 128, ["--diffaug", "color,blur"], "unknown DiffAugment policy blur"),
    ],
)
def test_bad_data_and_settings_are_one_line_before_training(tmp_path, counts, size, args, message):
    root = folder(tmp_path / "data", counts, size)
    result = run("--data", root, "--out", tmp_path / "run", "--device", "cpu", *args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.output
    assert not (tmp_path / "run").exists()  # refused before anything was trained or written


def test_too_few_rendered_motifs_for_the_resolution(tmp_path):
    with pytest.raises(DatasetError, match="needs at least 16 per culture"):
        train(tiny_config(tmp_path, arch="resnet", resolution=256, per_culture=4), progress=False)
    with pytest.raises(ConfigError, match="not supported"):
        train(tiny_config(tmp_path, arch="resnet", resolution=512), progress=False)


def test_evaluation_is_at_the_checkpoints_own_resolution(tmp_path, data128):
    cfg = tiny_config(
        tmp_path / "run",
        arch="spatial",
        resolution=128,
        crop=32,
        local_dim=4,
        periodic_dim=4,
        g_channels=2,
        d_channels=2,
        per_culture=8,
        steps=1,
    )
    path = train(cfg, data=data128, progress=False)
    results = evaluate(path, "motifs", per_culture=10)
    assert results["resolution"] == 128 and results["n_real"] == 50
    assert results["classifier"]["path"] == "generator.classifier-motifs-s0-n10-128px.safetensors"
    model = CultureClassifier(5, resolution=128)
    assert len(model.stem) == 6  # two stride-2 convs: 128 -> 32 px before the 32 px body
    model.load_state_dict(load_file(str(tmp_path / "run" / results["classifier"]["path"])))
    assert not CultureClassifier(5).stem  # at 32 px the classifier is the one the 32 px checkpoint was judged by
    header = json.loads((tmp_path / "run" / "generator.json").read_text())
    assert header["train"]["out"] == "."  # paths relative to the checkpoint's own folder


@pytest.mark.parametrize(("stem", "arch"), [("motifs-resnet128", "resnet"), ("motifs-spatial128", "spatial")])
def test_shipped_128_px_checkpoints_meet_their_targets_and_name_no_absolute_path(stem, arch):
    path = checkpoint.PACKAGED / f"{stem}.safetensors"
    g, header = checkpoint.load_generator(path)
    # the GPU run's training checkpoint stayed on the lent machine: its folder is not named at all
    assert (g.config.arch, g.config.resolution) == (arch, 128) and header["train"]["out"] in (".", None)
    results = json.loads(path.with_name(f"{stem}.evaluation.json").read_text())
    assert results["checkpoint"] == path.name and results["checkpoint_sha256"] == checkpoint.sha256_file(path)
    assert results["resolution"] == 128 and results["summary"]["culture_accuracy"] >= 0.95
    assert min(r["diversity_ratio"] for r in results["per_culture_results"].values()) >= 0.5
    for name in (f"{stem}.json", f"{stem}.evaluation.json", "motifs-cgan.evaluation.json"):
        assert "/work/" not in (checkpoint.PACKAGED / name).read_text()
    image = generate(g, torch.eye(5)[[3]], [7], torch.device("cpu"))
    assert image.shape == (1, 128, 128, 3)


def test_example_study_stimuli_come_from_the_default_checkpoint_and_can_be_made_again():
    """The example study's set (platform/examples/motif-preferences) is what study.yaml's command writes with
    the default checkpoint: same checkpoint hash, and an image remade from its seed has the same bytes."""
    folder = Path(__file__).resolve().parents[2] / "platform" / "examples" / "motif-preferences" / "stimuli"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["generator"]["checkpoint_sha256"] == checkpoint.sha256_file(checkpoint.DEFAULT_CHECKPOINT)
    assert {s["width"] for s in manifest["stimuli"]} == {128}
    cpuinfo = Path("/proc/cpuinfo")
    if not native_bf16(torch.device("cpu")) or not cpuinfo.exists() or "amx_bf16" not in cpuinfo.read_text():
        # AVX-512 BF16 alone (an AMD EPYC) computes bf16 natively too, but its kernels round differently
        pytest.skip("the set was written in bf16 on a CPU with AMX (an Intel Xeon); this one rounds differently")
    g, _ = checkpoint.load_generator(checkpoint.DEFAULT_CHECKPOINT)
    cultures = list(g.config.cultures)
    stimulus = manifest["stimuli"][-1]
    weights = Condition(stimulus["mix"]).weights(cultures)[None]
    image = generate(g.eval(), weights, [stimulus["seed"]], torch.device("cpu"))[0].numpy()
    assert png_bytes(image) == (folder / stimulus["file"]).read_bytes()
