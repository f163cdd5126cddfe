"""Tiny models and data sets so that every generation test runs in seconds on a CPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from culturelab.generation.data import motif_images
from culturelab.generation.train import TrainConfig, train


def tiny_config(out: Path, **overrides) -> TrainConfig:
    """A 32 px model with a handful of channels: a few training steps take well under a second."""
    settings = dict(
        out=str(out),
        resolution=32,
        per_culture=4,
        steps=3,
        batch_size=8,
        z_dim=16,
        g_channels=4,
        d_channels=4,
        culture_dim=8,
        log_every=1,
        sample_every=2,
        checkpoint_every=2,
        device="cpu",
        ema_start=1,
    )
    settings.update(overrides)
    return TrainConfig(**settings)


@pytest.fixture(scope="session")
def tiny_data():
    return motif_images(4, 32, seed=0)


@pytest.fixture(scope="session")
def tiny_generator(tmp_path_factory, tiny_data) -> Path:
    """A trained (3 steps) tiny generator checkpoint, shared by the sampling and CLI tests."""
    torch.set_num_threads(1)
    return train(tiny_config(tmp_path_factory.mktemp("run")), data=tiny_data, progress=False)
