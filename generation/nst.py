"""Neural style transfer (Gatys et al. 2016) exactly as research design §2.2, §3.2–3.4, §4.1–4.2 and §5 give it.

A batch of B (content, style) pairs is optimised at once: image i's loss depends only on image i (VGG has no
batch-norm), and both optimisers keep the items apart (Adam is element-wise; see lbfgs.py for L-BFGS), so a
pair's result does not depend on the batch it ran in. Every loss here returns one value per image, (B,).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from culturelab.generation.lbfgs import minimize_lbfgs
from culturelab.generation.vgg import VGGFeatures

INITS = ("content", "style", "noise")
OPTIMIZERS = ("lbfgs", "adam")
PRECISIONS = ("fp32", "bf16")  # bf16: the VGG19 passes under autocast; losses, Gram matrices and L-BFGS in fp32
DEFAULT_LR = {"lbfgs": 1.0, "adam": 0.02}  # L-BFGS: torch's unit step; Adam: pixel steps in [0, 1] units


@dataclass(frozen=True)
class NSTConfig:
    """The options of §3.3–3.4: layers and their weights, alpha and beta, optimiser, steps, initial image."""

    content_layers: tuple[str, ...] = ("conv4_2",)
    style_layers: tuple[str, ...] = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
    style_weights: tuple[float, ...] | None = None  # w_l of §4.2; None: 1 / (number of style layers) each
    alpha: float = 1.0
    beta: float = 1e6  # §5's style_weight; alpha/beta = 1e-6 for torchvision's [0, 1]-scaled ImageNet VGG19
    tv_weight: float = 0.0
    steps: int = 300  # loss evaluations (one forward + backward pass each)
    init: str = "content"
    optimizer: str = "lbfgs"
    lr: float | None = None  # None: DEFAULT_LR[optimizer]
    history_size: int = 100
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; use {', '.join(PRECISIONS)}")
        if self.init not in INITS:
            raise ValueError(f"unknown init {self.init!r}; use {', '.join(INITS)}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; use {', '.join(OPTIMIZERS)}")
        if not self.content_layers and self.alpha:
            raise ValueError("no content layers given (or set alpha to 0)")
        if not self.style_layers:
            raise ValueError("no style layers given")
        if self.style_weights is not None and len(self.style_weights) != len(self.style_layers):
            raise ValueError(
                f"{len(self.style_weights)} style weights for {len(self.style_layers)} style layers; give one per layer"
            )
        if self.steps < 1:
            raise ValueError("steps must be at least 1")
        # A nan or inf weight turns every image black; a negative one asks the optimiser to move away.
        weights = {"alpha": self.alpha, "beta": self.beta, "tv weight": self.tv_weight}
        weights |= {f"style weight of {layer}": w for layer, w in self.layer_weights.items()}
        if bad := [name for name, w in weights.items() if not (math.isfinite(w) and w >= 0)]:
            raise ValueError(f"{bad[0]} must be a finite number >= 0")
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError("the step size (lr) must be a finite number > 0")

    @property
    def layer_weights(self) -> dict[str, float]:
        """w_l per style layer (Gatys et al. use 1/5 on each of conv1_1 ... conv5_1)."""
        weights = self.style_weights or (1.0 / len(self.style_layers),) * len(self.style_layers)
        return dict(zip(self.style_layers, weights, strict=True))

    @property
    def step_size(self) -> float:
        return DEFAULT_LR[self.optimizer] if self.lr is None else self.lr

    @property
    def layers(self) -> list[str]:
        return list(dict.fromkeys(self.content_layers + self.style_layers))

    def to_dict(self) -> dict:
        return asdict(self) | {"style_weights": list(self.layer_weights.values()), "lr": self.step_size}


def content_loss(f: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """L_content = 1/2 sum_ij (F^l_ij - P^l_ij)^2 (research design §4.1), per image: (B, N, H, W) -> (B,)."""
    return 0.5 * (f - p).pow(2).flatten(1).sum(1)


def gram_matrix(f: torch.Tensor) -> torch.Tensor:
    """G^l_ij = sum_k F^l_ik F^l_jk over the M_l = H*W positions k (research design §4.2): (B, N, H, W) -> (B, N, N)."""
    # Positions-major (B, M, N) is a view of a channels_last response (the VGG's layout), so the Gram's
    # gradient comes back in that layout too; an NCHW flatten made autograd add the two branches'
    # gradients across layouts, which cost a quarter of a bare VGG pass on the CPU.
    b, n, h, w = f.shape
    flat = f.permute(0, 2, 3, 1).reshape(b, h * w, n)
    return flat.transpose(1, 2) @ flat


def style_layer_loss(g: torch.Tensor, a: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """E_l = 1/(4 N_l^2 M_l^2) sum_ij (G^l_ij - A^l_ij)^2 (research design §4.2), per image: (B, N, N) -> (B,)."""
    return (g - a).pow(2).flatten(1).sum(1) / (4.0 * n * n * m * m)


class StyleLayerLoss(torch.autograd.Function):
    """E_l of a response F^l against A^l, with the gradient of Gatys et al. (2016, eq. 6) written out.

    dE_l/dF^l = 1/(N_l^2 M_l^2) F^l (G^l - A^l) (positions-major F, symmetric A^l): one matrix product, where autograd
    through ``gram_matrix`` and ``style_layer_loss`` takes two and several element-wise passes over G.
    The value is ``style_layer_loss(gram_matrix(f), a, n, m)``; tests check both value and gradient.
    """

    @staticmethod
    def forward(ctx, f: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        b, n, h, w = f.shape
        flat = f.permute(0, 2, 3, 1).reshape(b, h * w, n)
        diff = flat.transpose(1, 2) @ flat - a
        scale = 1.0 / (n * n * (h * w) ** 2)
        ctx.save_for_backward(flat, diff)
        ctx.scale, ctx.shape = scale, (b, h, w, n)
        return diff.pow(2).flatten(1).sum(1) * (scale / 4.0)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        flat, diff = ctx.saved_tensors
        # (diff + diff^T) / 2 is diff itself for a Gram target A; it keeps the gradient exact for any A.
        grad = (flat @ (diff + diff.transpose(1, 2))) * (grad_out * ctx.scale / 2)[:, None, None]
        # Back to (B, N, H, W) as a channels_last view, the layout the VGG's response has.
        return grad.reshape(ctx.shape).permute(0, 3, 1, 2), None


def tv_loss(x: torch.Tensor) -> torch.Tensor:
    """Total variation: squared differences of neighbouring pixels, per image (Mahendran & Vedaldi 2015, beta=2).

    Not in the research design; off by default (--tv 0). It trades a little style detail for smoother output.
    """
    dy = (x[:, :, 1:, :] - x[:, :, :-1, :]).pow(2).flatten(1).sum(1)
    dx = (x[:, :, :, 1:] - x[:, :, :, :-1]).pow(2).flatten(1).sum(1)
    return dx + dy


@dataclass
class Targets:
    """P^l (content responses) and A^l (style Gram matrices) for a batch, computed once before optimising."""

    content: dict[str, torch.Tensor]  # layer -> (B, N, H, W)
    style: dict[str, torch.Tensor]  # layer -> (B, N, N)


@torch.no_grad()
def content_targets(features: VGGFeatures, images: torch.Tensor, cfg: NSTConfig) -> dict[str, torch.Tensor]:
    """P^l: the content images' responses on the content layers (§3.2, step 1)."""
    responses = features(images)
    return {layer: responses[layer] for layer in cfg.content_layers}


