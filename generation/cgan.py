"""The culture-conditioned GAN: generator G(z, c), projection discriminator D(x, c), and their losses.

The condition c is a culture vector (research design §3.6, §4.4). It is either a learned embedding per
culture or a fixed vector per culture read from a file (then a learned linear map adapts it). A *mix* of
cultures is the weighted average of their vectors, so G can be asked for "half girih, half kente".

G: a linear layer to a 4x4 map, then nearest-upsample + 3x3 conv blocks with conditional batch norm
(the culture vector sets each norm's gain and bias). D: strided convs with spectral norm, a minibatch-std
channel, sum pooling, and the projection head of Miyato & Koyama (2018): logit = psi(h) + <embed(c), h>.

``CGANConfig.arch`` picks the model family: ``dcgan`` (this file), ``resnet`` (cgan_res.py: residual up/down
blocks, 32-256 px) or ``spatial`` (spatial_gan.py: a fully convolutional G trained on crops, sampled at any
size). ``models.make_generator`` / ``make_discriminator`` build the right one; all share this file's
culture encoder, conditional batch norm, minibatch-std channel and the §4.4 losses.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

RESOLUTIONS = (32, 64, 128)  # the dcgan family's
ARCH_RESOLUTIONS = {"dcgan": (32, 64, 128), "resnet": (32, 64, 128, 256), "spatial": (64, 96, 128, 192, 256, 384, 512)}
SPATIAL_STRIDE = 8  # spatial G: one latent cell per 8 x 8 pixels (three 2x upsampling blocks)


@dataclass
class CGANConfig:
    """Everything needed to rebuild G and D (stored with every checkpoint)."""

    cultures: list[str]
    resolution: int = 32
    z_dim: int = 128
    g_channels: int = 32
    d_channels: int = 32
    culture_dim: int = 64
    # Fixed culture vectors (one list per culture, same order as ``cultures``) or None for learned ones.
    culture_vectors: list[list[float]] | None = field(default=None)
    arch: str = "dcgan"  # dcgan | resnet | spatial (checkpoints from before this field are dcgan)
    # spatial only: D's crop size (G trains at this size and samples at ``resolution``), and the channels
    # of G's per-position noise and of its periodic (PSGAN) input
    crop: int = 0
    local_dim: int = 0
    periodic_dim: int = 0

    def __post_init__(self) -> None:
        if self.arch not in ARCH_RESOLUTIONS:
            raise ValueError(f"arch must be one of {', '.join(ARCH_RESOLUTIONS)}, not {self.arch!r}")
        supported = ARCH_RESOLUTIONS[self.arch]
        if self.resolution not in supported:
            raise ValueError(f"resolution must be one of {supported} for arch {self.arch}, not {self.resolution}")
        if self.arch == "spatial":
            if self.crop not in RESOLUTIONS or self.crop > self.resolution:  # D is a dcgan-family D at the crop size
                raise ValueError(f"spatial crop must be one of {RESOLUTIONS} and at most {self.resolution}")
            if self.local_dim < 1 or self.periodic_dim < 0:
                raise ValueError("spatial G needs local_dim >= 1 and periodic_dim >= 0")
        elif self.crop or self.local_dim or self.periodic_dim:
            raise ValueError("crop, local_dim and periodic_dim are for arch spatial only")
        if len(self.cultures) < 2:
            raise ValueError("a culture-conditioned GAN needs at least two cultures")
        if self.culture_vectors is not None:
            if len(self.culture_vectors) != len(self.cultures):
                raise ValueError("need exactly one culture vector per culture")
            if len({len(v) for v in self.culture_vectors}) != 1:
                raise ValueError("all culture vectors must have the same length")

    def to_dict(self) -> dict:
        """The config as stored in checkpoints and manifests; a dcgan's is what it was before ``arch`` existed."""
        out = asdict(self)
        if self.arch != "spatial":
            for key in ("crop", "local_dim", "periodic_dim"):
                del out[key]
        if self.arch == "dcgan":
            del out["arch"]
        return out

    @property
    def num_blocks(self) -> int:
        return int(math.log2(self.resolution // 4))


class CultureEncoder(nn.Module):
    """Culture weights (B, K) -> condition vector (B, out_dim), linear in the weights.

    Learned: a (K -> out_dim) linear map of the weights, i.e. one embedding per culture and a mix the
    weighted average of embeddings. Fixed vectors: weights @ vectors (a buffer), then a learned linear map.
    Being a plain ``nn.Linear``, the map can be spectrally normalised (D does, as Miyato & Koyama do).
    """

    def __init__(self, num_cultures: int, out_dim: int, vectors: list[list[float]] | None = None) -> None:
        super().__init__()
        table = torch.eye(num_cultures) if vectors is None else torch.tensor(vectors, dtype=torch.float32)
        self.register_buffer("table", table)
        self.linear = nn.Linear(table.shape[1], out_dim, bias=False)

    def forward(self, weights: torch.Tensor) -> torch.Tensor:
        return self.linear(weights.to(self.table.dtype) @ self.table)


def minibatch_std(h: torch.Tensor, group: int = 4) -> torch.Tensor:
    """One extra channel: the features' standard deviation across groups of ``group`` consecutive samples
    (Karras et al. 2018). A collapsed G, whose samples all look alike, gets a low value D can spot."""
    n, c, height, width = h.shape
    g = math.gcd(group, n)
    std = h.float().view(n // g, g, c, height, width).var(dim=1, unbiased=False).add(1e-8).sqrt()
    std = std.mean(dim=(1, 2, 3)).to(h.dtype)
    return torch.cat([h, std.repeat_interleave(g).view(n, 1, 1, 1).expand(n, 1, height, width)], dim=1)


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm whose gain and bias are linear functions of the culture vector (c in G(z, c), §4.4)."""

    def __init__(self, channels: int, cond_dim: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Linear(cond_dim, channels)
        self.bias = nn.Linear(cond_dim, channels)
        nn.init.zeros_(self.gain.weight)
        nn.init.ones_(self.gain.bias)
        nn.init.zeros_(self.bias.weight)
        nn.init.zeros_(self.bias.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.bn(x) * self.gain(cond)[:, :, None, None] + self.bias(cond)[:, :, None, None]


class GBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, cond_dim: int) -> None:
        super().__init__()
        self.norm = ConditionalBatchNorm2d(in_ch, cond_dim)
        self.conv = nn.Conv2d(in_ch, out_ch, 3, padding=1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.norm(x, cond))
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


def _channels(base: int, num_blocks: int) -> list[int]:
    """Channel widths from the 4x4 map up to full resolution: 8b, 8b, 4b, 2b, b, b (num_blocks + 1 of them)."""
    return [base * m for m in (8, 8, 4, 2, 1, 1)][: num_blocks + 1]


class Generator(nn.Module):
    """G(z, c): noise and culture weights to an image in [-1, 1] (research design §3.5, §4.4)."""

    def __init__(self, config: CGANConfig) -> None:
        super().__init__()
        self.config = config
        ch = _channels(config.g_channels, config.num_blocks)
        self.culture = CultureEncoder(len(config.cultures), config.culture_dim, config.culture_vectors)
        cond_dim = config.culture_dim + config.z_dim
        self.fc = nn.Linear(config.z_dim + config.culture_dim, ch[0] * 16)
        self.blocks = nn.ModuleList(GBlock(ch[i], ch[i + 1], cond_dim) for i in range(config.num_blocks))
        self.out_norm = nn.BatchNorm2d(ch[-1])
        self.out_conv = nn.Conv2d(ch[-1], 3, 3, padding=1)

    def noise_dim(self, size: int | None = None) -> int:
        """Length of one sample's noise vector (the same at every size for this G)."""
        return self.config.z_dim

    def forward(self, z: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        c = self.culture(weights)
        # Every norm sees both the culture vector and the noise (as in BigGAN's shared conditioning).
        cond = torch.cat([c, z], dim=1)
        x = self.fc(cond).view(z.shape[0], -1, 4, 4)
        for block in self.blocks:
            x = block(x, cond)
        return torch.tanh(self.out_conv(F.relu(self.out_norm(x))))


class Discriminator(nn.Module):
    """D(x, c): a real/fake logit for an image and its culture, with projection conditioning (§4.4)."""

    def __init__(self, config: CGANConfig) -> None:
        super().__init__()
        self.config = config
        ch = list(reversed(_channels(config.d_channels, config.num_blocks)))
        layers: list[nn.Module] = [spectral_norm(nn.Conv2d(3, ch[0], 3, padding=1)), nn.LeakyReLU(0.2)]
        for i in range(config.num_blocks):
            layers += [spectral_norm(nn.Conv2d(ch[i], ch[i + 1], 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
            if i < config.num_blocks - 1:
                layers += [spectral_norm(nn.Conv2d(ch[i + 1], ch[i + 1], 3, padding=1)), nn.LeakyReLU(0.2)]
        self.features = nn.Sequential(*layers)
        self.final = spectral_norm(nn.Conv2d(ch[-1] + 1, ch[-1], 3, padding=1))
        self.linear = spectral_norm(nn.Linear(ch[-1], 1))
        self.culture = CultureEncoder(len(config.cultures), ch[-1], config.culture_vectors)
        spectral_norm(self.culture.linear)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Samples are grouped by 4 consecutive ones for the minibatch-std channel: a batch that is
        [real; fake] must have a multiple of 4 in each half so no group mixes the two."""
        h = F.leaky_relu(self.final(minibatch_std(self.features(x))), 0.2).sum(dim=(2, 3))
        # Projection discriminator (Miyato & Koyama 2018): the culture enters as an inner product.
        return (self.linear(h) + (self.culture(weights) * h).sum(dim=1, keepdim=True)).squeeze(1)


def d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """L_D = -E[log D(x,c)] - E[log(1 - D(G(z,c),c))], research design §4.4.

    With D = sigmoid(logit): -log sigmoid(l) = softplus(-l) and -log(1 - sigmoid(l)) = softplus(l),
    which is the numerically stable form of the same formula.
    """
    return F.softplus(-real_logits.float()).mean() + F.softplus(fake_logits.float()).mean()


def g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """L_G = -E[log D(G(z,c),c)], research design §4.4 (the non-saturating generator loss, §4.3)."""
    return F.softplus(-fake_logits.float()).mean()


def one_hot(labels: torch.Tensor, num_cultures: int) -> torch.Tensor:
    return F.one_hot(labels, num_cultures).float()
