"""Culture-conditioned image translation, StarGAN-style (Choi et al. 2018): one G restyles content to any culture.

G(x, c) takes an image x and a target domain c (one-hot, tiled over the image as extra input channels) and
returns x restyled; D has two heads on one trunk, real/fake patches (the adversarial head) and the image's
domain (the classification head). The domains are the data's cultures plus ``content``: the content images
(the built-in scenes, or the user's) are a domain of their own, so the cycle G(G(x, c), c_x) ≈ x can bring
a restyled content image back. Losses, with x of domain c_x and a target c != c_x drawn per image:

- D: L_adv^D (research design §4.3, on D's patch logits) + λ_cls CE(D_cls(x), c_x)
- G: L_adv^G (§4.3) + λ_cls CE(D_cls(G(x, c)), c) + λ_rec |x − G(G(x, c), c_x)|_1 + λ_id |x − G(x, c_x)|_1
     + λ_content L_content(G(x, c), x) for the content images (an addition to StarGAN, below)

The adversarial terms are §4.3's, written with softplus on D's logits (the stable form of the same formula),
where StarGAN used WGAN-GP; D's convolutions are spectrally normalised (Miyato et al. 2018) instead.

The cycle alone does not keep a scene's layout when it is restyled to an ornament: G can hide what it needs
to come back in fine texture (Chu et al. 2017), and D pulls every output towards a full-frame ornament. The
content term is the research design's content loss (§4.1, VGG19 conv4_2 responses, as style transfer uses)
between a content image and its restyled versions, divided by the content's own ½ ΣP² so that λ_content
does not depend on the features' scale.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from culturelab.generation.nst import content_loss
from culturelab.generation.vgg import VGGFeatures

CONTENT_DOMAIN = "content"
CONTENT_LAYER = "conv4_2"  # §4.1's layer for the content term
RESOLUTIONS = (32, 64, 128)
UPSAMPLINGS = ("transpose", "resize")


@dataclass(frozen=True)
class TranslationConfig:
    """The model: its domains (the cultures, then ``content``), resolution and widths."""

    domains: tuple[str, ...]
    resolution: int = 64
    g_channels: int = 32
    d_channels: int = 32
    res_blocks: int = 4
    upsample: str = "transpose"  # G's upsamplings; checkpoints from before the option hold no key: transpose

    def __post_init__(self) -> None:
        object.__setattr__(self, "domains", tuple(self.domains))
        if self.resolution not in RESOLUTIONS:
            raise ValueError(f"resolution {self.resolution} is not one of {', '.join(map(str, RESOLUTIONS))}")
        if self.upsample not in UPSAMPLINGS:
            raise ValueError(f"upsample {self.upsample!r} is not one of {', '.join(UPSAMPLINGS)}")
        if len(self.domains) < 2 or self.domains[-1] != CONTENT_DOMAIN:
            raise ValueError(f"domains must be one or more cultures followed by {CONTENT_DOMAIN!r}")

    @property
    def cultures(self) -> tuple[str, ...]:
        return self.domains[:-1]

    def to_dict(self) -> dict:
        return asdict(self) | {"domains": list(self.domains)}


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False),
            nn.InstanceNorm2d(channels, affine=True),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False),
            nn.InstanceNorm2d(channels, affine=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _norm_act(conv: nn.Module, channels: int) -> list[nn.Module]:
    return [conv, nn.InstanceNorm2d(channels, affine=True), nn.ReLU(inplace=True)]


def upsampling(c_in: int, c_out: int, kind: str) -> nn.Module:
    """Twice the side: StarGAN's 4x4 stride-2 transposed convolution, or nearest-neighbour resize then a 3x3
    convolution. In the transposed one each output pixel's parity picks its own quarter of the kernel, so even a
    flat input comes out as a stride-2 checkerboard that training must learn to cancel; resize-convolution uses
    the whole kernel everywhere (Odena, Dumoulin & Olah 2016)."""
    if kind == "transpose":
        return nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False)
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False))


class TranslationGenerator(nn.Module):
    """StarGAN's G: 7x7 conv, two stride-2 downsamplings, residual blocks, two upsamplings, 7x7 conv, tanh."""

    def __init__(self, config: TranslationConfig) -> None:
        super().__init__()
        self.config = config
        ch, k = config.g_channels, len(config.domains)
        layers = _norm_act(nn.Conv2d(3 + k, ch, 7, 1, 3, bias=False), ch)
        layers += _norm_act(nn.Conv2d(ch, 2 * ch, 4, 2, 1, bias=False), 2 * ch)
        layers += _norm_act(nn.Conv2d(2 * ch, 4 * ch, 4, 2, 1, bias=False), 4 * ch)
        layers += [ResidualBlock(4 * ch) for _ in range(config.res_blocks)]
        layers += _norm_act(upsampling(4 * ch, 2 * ch, config.upsample), 2 * ch)
        layers += _norm_act(upsampling(2 * ch, ch, config.upsample), ch)
        layers += [nn.Conv2d(ch, 3, 7, 1, 3), nn.Tanh()]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """x in [-1, 1] (B, 3, R, R); c: domain weights (B, K+1), one-hot for one domain."""
        tiled = c[:, :, None, None].to(x.dtype).expand(-1, -1, x.shape[2], x.shape[3])
        return self.body(torch.cat([x, tiled], 1))


