"""The training loop: seeds, exact resume, run folder contents, settings checks, DDP on two CPU processes."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from culturelab.generation import checkpoint
from culturelab.generation.cgan import Generator
from culturelab.generation.train import (
    ConfigError,
    culture_grouped_indices,
    mode_seeking_penalty,
    model_config,
    standing_stats,
    train,
)

from .conftest import tiny_config


def weights(path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_batches_come_in_groups_of_one_culture():
    """D's minibatch-std groups (4 consecutive images) must each hold one culture, drawn like the data's."""
    labels = torch.tensor([0] * 10 + [1] * 3 + [2] * 7)[torch.randperm(20, generator=torch.Generator().manual_seed(1))]
    rng = torch.Generator().manual_seed(0)
    seen = torch.zeros(3)
    for _ in range(200):
        groups = labels[culture_grouped_indices(labels, 16, rng)].view(4, 4)
        assert (groups == groups[:, :1]).all()
        seen += torch.bincount(groups[:, 0], minlength=3)
    torch.testing.assert_close(seen / seen.sum(), torch.tensor([0.5, 0.15, 0.35]), atol=0.05, rtol=0)


def test_mode_seeking_penalty_grows_as_g_ignores_z():
    z = torch.randn(8, 16)
    varied = torch.tanh(torch.randn(8, 3, 8, 8))
    same = varied[:1].expand(8, -1, -1, -1) + 1e-3 * torch.randn(8, 3, 8, 8)
    assert mode_seeking_penalty(same, z) > 10 * mode_seeking_penalty(varied, z)


def test_standing_stats_match_the_generators_own_weights(tiny_data):
    """The exported EMA generator gets batch-norm statistics of its own; the training copy is left alone."""
    torch.manual_seed(0)
    g = Generator(model_config(tiny_config("unused"), tiny_data.cultures))
    before = {k: v.clone() for k, v in g.state_dict().items()}
    fixed = standing_stats(g, tiny_data.labels, batches=4, batch_size=8)
    assert not fixed.training and g.training
    assert_same(before, g.state_dict())
    assert not torch.equal(fixed.out_norm.running_mean, g.out_norm.running_mean)
    assert_same(fixed.state_dict(), standing_stats(g, tiny_data.labels, batches=4, batch_size=8).state_dict())


def test_mode_seeking_trains(tmp_path, tiny_data):
    train(tiny_config(tmp_path, mode_seeking=1.0), data=tiny_data, progress=False)
    assert (tmp_path / "generator.safetensors").exists()


def test_run_folder_contents(tmp_path, tiny_data):
    out = tmp_path / "run"
    generator = train(tiny_config(out), data=tiny_data, progress=False)
    assert generator == out / "generator.safetensors"
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert {"loss_d", "loss_g", "d_real", "d_fake", "steps_per_s"} <= rows[0].keys()
    # Softplus losses are positive by construction; what can go wrong is a NaN or an overflow.
    assert all(math.isfinite(r[k]) for r in rows for k in ("loss_d", "loss_g", "d_real", "d_fake"))
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["step-000002.png", "step-000003.png"]
    header = json.loads((out / "generator.json").read_text())
    assert header["format"] == checkpoint.FORMAT and header["kind"] == "generator" and header["step"] == 3
    g, _ = checkpoint.load_generator(generator)
    assert g.config.cultures == tiny_data.cultures


def test_same_seed_same_weights_other_seed_other_weights(tmp_path, tiny_data):
    a = train(tiny_config(tmp_path / "a", steps=2), data=tiny_data, progress=False)
    b = train(tiny_config(tmp_path / "b", steps=2), data=tiny_data, progress=False)
    c = train(tiny_config(tmp_path / "c", steps=2, seed=1), data=tiny_data, progress=False)
    assert_same(weights(a), weights(b))
    assert not torch.equal(weights(a)["g_ema.fc.weight"], weights(c)["g_ema.fc.weight"])


def test_resume_is_exactly_equivalent_to_an_uninterrupted_run(tmp_path, tiny_data):
    straight = tmp_path / "straight"
    train(tiny_config(straight, steps=4), data=tiny_data, progress=False)
    split = tmp_path / "split"
    train(tiny_config(split, steps=2), data=tiny_data, progress=False)
    train(tiny_config(split, steps=4, resume=True), data=tiny_data, progress=False)
    assert_same(weights(straight / "checkpoint.safetensors"), weights(split / "checkpoint.safetensors"))
    steps = [json.loads(line)["step"] for line in (split / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    assert_same(weights(straight / "generator.safetensors"), weights(split / "generator.safetensors"))
    # resuming a finished run exports the same generator again
    (split / "generator.safetensors").unlink()
    train(tiny_config(split, steps=4, resume=True), data=tiny_data, progress=False)
    assert_same(weights(straight / "generator.safetensors"), weights(split / "generator.safetensors"))


def test_resume_refuses_other_settings(tmp_path, tiny_data):
    out = tmp_path / "run"
    train(tiny_config(out, steps=2), data=tiny_data, progress=False)
    with pytest.raises(ConfigError, match="lr_d"):
        train(tiny_config(out, steps=4, lr_d=1e-3, resume=True), data=tiny_data, progress=False)
    with pytest.raises(ConfigError, match="model config"):
        train(tiny_config(out, steps=4, g_channels=8, resume=True), data=tiny_data, progress=False)


def test_external_culture_vectors(tmp_path, tiny_data):
    vectors = {c: [float(i), 1.0, -float(i)] for i, c in enumerate(tiny_data.cultures)}
    path = tmp_path / "vectors.json"
    path.write_text(json.dumps(vectors))
    generator = train(tiny_config(tmp_path / "run", steps=1, culture_vectors=str(path)), data=tiny_data, progress=False)
    g, _ = checkpoint.load_generator(generator)
    assert g.config.culture_vectors[2] == [2.0, 1.0, -2.0]
    path.write_text(json.dumps({"girih": [1.0]}))
    with pytest.raises(ConfigError, match="lack culture"):
        train(tiny_config(tmp_path / "run2", steps=1, culture_vectors=str(path)), data=tiny_data, progress=False)


def test_bad_settings(tmp_path, tiny_data):
    with pytest.raises(ConfigError, match="multiple of 4"):
        train(tiny_config(tmp_path / "a", batch_size=6), data=tiny_data, progress=False)
    with pytest.raises(ConfigError, match="resolution"):
        train(tiny_config(tmp_path / "b", resolution=64), data=tiny_data, progress=False)


@pytest.mark.slow
def test_ddp_two_cpu_processes_with_gloo(tmp_path):
    """torchrun, two processes, gloo: both ranks train on halves of each batch and stay in sync."""
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "culturelab.generation",
        "train",
        "--data",
        "motifs",
        "--per-culture",
        "4",
        "--resolution",
        "32",
        "--steps",
        "2",
        "--batch-size",
        "8",
        "--z-dim",
        "16",
        "--g-channels",
        "4",
        "--d-channels",
        "4",
        "--culture-dim",
        "8",
        "--device",
        "cpu",
        "--log-every",
        "1",
        "--out",
        str(out),
    ]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    header, tensors = checkpoint.read(out / "checkpoint.safetensors")
    assert header["step"] == 2
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]  # only rank 0 writes
    assert torch.isfinite(tensors["g.fc.weight"]).all()


def test_generator_out_and_paths_relative_to_the_checkpoint(tmp_path, tiny_data):
    out, elsewhere = tmp_path / "run", tmp_path / "export" / "g.safetensors"
    cfg = tiny_config(out, steps=2, checkpoint_every=100, sample_every=100, checkpoint_minutes=1e-9)
    cfg.generator_out = str(elsewhere)
    assert train(cfg, data=tiny_data, progress=False) == elsewhere
    assert elsewhere.exists() and not (out / "generator.safetensors").exists()
    assert json.loads(elsewhere.with_suffix(".json").read_text())["train"]["out"] == "../run"
    header = json.loads((out / "checkpoint.json").read_text())["train"]
    assert header["out"] == "." and header["generator_out"] == "../export/g.safetensors"


def test_resume_from_an_image_folder_recorded_relative(tmp_path, monkeypatch):
    from culturelab.generation.data import write_motif_dataset

    write_motif_dataset(tmp_path / "data", 2, 32)
    monkeypatch.chdir(tmp_path)
    train(tiny_config("run", data="data", steps=2), progress=False)
    assert json.loads((tmp_path / "run" / "checkpoint.json").read_text())["train"]["data"] == "../data"
    train(tiny_config(tmp_path / "run", data=str(tmp_path / "data"), steps=3, resume=True), progress=False)
    assert json.loads((tmp_path / "run" / "generator.json").read_text())["step"] == 3
    write_motif_dataset(tmp_path / "other", 2, 32)  # the same images in another folder: other data
    with pytest.raises(ConfigError, match=r"other settings \(data\)"):
        train(tiny_config("run", data="other", steps=4, resume=True), progress=False)
