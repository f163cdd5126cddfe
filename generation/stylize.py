"""A content x culture grid of style-transfer images, written as a stimulus set (docs/contracts.md, Contract 1).

Every content image is rendered in every culture's style, so a study can hold the content fixed and vary
only the culture. A culture's style is one or several images (the user's files, or built-in motifs of that
culture); several give one target, their averaged Gram matrices. All (content, culture) pairs run through
one VGG19 in batches (see nst.py: a pair's result does not depend on its batch).

Everything that can be checked before the long optimisation is checked first (content and style images,
culture names, the weight file, whether the size fits in memory), and the set is written beside ``out``
and renamed into place at the end, so bad input or an interruption never leaves a partial set behind.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.models.vgg import cfgs as vgg_cfgs
from tqdm import tqdm

from culturelab.generation.content_grid import (
    MIN_SIDE,
    GridInputError,
    Picture,
    content_files,
    load_contents,
    load_square,
    write_contact_sheet,
    write_grid_images,
)
from culturelab.generation.motifs import CULTURES, MAX_RESOLUTION, motif_seed, render_motif_array
from culturelab.generation.nst import NSTConfig, Targets, content_targets, style_grams, stylize
from culturelab.generation.sample import SCHEMA, VERSION, created_at, staged_folder
from culturelab.generation.vgg import LAYER_NAMES, FeatureSource, check_layers, load_features

log = logging.getLogger(__name__)

MOTIF = "motif"  # CULTURE=motif: the style is drawn from the built-in motifs of that culture
DEFAULT_BETA = {"imagenet": 1e6, "random": 1e8}  # random VGG19 responses are smaller; see docs/generation.md


class StylizeError(GridInputError):
    """Input that cannot be stylised (a bad style, an unknown culture, a size that will not fit)."""


def parse_styles(specs: list[str]) -> dict[str, list[str]]:
    """``CULTURE=FILE`` or ``CULTURE=motif`` (repeatable) -> {culture: [sources]}, cultures in order given."""
    styles: dict[str, list[str]] = {}
    for spec in specs:
        culture, sep, source = spec.partition("=")
        culture, source = culture.strip(), source.strip()
        if not sep or not culture or not source:
            raise StylizeError(f"style {spec!r} is not CULTURE=FILE or CULTURE=motif")
        if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,31}", culture):
            raise StylizeError(f"culture name {culture!r} must be lower-case letters, digits, '_', '.' or '-'")
        if source == MOTIF and culture not in CULTURES:
            raise StylizeError(f"unknown culture {culture!r} for {culture}=motif; the motifs are {', '.join(CULTURES)}")
        if source != MOTIF and not Path(source).is_file():
            raise StylizeError(f"style image {source} for {culture} does not exist")
        styles.setdefault(culture, []).append(source)
    if not styles:
        raise StylizeError("no styles given; use --styles CULTURE=FILE or CULTURE=motif")
    return styles


def load_styles(
    styles: dict[str, list[str]], size: int, motifs_per_culture: int, seed: int
) -> dict[str, list[Picture]]:
    """Each culture's style images at ``size`` px; ``motif`` adds that culture's first motifs for ``seed``."""
    out: dict[str, list[Picture]] = {}
    for culture, sources in styles.items():
        pictures = out.setdefault(culture, [])
        for source in sources:
            if source != MOTIF:
                path = Path(source)
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                pictures.append(
                    Picture(path.stem, {"file": path.name, "sha256": digest}, load_square(path, size, "style"))
                )
                continue
            for i in range(motifs_per_culture):
                # The motifs render up to MAX_RESOLUTION; larger sizes are a smooth resize of that.
                rgb = render_motif_array(culture, motif_seed(seed, culture, i), min(size, MAX_RESOLUTION))
                if rgb.shape[0] != size:
                    rgb = np.asarray(Image.fromarray(rgb).resize((size, size), Image.Resampling.LANCZOS))
                pictures.append(Picture(f"{culture}-{i}", {"motif": culture, "seed": seed, "index": i}, rgb))
    return out


def pyramid_sizes(size: int, levels: int) -> list[int]:
    """The sizes of a coarse-to-fine run, each twice the one before, ending at ``size``."""
    if levels < 1:
        raise StylizeError("--pyramid must be at least 1 (one level: the full size only)")
    sizes = [size // 2**k for k in reversed(range(levels))]
    if sizes[0] < MIN_SIDE:
        raise StylizeError(
            f"--pyramid {levels} with --size {size} would start at {sizes[0]} px; the coarsest level needs at least "
            f"{MIN_SIDE} px (use fewer levels or a larger size)"
        )
    return sizes


def _activation_floats(size: int, deepest: str) -> int:
    """Floats in the outputs of VGG19's layers up to ``deepest`` for one size x size image."""
    total, side, channels = 0, size, 3
    names = iter(LAYER_NAMES)
    for entry in vgg_cfgs["E"]:
        if entry == "M":
            side //= 2
            total += channels * side * side
            if next(names) == deepest:
                break
            continue
        channels = entry
        total += 2 * channels * side * side  # conv and ReLU outputs
        if next(names) == deepest:
            break
        next(names)
    return total