class TranslationDiscriminator(nn.Module):
    """PatchGAN trunk (stride-2 4x4 convs down to 4x4) with an adversarial and a domain-classification head."""

    def __init__(self, config: TranslationConfig) -> None:
        super().__init__()
        layers, ch, side, c_in = [], config.d_channels, config.resolution, 3
        while side > 4:
            layers += [spectral_norm(nn.Conv2d(c_in, ch, 4, 2, 1)), nn.LeakyReLU(0.2, inplace=True)]
            c_in, ch, side = ch, min(2 * ch, 8 * config.d_channels), side // 2
        self.trunk = nn.Sequential(*layers)
        self.adv = spectral_norm(nn.Conv2d(c_in, 1, 3, 1, 1))  # real/fake per 4x4 patch
        self.cls = spectral_norm(nn.Conv2d(c_in, len(config.domains), 4, 1, 0))  # the image's domain

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(x)
        return self.adv(h).flatten(1), self.cls(h).flatten(1)


def d_adversarial_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """L_D = -E[log D(x)] - E[log(1 - D(G(x, c)))] (research design §4.3), as softplus of the logits."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def g_adversarial_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """L_G = -E[log D(G(x, c))] (research design §4.3)."""
    return F.softplus(-fake_logits).mean()


def one_hot(labels: torch.Tensor, k: int) -> torch.Tensor:
    return F.one_hot(labels, k).float()


def random_targets(source: torch.Tensor, k: int, rng: torch.Generator) -> torch.Tensor:
    """A target domain for each image, uniform over the k - 1 domains other than its own."""
    return (source + torch.randint(1, k, source.shape, generator=rng)) % k


@dataclass(frozen=True)
class LossWeights:
    cls: float = 1.0
    rec: float = 10.0
    identity: float = 0.0
    content: float = 0.0


def relative_content_loss(features: VGGFeatures, restyled: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """§4.1's L_content on conv4_2 between images in [-1, 1] and their restyled versions, / ½ ΣP²; mean over images."""
    f = features(restyled.add(1).div(2))[CONTENT_LAYER]
    with torch.no_grad():
        p = features(content.add(1).div(2))[CONTENT_LAYER]
    return (content_loss(f, p) / content_loss(p, torch.zeros_like(p)).clamp_min(1e-12)).mean()


def translation_update(
    g: TranslationGenerator,
    d: TranslationDiscriminator,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    x: torch.Tensor,
    source: torch.Tensor,
    target: torch.Tensor,
    weights: LossWeights,
    features: VGGFeatures | None = None,
) -> dict[str, float]:
    """One D update then one G update on images ``x`` of domains ``source``, restyled to ``target``.

    ``features`` (VGG19 up to conv4_2) are needed when ``weights.content`` is set.
    """
    k = len(g.config.domains)
    c_src, c_trg = one_hot(source, k).to(x.device), one_hot(target, k).to(x.device)
    source, target = source.to(x.device), target.to(x.device)

    # (1) Update D: adversarial (§4.3) + classify real images' domains
    fake = g(x, c_trg).detach()
    real_adv, real_cls = d(x)
    fake_adv, _ = d(fake)
    loss_d_adv = d_adversarial_loss(real_adv, fake_adv)
    loss_d_cls = F.cross_entropy(real_cls, source)
    opt_d.zero_grad(set_to_none=True)
    (loss_d_adv + weights.cls * loss_d_cls).backward()
    opt_d.step()

    # (2) Update G: fool D (§4.3), be classified as the target domain, come back by the cycle, keep the layout
    fake = g(x, c_trg)
    fake_adv, fake_cls = d(fake)
    loss_g_adv = g_adversarial_loss(fake_adv)
    loss_g_cls = F.cross_entropy(fake_cls, target)
    loss_rec = (x - g(fake, c_src)).abs().mean()
    loss_g = loss_g_adv + weights.cls * loss_g_cls + weights.rec * loss_rec
    if weights.identity:
        loss_g = loss_g + weights.identity * (x - g(x, c_src)).abs().mean()
    content_stats = {}
    is_content = source == k - 1
    if weights.content and is_content.any():
        loss_content = relative_content_loss(features, fake[is_content], x[is_content])
        loss_g = loss_g + weights.content * loss_content
        content_stats["loss_content"] = loss_content.item()
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()
    return content_stats | {
        "loss_d_adv": loss_d_adv.item(),
        "loss_d_cls": loss_d_cls.item(),
        "loss_g_adv": loss_g_adv.item(),
        "loss_g_cls": loss_g_cls.item(),
        "loss_rec": loss_rec.item(),
        "fake_cls_acc": (fake_cls.argmax(1) == target).float().mean().item(),
    }
