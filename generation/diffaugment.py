"""Differentiable augmentation (Zhao et al. 2020, "DiffAugment"): the same random colour, translation and
cutout applied to real *and* generated images before D, in both D's and G's updates, so D cannot memorise
a small set of real images while G still learns the un-augmented distribution.

A port of the authors' reference policies (github.com/mit-han-lab/data-efficient-gans, DiffAugment_pytorch.py)
with one change: the random draws come from a CPU ``torch.Generator`` (the training RNG), so a run stays
reproducible on any device and ``--resume`` continues exactly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

POLICIES = ("color", "translation", "cutout")


def parse_policy(text: str) -> tuple[str, ...]:
    """``"color,translation,cutout"`` -> the policies, checked; ``""`` -> none."""
    parts = tuple(p.strip() for p in text.split(",") if p.strip())
    unknown = [p for p in parts if p not in POLICIES]
    if unknown:
        raise ValueError(f"unknown DiffAugment policy {', '.join(unknown)}; use a comma list of {', '.join(POLICIES)}")
    return parts


def _rand(n: int, gen: torch.Generator, x: torch.Tensor) -> torch.Tensor:
    return torch.rand(n, 1, 1, 1, generator=gen).to(device=x.device, dtype=x.dtype)


def color(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    n = x.shape[0]
    x = x + (_rand(n, gen, x) - 0.5)  # brightness
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_rand(n, gen, x) * 2) + mean  # saturation
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_rand(n, gen, x) + 0.5) + mean  # contrast


def translation(x: torch.Tensor, gen: torch.Generator, ratio: float = 0.125) -> torch.Tensor:
    """Shift by up to ``ratio`` of the size, filling with zeros (as the reference)."""
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty = torch.randint(-sh, sh + 1, (n, 1, 1), generator=gen).to(x.device)
    tx = torch.randint(-sw, sw + 1, (n, 1, 1), generator=gen).to(x.device)
    dev = x.device
    axes = (torch.arange(n, device=dev), torch.arange(h, device=dev), torch.arange(w, device=dev))
    gb, gy, gx = torch.meshgrid(*axes, indexing="ij")
    gy = torch.clamp(gy + ty + 1, 0, h + 1)
    gx = torch.clamp(gx + tx + 1, 0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1]).permute(0, 2, 3, 1)
    return padded[gb, gy, gx].permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, gen: torch.Generator, ratio: float = 0.5) -> torch.Tensor:
    """Zero one square of ``ratio`` x the size at a random place in each image."""
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    oy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), generator=gen).to(x.device)
    ox = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), generator=gen).to(x.device)
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    inside = (ys >= oy - ch // 2) & (ys < oy - ch // 2 + ch) & (xs >= ox - cw // 2) & (xs < ox - cw // 2 + cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


_FUNCTIONS = {"color": color, "translation": translation, "cutout": cutout}


def diff_augment(x: torch.Tensor, policy: tuple[str, ...], gen: torch.Generator) -> torch.Tensor:
    for name in policy:
        x = _FUNCTIONS[name](x, gen)
    return x
