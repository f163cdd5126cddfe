"""Train the culture-conditioned GAN (research design §3.5, §4.4).

One process: ``culturelab generate train --data motifs --out runs/cgan``. Several (DDP), one per GPU or
CPU process: ``torchrun --nproc_per_node N -m culturelab.generation train --data motifs --out runs/cgan``.
Under DDP every rank draws the same global batch from the same RNG and trains on its own slice, so
the RNG state in a checkpoint is the same on every rank and ``--resume`` continues exactly.

A run folder holds ``checkpoint.safetensors`` (everything to resume), ``generator.safetensors`` (the
EMA generator with its own batch-norm statistics, what ``generate sample`` needs; rewritten at every
checkpoint), ``metrics.jsonl`` and ``samples/step-NNNNNN.png`` (one row per culture).
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torchvision.utils import save_image
from tqdm import tqdm

from culturelab.generation import checkpoint
from culturelab.generation.cgan import ARCH_RESOLUTIONS, CGANConfig, d_loss, g_loss, one_hot
from culturelab.generation.data import ImageSet, check_enough_images, load_data, to_unit_range
from culturelab.generation.diffaugment import diff_augment, parse_policy
from culturelab.generation.models import make_discriminator, make_generator, train_size
from culturelab.generation.motifs import CULTURES

log = logging.getLogger(__name__)

# Settings that must match between a checkpoint and the run that resumes it.
_RESUME_KEYS = (
    "data",
    "arch",
    "diffaug",
    "resolution",
    "per_culture",
    "data_seed",
    "batch_size",
    "lr_g",
    "lr_d",
    "beta1",
    "beta2",
    "ema_decay",
    "ema_start",
    "mode_seeking",
    "seed",
)


class ConfigError(ValueError):
    """Settings that cannot be trained with (the CLI reports these as bad input)."""


@dataclass
class TrainConfig:
    data: str = "motifs"  # "motifs" or an ImageFolder path
    out: str = "runs/cgan"
    resolution: int = 32
    # dcgan (cgan.py) | resnet (cgan_res.py, residual blocks, up to 256 px) | spatial (spatial_gan.py)
    arch: str = "dcgan"
    crop: int = 64  # spatial: D judges (and G trains on) crops of this size
    local_dim: int = 16  # spatial: channels of per-position noise
    periodic_dim: int = 16  # spatial: sinusoid channels (PSGAN); 0 = SGAN
    # DiffAugment policy (Zhao et al. 2020), e.g. "color,translation,cutout"; "" = none (the 32 px recipe)
    diffaug: str = ""
    per_culture: int = 2000  # images per culture rendered for data="motifs" (500 let D memorise them)
    data_seed: int = 0
    steps: int = 14000  # the shipped checkpoint; diversity fell again later (docs/generation.md)
    batch_size: int = 16  # global: split across DDP ranks
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    z_dim: int = 128
    g_channels: int = 8
    d_channels: int = 8
    culture_dim: int = 64
    culture_vectors: str | None = None  # JSON file {culture: [floats]}; None = learned embeddings
    ema_decay: float = 0.999
    ema_start: int = 1000  # the EMA copy just follows G until this step (early weights are not worth averaging)
    # Weight of the mode-seeking term (Mao et al. 2019), an addition to §4.4's L_G; 0 = the plain §4.4 loss.
    # Without it G drew too little variety per culture (docs/generation.md); 1.0 drew off-culture images.
    mode_seeking: float = 0.3
    seed: int = 0
    log_every: int = 50
    sample_every: int = 500
    checkpoint_every: int = 1000
    max_minutes: float | None = None  # stop early (at a log step) once this much time has passed
    checkpoint_minutes: float | None = None  # also checkpoint whenever this much time passed since the last one
    generator_out: str | None = None  # where to export the generator (default: OUT/generator.safetensors)
    device: str = "auto"  # auto | cuda | cpu
    bf16: bool = False  # bf16 autocast (CUDA only)
    channels_last: bool = False
    compile: bool = False
    resume: bool = False


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but torch sees no CUDA device")
    if name not in ("cuda", "cpu"):
        raise ConfigError(f"unknown device {name!r}; use auto, cuda or cpu")
    return torch.device(name)


def read_culture_vectors(path: str | os.PathLike, cultures: list[str] | None = None) -> list[list[float]]:
    """Culture vectors from a JSON object {culture: [numbers]}, in the order of ``cultures`` (None: just
    check the file, in its own order)."""
    try:
        table = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read culture vectors {path}: {exc}") from exc
    if not isinstance(table, dict):
        raise ConfigError(f"culture vectors {path} must be a JSON object {{culture: [numbers]}}")
    cultures = list(table) if cultures is None else cultures
    missing = [c for c in cultures if c not in table]
    if missing:
        raise ConfigError(f"culture vectors {path} lack culture(s) {', '.join(missing)}")
    vectors = [table[c] for c in cultures]
    if not all(isinstance(v, list) and v and all(isinstance(x, int | float) for x in v) for v in vectors):
        raise ConfigError(f"culture vectors {path}: every value must be a non-empty list of numbers")
    if len({len(v) for v in vectors}) != 1:
        raise ConfigError(f"culture vectors {path}: all vectors must have the same length")
    return [[float(x) for x in v] for v in vectors]


def model_config(cfg: TrainConfig, cultures: list[str]) -> CGANConfig:
    vectors = read_culture_vectors(cfg.culture_vectors, cultures) if cfg.culture_vectors else None
    spatial = {"crop": cfg.crop, "local_dim": cfg.local_dim, "periodic_dim": cfg.periodic_dim}
    try:
        return CGANConfig(
            cultures=cultures,
            resolution=cfg.resolution,
            z_dim=cfg.z_dim,
            g_channels=cfg.g_channels,
            d_channels=cfg.d_channels,
            culture_dim=cfg.culture_dim,
            culture_vectors=vectors,
            arch=cfg.arch,
            **(spatial if cfg.arch == "spatial" else {}),
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """Exponential moving average of G's weights; sampling uses this smoother copy."""
    for p_ema, p in zip(ema.parameters(), model.parameters(), strict=True):
        p_ema.lerp_(p, 1.0 - decay)
    for b_ema, b in zip(ema.buffers(), model.buffers(), strict=True):
        b_ema.copy_(b)