def memory_needed(size: int, batch: int, cfg: NSTConfig) -> int:
    """Bytes one batch needs: activations kept for backward and their gradients, L-BFGS history, the network."""
    deepest = max(cfg.layers, key=LAYER_NAMES.index)
    pixels = 3 * size * size
    activations = 2 * _activation_floats(size, deepest)
    # L-BFGS keeps at most history_size pairs (s, y) and makes fewer pairs than steps (an upper bound: lbfgs.py
    # allocates min(history_size, steps - 1) slots)
    history = 2 * min(cfg.history_size, cfg.steps) * pixels if cfg.optimizer == "lbfgs" else 2 * pixels
    return 4 * batch * (activations + history + 8 * pixels) + 600 * 2**20  # + torch, weights, Python


def memory_available(device: torch.device) -> int | None:
    """Free bytes on ``device`` (CUDA: the driver's figure; CPU: MemAvailable on Linux), or None if unknown."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_memory(size: int, batch: int, cfg: NSTConfig, device: torch.device, available: int | None) -> None:
    """Refuse, before starting, a size that will not fit; say which size would."""
    if available is None:
        return
    need = memory_needed(size, batch, cfg)
    budget = 0.9 * available
    if need <= budget:
        return
    fixed = memory_needed(0, batch, cfg)
    fits = int(size * math.sqrt(max(budget - fixed, 0) / max(need - fixed, 1))) // 16 * 16
    fits_text = f"--size {fits} would fit" if fits >= MIN_SIDE else "no size fits"
    raise StylizeError(
        f"--size {size} with --batch-size {batch} needs about {need / 2**30:.1f} GiB but {device.type} has "
        f"{available / 2**30:.1f} GiB free; {fits_text} (or lower --batch-size)"
    )


def _tensor(arrays: list[np.ndarray], device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div_(255.0).to(device)


def match_colors(content: np.ndarray, styles: list[np.ndarray]) -> np.ndarray:
    """``content`` recoloured so that its RGB mean and covariance are those of the ``styles`` pixels together.

    The linear colour transfer of Gatys et al. (2017, §5.1; there applied to the style image to keep the
    content's colours): x -> C_s^1/2 C_c^-1/2 (x - mu_c) + mu_s, with symmetric matrix square roots. Returns
    float32 in [0, 1], H x W x 3.
    """

    def stats(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        flat = pixels.reshape(-1, 3).astype(np.float64) / 255.0
        return flat.mean(0), np.cov(flat, rowvar=False) + 1e-5 * np.eye(3)

    def power(cov: np.ndarray, exponent: float) -> np.ndarray:
        values, vectors = np.linalg.eigh(cov)
        return (vectors * np.clip(values, 1e-8, None) ** exponent) @ vectors.T

    mu_c, cov_c = stats(content)
    mu_s, cov_s = stats(np.concatenate([style.reshape(-1, 3) for style in styles]))
    transform = power(cov_s, 0.5) @ power(cov_c, -0.5)
    flat = content.reshape(-1, 3).astype(np.float64) / 255.0
    return np.clip((flat - mu_c) @ transform.T + mu_s, 0.0, 1.0).reshape(content.shape).astype(np.float32)


def _initial_images(cfg: NSTConfig, content: torch.Tensor, first_styles: list[np.ndarray], seeds) -> torch.Tensor:
    """§3.4's initial output image: the content image (as §5.2), the culture's first style image, or noise."""
    if cfg.init == "content":
        return content
    if cfg.init == "style":
        return _tensor(first_styles, content.device)
    size = content.shape[-1]
    # Uniform noise from each stimulus's own seed, drawn on the CPU so the draw is the same on every device.
    return torch.stack([torch.rand(3, size, size, generator=torch.Generator().manual_seed(s)) for s in seeds]).to(
        content.device
    )


def write_nst_set(
    content_sources: list[Path],
    style_specs: list[str],
    out: Path,
    cfg: NSTConfig,
    *,
    size: int = 256,
    features: str = "imagenet",
    vgg_weights: Path | None = None,
    seed: int = 0,
    batch_size: int = 4,
    motifs_per_culture: int = 4,
    device: torch.device | str = "cpu",
    name: str | None = None,
    overwrite: bool = False,
    progress: bool = False,
    pyramid: int = 1,
    color_match: bool = False,
) -> Path:
    """Stylise every content image in every culture's style and write ``out/`` (Contract 1, method ``nst``).

    Pair ``k`` of the grid (content-major) gets seed ``seed + k`` (used by ``init='noise'``); the features'
    random weights (``features='random'``) and the motif styles are drawn from ``seed`` too. With ``pyramid``
    levels > 1 each image is first stylised at a half, a quarter, ... of ``size`` (``cfg.steps`` evaluations at
    every level), so the network's receptive fields span more of the style's structures (Gatys et al. 2017).
    With ``color_match`` each content image is first recoloured to its culture's style colours (``match_colors``).
    """
    out, device = Path(out), torch.device(device)
    if size < MIN_SIDE:
        raise StylizeError(f"--size {size} is below the minimum of {MIN_SIDE} px")
    sizes = pyramid_sizes(size, pyramid)
    styles_given = parse_styles(style_specs)
    check_layers(cfg.layers)
    pairs_count = len(content_files(content_sources)) * len(styles_given)
    check_memory(size, min(batch_size, pairs_count), cfg, device, memory_available(device))
    vgg, source = load_features(features, cfg.layers, weights=vgg_weights, seed=seed)
    vgg = vgg.to(device)
    levels = [
        (load_contents(content_sources, s), load_styles(styles_given, s, motifs_per_culture, seed)) for s in sizes
    ]
    contents, styles = levels[-1]
    cultures = list(styles)
    if device.type == "cuda":  # the same seed gives the same images: no autotuned, non-deterministic kernels
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False

    with staged_folder(out, overwrite) as tmp:
        grams = [
            {k: style_grams(vgg, _tensor([p.rgb for p in pics], device), cfg) for k, pics in level_styles.items()}
            for _, level_styles in levels
        ]
        pairs = [(i, k) for i in range(len(contents)) for k in range(len(cultures))]
        grid: dict[tuple[int, int], np.ndarray] = {}
        bar = tqdm(total=len(pairs) * cfg.steps * len(sizes), desc="stylize", unit="eval", disable=not progress)
        for start in range(0, len(pairs), batch_size):
            batch = pairs[start : start + batch_size]
            seeds = [seed + start + j for j in range(len(batch))]
            result = None
            for s, (level_contents, level_styles), level_grams in zip(sizes, levels, grams, strict=True):
                # Coarse to fine: each level starts from the previous one's result, enlarged. The content loss
                # sums over positions and E_l does not grow with them, so beta scales with the level's area to
                # keep every level's balance of content and style the one asked for at full size.
                level_cfg = replace(cfg, beta=cfg.beta * (s / size) ** 2)
                if color_match:  # the content in the culture's colours: target and starting point alike
                    recoloured = [
                        match_colors(level_contents[i].rgb, [p.rgb for p in level_styles[cultures[k]]])
                        for i, k in batch
                    ]
                    content = torch.from_numpy(np.stack(recoloured)).permute(0, 3, 1, 2).contiguous().to(device)
                else:
                    content = _tensor([level_contents[i].rgb for i, _ in batch], device)
                targets = Targets(
                    content_targets(vgg, content, level_cfg),
                    {
                        layer: torch.stack([level_grams[cultures[k]][layer] for _, k in batch])
                        for layer in cfg.style_layers
                    },
                )
                if result is None:
                    init = _initial_images(cfg, content, [level_styles[cultures[k]][0].rgb for _, k in batch], seeds)
                else:
                    init = F.interpolate(result, size=(s, s), mode="bicubic", align_corners=False).clamp_(0.0, 1.0)
                result = stylize(vgg, init, targets, level_cfg, on_evaluation=partial(bar.update, len(batch)))
            images = result.mul(255.0).round_().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
            for pair, rgb in zip(batch, images, strict=True):
                grid[pair] = rgb
        bar.close()
        stimuli = write_grid_images(tmp, contents, cultures, grid, "nst", lambda i, k: seed + i * len(cultures) + k)
        manifest = {
            "schema": SCHEMA,
            "name": name or out.name,
            "created_at": created_at(),
            "cultures": cultures,
            "generator": _generator(cfg, source, sizes, seed, batch_size, contents, styles, color_match),
            "stimuli": stimuli,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        write_contact_sheet(tmp / "contact-sheet.png", contents, cultures, grid)
    log.info("wrote %d stimuli (%d contents x %d cultures) to %s", len(stimuli), len(contents), len(cultures), out)
    return out


def _generator(cfg: NSTConfig, source: FeatureSource, sizes, seed, batch_size, contents, styles, color_match) -> dict:
    options = {"size": sizes[-1], "pyramid": sizes, "color_match": color_match, "batch_size": batch_size}
    return {
        "method": "nst",
        "checkpoint_sha256": source.sha256,
        "features": source.to_dict(),
        "config": cfg.to_dict() | options,
        "contents": {c.id: c.source for c in contents},
        "styles": {k: [p.source for p in pics] for k, pics in styles.items()},
        "version": VERSION,
        "seed": seed,
    }
