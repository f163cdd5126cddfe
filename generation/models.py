"""Build G and D for a config's ``arch`` (dcgan: cgan.py, resnet: cgan_res.py, spatial: spatial_gan.py)."""

from __future__ import annotations

from torch import nn

from culturelab.generation.cgan import CGANConfig, Discriminator, Generator
from culturelab.generation.cgan_res import ResDiscriminator, ResGenerator
from culturelab.generation.spatial_gan import SpatialGenerator, crop_config


def make_generator(config: CGANConfig) -> nn.Module:
    return {"dcgan": Generator, "resnet": ResGenerator, "spatial": SpatialGenerator}[config.arch](config)


def make_discriminator(config: CGANConfig) -> nn.Module:
    if config.arch == "spatial":
        return Discriminator(crop_config(config))  # D judges crops
    return {"dcgan": Discriminator, "resnet": ResDiscriminator}[config.arch](config)


def train_size(config: CGANConfig) -> int:
    """The size of the images G draws and D judges in training (the crop size for a spatial G)."""
    return config.crop if config.arch == "spatial" else config.resolution