@torch.no_grad()
def standing_stats(g: nn.Module, labels: torch.Tensor, batches: int = 50, batch_size: int = 64, seed: int = 0):
    """A copy of ``g`` in eval mode whose batch-norm statistics are recomputed for its own weights.

    The EMA generator's weights are an average over recent steps, but its running statistics are G's latest;
    that mismatch cost the EMA generator up to 0.17 culture accuracy (docs/generation.md). Cultures are
    drawn like the data's, noise from its own RNG, so the training RNG (and ``--resume``) is untouched.
    """
    g = copy.deepcopy(g).train()
    config, device = g.config, next(g.parameters()).device
    rng = torch.Generator().manual_seed(seed)
    norms = [m for m in g.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a plain average over all the batches below
    for _ in range(batches):
        # at the size G is sampled at (a spatial G's statistics then match its full-size images)
        z = torch.randn(batch_size, g.noise_dim(), generator=rng)
        c = one_hot(labels[torch.randint(len(labels), (batch_size,), generator=rng)], len(config.cultures))
        g(z.to(device), c.to(device))
    for m in norms:
        m.momentum = 0.1
    return g.eval()


@torch.no_grad()
def save_grid(g: nn.Module, config: CGANConfig, path: Path, per_row: int = 8, seed: int = 1234) -> None:
    """One row per culture, the same noise in every row, so the rows differ by culture only."""
    device = next(g.parameters()).device
    k = len(config.cultures)
    z = torch.randn(per_row, g.noise_dim(), generator=torch.Generator().manual_seed(seed)).repeat(k, 1)
    weights = one_hot(torch.arange(k).repeat_interleave(per_row), k)
    was_training = g.training
    g.eval()
    images = g(z.to(device), weights.to(device)).float()
    g.train(was_training)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(images.add(1).div(2), path, nrow=per_row, padding=1)


def gan_update(
    g_step: nn.Module,
    d_step: nn.Module,
    d: nn.Module,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    real: torch.Tensor,
    c: torch.Tensor,
    z: torch.Tensor,
    autocast=contextlib.nullcontext,
    mode_seeking: float = 0.0,
    augment=None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One D update and one G update (as in pytorch/examples' dcgan); returns losses and D's logits.

    ``g_step``/``d_step`` are the modules to call (DDP-wrapped under torchrun), ``d`` is the bare D.
    ``augment`` (DiffAugment, an addition to §4.4's procedure, not to its losses) is applied to everything
    D sees, real and fake, in both updates.
    """
    augment = augment or (lambda x: x)
    with autocast():
        fake = g_step(z, c)

    # (1) Update D: minimise L_D = -E[log D(x,c)] - E[log(1 - D(G(z,c),c))], research design §4.4.
    # Real and fake go through D in one call (one DDP forward per backward).
    opt_d.zero_grad(set_to_none=True)
    with autocast():
        logits = d_step(augment(torch.cat([real, fake.detach().to(real.dtype)])), torch.cat([c, c]))
    real_logits, fake_logits = logits[: len(real)], logits[len(real) :]
    loss_d = d_loss(real_logits, fake_logits)
    loss_d.backward()
    opt_d.step()

    # (2) Update G: minimise L_G = -E[log D(G(z,c),c)], research design §4.4. D's weights are frozen
    # here and D is called unwrapped, so no gradient is computed or all-reduced for it.
    opt_g.zero_grad(set_to_none=True)
    d.requires_grad_(False)
    with autocast():
        loss_g = g_loss(d(augment(fake), c))
        total_g = loss_g + mode_seeking * mode_seeking_penalty(fake, z) if mode_seeking else loss_g
    total_g.backward()
    d.requires_grad_(True)
    opt_g.step()
    return loss_d.detach(), loss_g.detach(), real_logits.detach(), fake_logits.detach()


def mode_seeking_penalty(fake: torch.Tensor, z: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """1 / (|G(z1,c) - G(z2,c)| / |z1 - z2|) over pairs of consecutive samples (Mao et al. 2019, MSGAN).

    Consecutive samples share their culture (``culture_grouped_indices``), so the term punishes a G that
    ignores z for a culture; it is not part of §4.4's L_G and is off unless ``mode_seeking`` > 0.
    """
    image_gap = (fake[0::2] - fake[1::2]).abs().flatten(1).mean(dim=1)
    noise_gap = (z[0::2] - z[1::2]).abs().mean(dim=1)
    return 1.0 / ((image_gap / noise_gap).float().mean() + eps)


def culture_grouped_indices(labels: torch.Tensor, batch_size: int, rng: torch.Generator, group: int = 4):
    """Indices of a batch whose groups of ``group`` consecutive images share one culture.

    Each group's culture is that of one image drawn uniformly (so c ~ p_c as in §4.4), the rest of the group
    is drawn from the same culture. D's minibatch-std groups then measure diversity *within* a culture; with
    mixed groups a G that draws one image per culture still looked diverse to D (the collapse we saw).
    """
    counts = torch.bincount(labels)
    order = torch.argsort(labels, stable=True)
    starts = counts.cumsum(0) - counts
    anchors = torch.randint(len(labels), (batch_size // group,), generator=rng)
    culture = labels[anchors].repeat_interleave(group)
    offsets = (torch.rand(batch_size, generator=rng) * counts[culture]).long()
    return order[starts[culture] + offsets]


def random_crops(images: torch.Tensor, size: int, rng: torch.Generator) -> torch.Tensor:
    """One ``size`` x ``size`` crop of each image, at a place drawn from ``rng``."""
    n, _, h, w = images.shape
    top = torch.randint(h - size + 1, (n,), generator=rng).tolist()
    left = torch.randint(w - size + 1, (n,), generator=rng).tolist()
    return torch.stack([im[:, t : t + size, x : x + size] for im, t, x in zip(images, top, left, strict=True)])


def make_autocast(device: torch.device, bf16: bool):
    """A context factory: bf16 autocast on CUDA when asked for, else a no-op."""
    if bf16 and device.type == "cuda":
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext


def _setup_distributed(device: torch.device) -> tuple[int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, device
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return dist.get_rank(), world, device


def _check_before_data(cfg: TrainConfig, built_in: bool) -> tuple[str, ...]:
    """Every setting that can be checked before the data are rendered or decoded; returns the DiffAugment policy.

    ``built_in``: the data are the motifs, made here (so their cultures and counts are known already)."""
    supported = ARCH_RESOLUTIONS.get(cfg.arch)
    if supported is None:
        raise ConfigError(f"--arch {cfg.arch} is not one of {', '.join(ARCH_RESOLUTIONS)}")
    if cfg.resolution not in supported:
        raise ConfigError(f"--resolution {cfg.resolution} is not supported by arch {cfg.arch} (use one of {supported})")
    model_config(replace(cfg, culture_vectors=None), ["a", "b"])  # the rest of the model settings (a spatial crop)
    try:
        policy = parse_policy(cfg.diffaug)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    if cfg.culture_vectors:
        read_culture_vectors(cfg.culture_vectors, list(CULTURES) if built_in else None)
    if built_in:
        check_enough_images({c: cfg.per_culture for c in CULTURES}, cfg.resolution, "--per-culture")
    return policy


def refuse_earlier_run(ckpt_path: Path, resume: bool) -> None:
    """A run folder is continued with --resume, never silently trained over (its old samples, metrics and
    evaluation would lie beside the new generator)."""
    if ckpt_path.exists() and not resume:
        raise ConfigError(f"{ckpt_path.parent} already holds a run ({ckpt_path.name}): --resume continues it, "
                          "or choose another --out")


def _check_resumable(ckpt_path: Path, cfg: TrainConfig, mcfg: CGANConfig) -> None:
    """Refuse to resume a run made with another model or other training settings (naming them)."""
    header = checkpoint.read(ckpt_path)[0]
    if header.get("model") != mcfg.to_dict():
        raise ConfigError(f"{ckpt_path} was trained with another model config; cannot resume")
    recorded = header.get("train", {})
    if recorded.get("data") not in (None, "motifs"):  # a folder, recorded relative to the checkpoint
        recorded = recorded | {"data": checkpoint.resolve_setting(recorded["data"], ckpt_path.parent)}
    wanted = {key: getattr(cfg, key) for key in _RESUME_KEYS}
    if wanted["data"] != "motifs":
        wanted["data"] = str(Path(cfg.data).resolve())
    changed = [key for key in _RESUME_KEYS if recorded.get(key) != wanted[key]]
    if changed:
        raise ConfigError(f"{ckpt_path} was trained with other settings ({', '.join(changed)}); cannot resume")


def train(cfg: TrainConfig, data: ImageSet | None = None, progress: bool = True) -> Path:
    """Train (or resume) a run in ``cfg.out``; returns the path of the exported generator checkpoint."""
    device = resolve_device(cfg.device)
    rank, world, device = _setup_distributed(device)
    if cfg.batch_size % (4 * world):
        # D's minibatch-std groups are 4 consecutive samples (cgan.minibatch_std)
        raise ConfigError(f"batch size {cfg.batch_size} must be a multiple of 4 x {world} process(es)")
    out = Path(cfg.out)
    ckpt_path = out / "checkpoint.safetensors"
    refuse_earlier_run(ckpt_path, cfg.resume)
    policy = _check_before_data(cfg, built_in=cfg.data == "motifs" and data is None)
    if data is None:
        data = load_data(cfg.data, cfg.resolution, cfg.per_culture, cfg.data_seed, progress and rank == 0)
    if data.resolution != cfg.resolution:
        raise ConfigError(f"data resolution {data.resolution} differs from --resolution {cfg.resolution}")
    counts = torch.bincount(data.labels, minlength=len(data.cultures)).tolist()
    check_enough_images(dict(zip(data.cultures, counts, strict=True)), cfg.resolution, "the data")
    mcfg = model_config(cfg, data.cultures)
    k = len(data.cultures)
    size = train_size(mcfg)  # what G draws and D judges in training (a crop for a spatial G)

    torch.manual_seed(cfg.seed)
    g, d = make_generator(mcfg).to(device), make_discriminator(mcfg).to(device)
    if cfg.channels_last:
        g, d = g.to(memory_format=torch.channels_last), d.to(memory_format=torch.channels_last)
    g_ema = copy.deepcopy(g).eval().requires_grad_(False)
    opt_g = torch.optim.Adam(g.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, cfg.beta2))
    opt_d = torch.optim.Adam(d.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, cfg.beta2))
    rng = torch.Generator().manual_seed(cfg.seed + 1)  # batches and noise, on the CPU: device-independent
    state = checkpoint.TrainingState({"g": g, "d": d, "g_ema": g_ema}, {"opt_g": opt_g, "opt_d": opt_d}, rng)
    start = 0
    if cfg.resume and ckpt_path.exists():
        _check_resumable(ckpt_path, cfg, mcfg)
        start = checkpoint.load_training(ckpt_path, state)["step"]
        log.info("resuming %s at step %d", out, start)

    g_step, d_step = g, d  # the modules the update steps call; DDP wrappers under torchrun
    if world > 1:
        g_step, d_step = DistributedDataParallel(g), DistributedDataParallel(d)
    if cfg.compile:
        g_step, d_step = torch.compile(g_step), torch.compile(d_step)
    autocast = make_autocast(device, cfg.bf16)
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    images = data.images.to(device) if device.type == "cuda" else data.images
    labels = data.labels.to(device) if device.type == "cuda" else data.labels

    is_main = rank == 0
    metrics_path = out / "metrics.jsonl"
    generator_path = Path(cfg.generator_out) if cfg.generator_out else out / "generator.safetensors"
    noise_dim = g.noise_dim(size)
    # A spatial G's statistics come from full-size images, each worth (resolution / crop)^2 crops: fewer do.
    stat_batches = 8 if mcfg.arch == "spatial" else 50
    augment = (lambda x: diff_augment(x, policy, rng)) if policy else None
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        if start == 0:
            metrics_path.write_text("")
    train_dict = asdict(cfg)
    local = cfg.batch_size // world
    bar = tqdm(
        range(start, cfg.steps),
        desc="train cGAN",
        disable=not (progress and is_main),
        initial=start,
        total=cfg.steps,
    )
    t0 = last_save = time.perf_counter()
    last_step = cfg.steps
    for step in bar:
        # Same global batch on every rank (one RNG), each rank takes its own slice.
        idx = culture_grouped_indices(data.labels, cfg.batch_size, rng)[rank * local : (rank + 1) * local]
        z = torch.randn(cfg.batch_size, noise_dim, generator=rng)[rank * local : (rank + 1) * local]
        batch = images[idx.to(images.device)]
        if size != data.resolution:  # spatial G: one random crop per image
            batch = random_crops(batch, size, rng)
        real = to_unit_range(batch).contiguous(memory_format=memory_format)
        c = one_hot(labels[idx.to(labels.device)], k).to(device)  # c ~ p_c: the data's own cultures
        z = z.to(device, non_blocking=True)

        loss_d, loss_g, real_logits, fake_logits = gan_update(
            g_step, d_step, d, opt_g, opt_d, real, c, z, autocast, cfg.mode_seeking, augment
        )
        update_ema(g_ema, g, cfg.ema_decay if step >= cfg.ema_start else 0.0)

        done = step + 1
        if cfg.max_minutes is not None and done % cfg.log_every == 0 and done < cfg.steps:
            stop = torch.tensor(float(time.perf_counter() - t0 > cfg.max_minutes * 60), device=device)
            if world > 1:  # rank 0's clock decides, so every rank stops at the same step
                dist.broadcast(stop, src=0)
            if stop.item():
                log.info("stopping at step %d: --max-minutes %.1f reached", done, cfg.max_minutes)
                last_step = done
        if is_main and (done % cfg.log_every == 0 or done == last_step):
            elapsed = time.perf_counter() - t0
            row = {
                "step": done,
                "loss_d": loss_d.item(),
                "loss_g": loss_g.item(),
                "d_real": torch.sigmoid(real_logits.float()).mean().item(),
                "d_fake": torch.sigmoid(fake_logits.float()).mean().item(),
                "steps_per_s": (done - start) / elapsed,
            }
            with open(metrics_path, "a") as fh:
                fh.write(json.dumps(row) + "\n")
            bar.set_postfix(loss_d=f"{row['loss_d']:.3f}", loss_g=f"{row['loss_g']:.3f}")
        grid_now = is_main and (done % cfg.sample_every == 0 or done == last_step)
        timed = cfg.checkpoint_minutes is not None and time.perf_counter() - last_save > cfg.checkpoint_minutes * 60
        save_now = is_main and (done % cfg.checkpoint_every == 0 or done == last_step or timed)
        if grid_now or save_now:
            # The EMA generator with batch-norm statistics of its own: what the grid shows and what is exported.
            exported = standing_stats(g_ema, data.labels, seed=cfg.seed, batches=stat_batches)
        if grid_now:
            save_grid(exported, mcfg, out / "samples" / f"step-{done:06d}.png")
        if save_now:
            checkpoint.save_training(ckpt_path, state, model_config=mcfg, train_config=train_dict, step=done)
            checkpoint.save_generator(generator_path, mcfg, exported, {"train": train_dict, "step": done})
            last_save = time.perf_counter()
        if done == last_step:
            break
    bar.close()
    if is_main and start >= cfg.steps:  # --resume of a finished run: export its generator again
        exported = standing_stats(g_ema, data.labels, seed=cfg.seed, batches=stat_batches)
        checkpoint.save_generator(generator_path, mcfg, exported, {"train": train_dict, "step": start})
    if is_main:
        log.info("trained %d steps; generator in %s", max(start, last_step), generator_path)
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return generator_path
