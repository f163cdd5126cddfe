"""The residual cGAN (``arch="resnet"``): SNGAN/BigGAN-style up and down blocks, 32 to 256 px.

G: a linear layer to a 4x4 map, then residual blocks ``CBN-ReLU-up-conv3-CBN-ReLU-conv3`` with a 1x1-conv
shortcut (Miyato et al. 2018; Brock et al. 2019), conditional batch norm driven by the culture vector and z
as in cgan.py, then BN-ReLU-conv3-tanh. D: residual down blocks with spectral norm (the first one
"optimised": no ReLU before its first conv), the minibatch-std channel, ReLU, sum pooling, and the same
projection head ``logit = psi(h) + <embed(c), h>`` (Miyato & Koyama 2018). The §4.4 losses are cgan.py's.

Channel widths follow BigGAN's tables as multiples of the base width: at 128 px G has 16b, 16b, 8b, 4b,
2b, b from 4x4 up; D mirrors it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from culturelab.generation.cgan import CGANConfig, ConditionalBatchNorm2d, CultureEncoder, minibatch_std

# Width multipliers from the 4x4 map up to full resolution (num_blocks + 1 entries), BigGAN's choice.
_MULTIPLIERS = {
    32: (4, 4, 4, 4),
    64: (16, 8, 4, 2, 1),
    128: (16, 16, 8, 4, 2, 1),
    256: (16, 16, 8, 8, 4, 2, 1),
}


def res_channels(base: int, resolution: int) -> list[int]:
    return [base * m for m in _MULTIPLIERS[resolution]]


class GResBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, cond_dim: int) -> None:
        super().__init__()
        self.norm1 = ConditionalBatchNorm2d(in_ch, cond_dim)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.norm2 = ConditionalBatchNorm2d(out_ch, cond_dim)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = F.interpolate(F.relu(self.norm1(x, cond)), scale_factor=2, mode="nearest")
        h = self.conv2(F.relu(self.norm2(self.conv1(h), cond)))
        return h + self.shortcut(F.interpolate(x, scale_factor=2, mode="nearest"))


class ResGenerator(nn.Module):
    """G(z, c) with residual up blocks (research design §3.5, §4.4)."""

    def __init__(self, config: CGANConfig) -> None:
        super().__init__()
        self.config = config
        ch = res_channels(config.g_channels, config.resolution)
        self.culture = CultureEncoder(len(config.cultures), config.culture_dim, config.culture_vectors)
        cond_dim = config.culture_dim + config.z_dim
        self.fc = nn.Linear(cond_dim, ch[0] * 16)
        self.blocks = nn.ModuleList(GResBlock(ch[i], ch[i + 1], cond_dim) for i in range(len(ch) - 1))
        self.out_norm = nn.BatchNorm2d(ch[-1])
        self.out_conv = nn.Conv2d(ch[-1], 3, 3, padding=1)

    def noise_dim(self, size: int | None = None) -> int:
        return self.config.z_dim

    def forward(self, z: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        cond = torch.cat([self.culture(weights), z], dim=1)  # BigGAN's shared conditioning, as in cgan.py
        x = self.fc(cond).view(z.shape[0], -1, 4, 4)
        for block in self.blocks:
            x = block(x, cond)
        return torch.tanh(self.out_conv(F.relu(self.out_norm(x))))


class DResBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, first: bool = False) -> None:
        super().__init__()
        self.first = first
        self.conv1 = spectral_norm(nn.Conv2d(in_ch, out_ch, 3, padding=1))
        self.conv2 = spectral_norm(nn.Conv2d(out_ch, out_ch, 3, padding=1))
        self.shortcut = spectral_norm(nn.Conv2d(in_ch, out_ch, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.first else F.relu(x)  # the first block sees the image itself (SNGAN's OptimizedBlock)
        h = F.avg_pool2d(self.conv2(F.relu(self.conv1(h))), 2)
        # shortcut: pool first on the image (cheaper, as SNGAN), conv first elsewhere
        s = self.shortcut(F.avg_pool2d(x, 2)) if self.first else F.avg_pool2d(self.shortcut(x), 2)
        return h + s


class ResDiscriminator(nn.Module):
    """D(x, c) with residual down blocks and the projection head (§4.4)."""

    def __init__(self, config: CGANConfig) -> None:
        super().__init__()
        self.config = config
        ch = list(reversed(res_channels(config.d_channels, config.resolution)))
        widths = [3, *ch[1:]]
        self.blocks = nn.Sequential(*(DResBlock(widths[i], widths[i + 1], first=i == 0) for i in range(len(ch) - 1)))
        self.final = spectral_norm(nn.Conv2d(ch[-1] + 1, ch[-1], 3, padding=1))
        self.linear = spectral_norm(nn.Linear(ch[-1], 1))
        self.culture = CultureEncoder(len(config.cultures), ch[-1], config.culture_vectors)
        spectral_norm(self.culture.linear)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Minibatch-std groups are 4 consecutive samples, as in cgan.Discriminator."""
        h = F.relu(self.final(minibatch_std(F.relu(self.blocks(x))))).sum(dim=(2, 3))
        return (self.linear(h) + (self.culture(weights) * h).sum(dim=1, keepdim=True)).squeeze(1)