@torch.no_grad()
def style_grams(features: VGGFeatures, images: torch.Tensor, cfg: NSTConfig) -> dict[str, torch.Tensor]:
    """A^l for one style: the Gram matrices of ``images`` (K, 3, H, W) averaged over the K images (§3.2, step 2).

    Several images of one culture give one target: the mean of their Gram matrices, i.e. the feature
    correlations of the culture's images taken together.
    """
    responses = features(images)
    return {layer: gram_matrix(responses[layer]).mean(0) for layer in cfg.style_layers}


def losses(
    features: VGGFeatures, x: torch.Tensor, targets: Targets, cfg: NSTConfig
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L_total = alpha L_content + beta L_style (+ tv_weight TV) per image (research design §3.3), and its parts."""
    if cfg.precision == "bf16":
        # Tensor cores run bf16 convolutions at twice TF32's rate; the responses come back to fp32 before the
        # losses, since a Gram matrix sums over every position and bf16 keeps only ~3 significant digits.
        with torch.autocast(x.device.type, dtype=torch.bfloat16):
            responses = features(x)
        responses = {layer: r.float() for layer, r in responses.items()}
    else:
        responses = features(x)
    l_content = sum((content_loss(responses[layer], p) for layer, p in targets.content.items()), x.new_zeros(len(x)))
    l_style = x.new_zeros(len(x))
    for layer, w in cfg.layer_weights.items():  # L_style = sum_l w_l E_l (§4.2)
        l_style = l_style + w * StyleLayerLoss.apply(responses[layer], targets.style[layer])
    total = cfg.alpha * l_content + cfg.beta * l_style
    if cfg.tv_weight:
        total = total + cfg.tv_weight * tv_loss(x)
    return total, {"content": l_content.detach(), "style": l_style.detach()}


def stylize(
    features: VGGFeatures,
    init: torch.Tensor,
    targets: Targets,
    cfg: NSTConfig,
    on_evaluation: Callable[[], None] | None = None,
) -> torch.Tensor:
    """Optimise the images, starting from ``init`` (B, 3, H, W) in [0, 1], for ``cfg.steps`` evaluations (§3.4).

    As in §5 the pixels are free during optimisation and clamped to [0, 1] only at the end (§5.5).
    """
    x = init.detach().clone().requires_grad_(True)

    def closure() -> torch.Tensor:
        x.grad = None
        total, _ = losses(features, x, targets, cfg)
        total.sum().backward()  # items are independent, so the sum's gradient is each item's own
        if on_evaluation is not None:
            on_evaluation()
        return total

    if cfg.optimizer == "lbfgs":
        minimize_lbfgs(x, closure, cfg.steps, lr=cfg.step_size, history_size=cfg.history_size)
    else:
        adam = torch.optim.Adam([x], lr=cfg.step_size)
        for _ in range(cfg.steps):
            closure()
            adam.step()
    return x.detach().clamp_(0.0, 1.0)
