"""The spatial cGAN (``arch="spatial"``): a fully convolutional G, trained on crops, sampled at any size.

Ornaments are periodic textures, so G need not draw a whole image at once: like SGAN (Jetchev et al. 2016)
and PSGAN (Bergmann et al. 2017) it maps a *spatial* noise map to an image, one latent cell per 8 x 8 px,
and D only ever judges crops (``crop`` px). Trained on 64-px crops of 128-px images, the same weights then
draw 128, 256 or 512 px images by being given a larger noise map: the cost of a training step does not grow
with the size participants see, which is what lets a CPU train it.

G's input map at each latent cell is
- ``local_dim`` channels of i.i.d. noise (SGAN's local part: what varies from place to place);
- ``periodic_dim`` sinusoids ``sin(<k_j, p> + phi_j)`` of the cell position ``p``, whose wave vectors k_j are a
  learned function of the culture vector and the global noise, and whose phases phi_j are noise (PSGAN's
  periodic part: what repeats, at a scale and angle chosen per image);
and, as in cgan.py, every conditional batch norm sees the culture vector and the global noise (PSGAN's
global part: palette, scale, orientation, the same everywhere in one image). Convolutions pad by
reflection so the image's edges look like its inside.

One sample's noise is one flat vector: ``z_dim`` global values, then ``periodic_dim`` phases, then the
local map (``local_dim x h x w``); drawn from one seeded generator in that order, the global part of a seed
is the same at every size. D is cgan.Discriminator at the crop size, with the projection head (§4.4).
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from culturelab.generation.cgan import SPATIAL_STRIDE, CGANConfig, ConditionalBatchNorm2d, CultureEncoder


class SpatialBlock(nn.Module):
    """CBN-ReLU-up-conv3 (reflect padding): one 2x step of G."""

    def __init__(self, in_ch: int, out_ch: int, cond_dim: int) -> None:
        super().__init__()
        self.norm = ConditionalBatchNorm2d(in_ch, cond_dim)
        self.conv = nn.Conv2d(in_ch, out_ch, 3, padding=1, padding_mode="reflect")

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(F.relu(self.norm(x, cond)), scale_factor=2, mode="nearest"))


class SpatialGenerator(nn.Module):
    """G(z, c) -> an image whose size follows z's length (``noise_dim(size)``), research design §3.5, §4.4."""

    def __init__(self, config: CGANConfig) -> None:
        super().__init__()
        self.config = config
        b = config.g_channels
        ch = [8 * b, 4 * b, 2 * b, b]  # latent cells, then 2x, 4x, 8x
        self.culture = CultureEncoder(len(config.cultures), config.culture_dim, config.culture_vectors)
        cond_dim = config.culture_dim + config.z_dim
        # Wave vectors (2 per sinusoid) from culture and global noise; started at periods of ~2-8 cells
        # (16-64 px), the scale of the motifs' repeats.
        self.waves = nn.Linear(cond_dim, 2 * config.periodic_dim) if config.periodic_dim else None
        if self.waves is not None:
            nn.init.normal_(self.waves.weight, std=0.1)
            nn.init.normal_(self.waves.bias, std=1.5)
        self.input = nn.Conv2d(config.local_dim + config.periodic_dim, ch[0], 3, padding=1, padding_mode="reflect")
        self.latent_norm = ConditionalBatchNorm2d(ch[0], cond_dim)
        self.latent_conv = nn.Conv2d(ch[0], ch[0], 3, padding=1, padding_mode="reflect")
        self.blocks = nn.ModuleList(SpatialBlock(ch[i], ch[i + 1], cond_dim) for i in range(3))
        self.out_norm = nn.BatchNorm2d(ch[-1])
        self.out_conv = nn.Conv2d(ch[-1], 3, 3, padding=1, padding_mode="reflect")

    def latent_size(self, size: int) -> int:
        if size % SPATIAL_STRIDE:
            raise ValueError(f"a spatial G draws multiples of {SPATIAL_STRIDE} px, not {size}")
        return size // SPATIAL_STRIDE

    def noise_dim(self, size: int | None = None) -> int:
        """Length of one sample's noise vector for a ``size`` x ``size`` image (default: ``resolution``)."""
        cells = self.latent_size(size or self.config.resolution) ** 2
        return self.config.z_dim + self.config.periodic_dim + self.config.local_dim * cells

    def forward(self, z: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        n = z.shape[0]
        glob, phases, local = z.split([cfg.z_dim, cfg.periodic_dim, z.shape[1] - cfg.z_dim - cfg.periodic_dim], 1)
        side = math.isqrt(local.shape[1] // cfg.local_dim)
        if cfg.local_dim * side * side != local.shape[1]:
            raise ValueError(f"noise of length {z.shape[1]} is not a square noise map for this G")
        cond = torch.cat([self.culture(weights), glob], dim=1)
        maps = [local.reshape(n, cfg.local_dim, side, side)]
        if self.waves is not None:
            k = self.waves(cond).view(n, cfg.periodic_dim, 2, 1, 1)
            pos = torch.arange(side, device=z.device, dtype=z.dtype)
            py, px = pos.view(1, 1, side, 1), pos.view(1, 1, 1, side)
            # phases: standard normal noise times pi covers the circle
            maps.append(torch.sin(k[:, :, 0] * px + k[:, :, 1] * py + math.pi * phases.view(n, -1, 1, 1)))
        x = self.input(torch.cat(maps, dim=1))
        x = x + self.latent_conv(F.relu(self.latent_norm(x, cond)))
        for block in self.blocks:
            x = block(x, cond)
        return torch.tanh(self.out_conv(F.relu(self.out_norm(x))))


def crop_config(config: CGANConfig) -> CGANConfig:
    """The config of D (and of G's training output): a dcgan-family D at the crop size."""
    return replace(config, arch="dcgan", resolution=config.crop, crop=0, local_dim=0, periodic_dim=0)
