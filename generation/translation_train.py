"""Training the culture-conditioned translation GAN (translation.py): data, checkpoints, exact resume.

The data are a culture-labelled image set (the built-in motifs by default, or an ImageFolder) plus content
images (the built-in scenes by default). There are few content images, so each step draws random crops of
them (a random side between R and 2R of the image held at 2R px, a random flip, resized to R).
Each batch is half culture images, half content crops; every random draw comes from one seeded CPU
generator, whose state the training checkpoint keeps, so ``--resume`` continues exactly as if never stopped.

Checkpoints are safetensors files with a JSON header (format ``culturelab.translation/1``), as the cGAN's:
``checkpoint.safetensors`` (G, D, both Adam states, the RNG, the step) and ``generator.safetensors`` (G).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from torchvision.utils import save_image
from tqdm import tqdm

from culturelab.generation.checkpoint import CheckpointError, TrainingState, module_state, module_tensors, write
from culturelab.generation.content_grid import load_contents
from culturelab.generation.content_images import BUILTIN_CONTENT_DIR
from culturelab.generation.data import load_data, to_unit_range
from culturelab.generation.train import ConfigError, refuse_earlier_run, resolve_device
from culturelab.generation.translation import (
    CONTENT_DOMAIN,
    CONTENT_LAYER,
    RESOLUTIONS,
    LossWeights,
    TranslationConfig,
    TranslationDiscriminator,
    TranslationGenerator,
    one_hot,
    random_targets,
    translation_update,
)
from culturelab.generation.vgg import FeaturesError, load_features

log = logging.getLogger(__name__)

FORMAT = "culturelab.translation/1"
# Settings that must match to --resume a run, checked before the data are made; the model's domains, which
# come from the data, are compared after.
_RESUME_KEYS = (
    *("data", "content", "per_culture", "batch_size", "lr_g", "lr_d", "beta1", "beta2", "seed", "features"),
    *("resolution", "g_channels", "d_channels", "res_blocks", "upsample"),
)


@dataclass
class TranslationTrainConfig:
    data: str = "motifs"
    content: tuple[str, ...] = ()  # files or folders; empty: the built-in scenes
    out: str = "runs/translation"
    resolution: int = 64
    per_culture: int = 500
    steps: int = 20000
    batch_size: int = 16
    lr_g: float = 1e-4
    lr_d: float = 1e-4
    beta1: float = 0.5
    beta2: float = 0.999
    lambda_cls: float = 1.0
    lambda_rec: float = 10.0
    lambda_id: float = 0.0
    lambda_content: float = 0.0
    features: str = "random"  # VGG19 features of the content term: random (seeded by --seed) or imagenet
    vgg_weights: str | None = None
    g_channels: int = 32
    d_channels: int = 32
    res_blocks: int = 4
    upsample: str = "transpose"
    seed: int = 0
    log_every: int = 50
    checkpoint_every: int = 500
    max_minutes: float | None = None
    device: str = "auto"
    resume: bool = False

    def to_dict(self) -> dict:
        return asdict(self) | {"content": list(self.content)}


def content_crops(images: torch.Tensor, n: int, resolution: int, rng: torch.Generator) -> torch.Tensor:
    """``n`` random crops of uint8 images (M, 3, 2R, 2R): side in [R, 2R], random place and flip, resized to R."""
    side = images.shape[-1]
    out = []
    for _ in range(n):
        i = int(torch.randint(len(images), (1,), generator=rng))
        s = int(torch.randint(resolution, side + 1, (1,), generator=rng))
        top, left = (int(v) for v in torch.randint(side - s + 1, (2,), generator=rng))
        crop = images[i : i + 1, :, top : top + s, left : left + s].float()
        if torch.rand(1, generator=rng).item() < 0.5:
            crop = crop.flip(-1)
        out.append(F.interpolate(crop, size=(resolution, resolution), mode="bilinear", antialias=True))
    return torch.cat(out).div_(127.5).sub_(1.0)


def save_translation(
    path: Path, cfg: TranslationConfig, g, extra: dict[str, Any], training: TrainingState | None = None
) -> None:
    """G alone (kind ``generator``), or with ``training`` everything --resume needs (kind ``training``)."""
    if training is None:
        tensors, header = module_tensors("g", g), {"kind": "generator"}
    else:
        tensors, groups = training.tensors()
        header = {"kind": "training", "param_groups": groups}
    write(path, tensors, {"format": FORMAT, **header, "model": cfg.to_dict(), **extra})


def read_translation(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Header and tensors of a translation checkpoint; CheckpointError names the file and what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as fh:
            metadata = fh.metadata() or {}
        tensors = load_file(str(path))
        header = json.loads(metadata["culturelab"])
    except (SafetensorError, OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"checkpoint {path} is not a CultureLab safetensors checkpoint ({exc})") from exc
    if header.get("format") != FORMAT:
        raise CheckpointError(
            f"checkpoint {path} is format {header.get('format')!r}, not a translation model ({FORMAT!r})"
        )
    return header, tensors


def load_translator(path: Path, device: torch.device | str = "cpu") -> tuple[TranslationGenerator, dict[str, Any]]:
    """The generator of a translation checkpoint (either kind), in eval mode, and the header."""
    header, tensors = read_translation(path)
    try:
        g = TranslationGenerator(TranslationConfig(**header["model"]))
        g.load_state_dict(module_state("g", tensors))
    except (TypeError, ValueError, KeyError, RuntimeError) as exc:
        raise CheckpointError(f"checkpoint {path} does not match this translation model: {exc}") from exc
    return g.to(device).eval(), header


@torch.no_grad()
def save_sample_grid(g: TranslationGenerator, content: torch.Tensor, path: Path) -> None:
    """One row per content image: the image, then it restyled to each culture."""
    was_training = g.training
    g.eval()
    k = len(g.config.domains)
    rows = [content]
    for i in range(k - 1):
        rows.append(g(content, one_hot(torch.full((len(content),), i), k).to(content.device)))
    grid = torch.stack(rows, 1).flatten(0, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(grid.add(1).div(2), path, nrow=k)
    g.train(was_training)


def train_translation(cfg: TranslationTrainConfig, progress: bool = True) -> Path:
    """Train (or resume) a run in ``cfg.out``; returns the path of the exported generator checkpoint."""
    device = resolve_device(cfg.device)
    if cfg.resolution not in RESOLUTIONS:
        raise ConfigError(f"--resolution {cfg.resolution} is not one of {', '.join(map(str, RESOLUTIONS))}")
    if cfg.batch_size < 2 or cfg.batch_size % 2:
        raise ConfigError(f"--batch-size {cfg.batch_size} must be even (half culture images, half content)")
    out = Path(cfg.out)
    ckpt_path = out / "checkpoint.safetensors"
    refuse_earlier_run(ckpt_path, cfg.resume)
    resume_from = None
    if cfg.resume and ckpt_path.exists():  # checked before the data are rendered or decoded
        resume_from = read_translation(ckpt_path)
        header = resume_from[0]
        if header.get("kind") != "training":
            raise ConfigError(f"{ckpt_path} holds only a generator; --resume needs a training checkpoint")
        before = TranslationTrainConfig().to_dict() | header["train"]  # a key added since the run: its default
        now = cfg.to_dict()
        changed = [key for key in _RESUME_KEYS if before[key] != now[key]]
        if changed:
            raise ConfigError(f"{ckpt_path} was trained with other settings ({', '.join(changed)}); cannot resume")
    features, feature_source = None, None
    if cfg.lambda_content:  # before the data: missing ImageNet weights are said at once
        try:
            weights_path = Path(cfg.vgg_weights) if cfg.vgg_weights else None
            features, feature_source = load_features(cfg.features, [CONTENT_LAYER], weights=weights_path, seed=cfg.seed)
        except FeaturesError as exc:
            raise ConfigError(str(exc)) from exc
        features = features.to(device)
    contents = load_contents([Path(c) for c in cfg.content] or [BUILTIN_CONTENT_DIR], 2 * cfg.resolution)
    data = load_data(cfg.data, cfg.resolution, cfg.per_culture, cfg.seed, progress)
    if CONTENT_DOMAIN in data.cultures:
        raise ConfigError(f"a culture may not be called {CONTENT_DOMAIN!r}: that is the content images' domain")
    mcfg = TranslationConfig(
        (*data.cultures, CONTENT_DOMAIN), cfg.resolution, cfg.g_channels, cfg.d_channels, cfg.res_blocks, cfg.upsample
    )
    k = len(mcfg.domains)
    content_images = torch.stack([torch.from_numpy(c.rgb.copy()).permute(2, 0, 1) for c in contents])

    torch.manual_seed(cfg.seed)  # the weights' initialisation (and D's spectral-norm vectors)
    g, d = TranslationGenerator(mcfg).to(device), TranslationDiscriminator(mcfg).to(device)
    opt_g = torch.optim.Adam(g.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, cfg.beta2))
    opt_d = torch.optim.Adam(d.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, cfg.beta2))
    rng = torch.Generator().manual_seed(cfg.seed + 1)  # batches and targets, on the CPU: device-independent
    state = TrainingState({"g": g, "d": d}, {"opt_g": opt_g, "opt_d": opt_d}, rng)
    start = 0
    if resume_from is not None:
        header, tensors = resume_from
        if tuple(header["model"]["domains"]) != mcfg.domains:
            trained = ", ".join(header["model"]["domains"])
            raise ConfigError(f"{ckpt_path} was trained on other domains ({trained}); cannot resume")
        state.restore(tensors, header["param_groups"])
        start = header["step"]
        log.info("resuming %s at step %d", out, start)

    weights = LossWeights(cfg.lambda_cls, cfg.lambda_rec, cfg.lambda_id, cfg.lambda_content)
    provenance = {"train": cfg.to_dict()}
    if feature_source is not None:
        provenance["content_features"] = feature_source.to_dict()
    sample_content = to_unit_range(
        F.interpolate(content_images[:4].float(), size=cfg.resolution, mode="area").round().to(torch.uint8)
    ).to(device)
    out.mkdir(parents=True, exist_ok=True)
    metrics_path, generator_path = out / "metrics.jsonl", out / "generator.safetensors"
    if start == 0:
        metrics_path.write_text("")
    half = cfg.batch_size // 2
    bar = tqdm(range(start, cfg.steps), desc="train translation", disable=not progress, initial=start, total=cfg.steps)
    t0 = time.perf_counter()
    done = start
    for step in bar:
        idx = torch.randint(len(data), (half,), generator=rng)
        x = torch.cat([to_unit_range(data.images[idx]), content_crops(content_images, half, cfg.resolution, rng)])
        source = torch.cat([data.labels[idx], torch.full((half,), k - 1)])
        target = random_targets(source, k, rng)
        stats = translation_update(g, d, opt_g, opt_d, x.to(device), source, target, weights, features)
        done = step + 1
        stop = cfg.max_minutes is not None and time.perf_counter() - t0 > cfg.max_minutes * 60
        if done % cfg.log_every == 0 or done == cfg.steps or stop:
            with metrics_path.open("a") as fh:
                fh.write(json.dumps({"step": done, **{key: round(v, 5) for key, v in stats.items()}}) + "\n")
            bar.set_postfix(d=f"{stats['loss_d_adv']:.3f}", rec=f"{stats['loss_rec']:.3f}")
        if done % cfg.checkpoint_every == 0 or done == cfg.steps or stop:
            extra = provenance | {"step": done}
            save_translation(ckpt_path, mcfg, g, extra, state)
            save_translation(generator_path, mcfg, g, extra)
            save_sample_grid(g, sample_content, out / "samples" / f"step-{done:06d}.png")
        if stop:
            log.info("stopping at step %d: --max-minutes %.1f reached", done, cfg.max_minutes)
            break
    if start >= cfg.steps:  # resuming a finished run exports its generator again
        save_translation(generator_path, mcfg, g, provenance | {"step": start})
    log.info("translation generator at step %d: %s", done, generator_path)
    return generator_path
