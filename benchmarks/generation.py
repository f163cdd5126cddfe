"""Speed of the culture-conditioned GAN on this machine; prints ONE JSON object.

For a model family (``--checkpoint``'s: its arch and widths; without one, the GPU recipe's residual G/D
with base width 16):
- sampling images/s at each of ``--resolutions`` (default 128 and 256: noise -> uint8 images on the host),
  eager and, with ``--compile``, torch.compile'd; at the checkpoint's own resolution its trained weights,
  elsewhere the same architecture with fresh weights (a spatial G: the same weights at every size);
- training steps/s (one D and one G update, batch --batch-size, synthetic data, the recipe's mode-seeking
  term and DiffAugment) at the checkpoint's training size;
- seconds to write a 500-image-per-culture stimulus set (PNG + manifest) with the checkpoint, the way
  ``culturelab generate sample`` does (Python start-up excluded).

On CUDA, bf16 autocast, channels_last and torch.compile are on by default (flags turn them off).

    python3 benchmarks/generation.py --checkpoint generation/checkpoints/motifs-spatial128.safetensors   # CPU
    python3 benchmarks/generation.py --device cuda --checkpoint RUN/generator.safetensors               # GPU
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from culturelab.generation.cgan import ARCH_RESOLUTIONS, CGANConfig, one_hot
from culturelab.generation.checkpoint import load_generator
from culturelab.generation.data import to_uint8
from culturelab.generation.diffaugment import diff_augment, parse_policy
from culturelab.generation.models import make_discriminator, make_generator, train_size
from culturelab.generation.motifs import CULTURES
from culturelab.generation.sample import Condition, write_stimulus_set
from culturelab.generation.train import TrainConfig, gan_update, make_autocast, resolve_device

from torch_timing import device_name, sync  # benchmarks/, beside this script

RECIPE = CGANConfig(cultures=list(CULTURES), resolution=128, arch="resnet", g_channels=16, d_channels=16)


def bench_train(cfg: CGANConfig, device: torch.device, args, diffaug: str) -> float:
    g, d = make_generator(cfg).to(device), make_discriminator(cfg).to(device)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    g, d = g.to(memory_format=fmt), d.to(memory_format=fmt)
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    g_step, d_step = (torch.compile(g), torch.compile(d)) if args.compile_train else (g, d)
    autocast = make_autocast(device, args.bf16)
    k, size = len(cfg.cultures), train_size(cfg)
    real = torch.rand(args.batch_size, 3, size, size, device=device).mul(2).sub(1).contiguous(memory_format=fmt)
    c = one_hot(torch.arange(args.batch_size, device=device) % k, k)
    z = torch.randn(args.batch_size, g.noise_dim(size), device=device)
    policy, gen = parse_policy(diffaug), torch.Generator().manual_seed(0)
    augment = (lambda x: diff_augment(x, policy, gen)) if policy else None
    mode_seeking = TrainConfig.mode_seeking  # the recipe's G loss (its mode-seeking term costs a little)

    def step() -> None:
        gan_update(g_step, d_step, d, opt_g, opt_d, real, c, z, autocast, mode_seeking, augment)

    for _ in range(args.warmup):
        step()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(args.train_steps):
        step()
    sync(device)
    return args.train_steps / (time.perf_counter() - t0)


@torch.inference_mode()
def bench_sample(g: torch.nn.Module, size: int, device: torch.device, args, compiled: bool) -> float:
    g = g.to(device).eval()
    if args.channels_last:
        g = g.to(memory_format=torch.channels_last)
    run = torch.compile(g) if compiled else g
    autocast = make_autocast(device, args.bf16)
    k, batch = len(g.config.cultures), args.sample_batch
    c = one_hot(torch.arange(batch, device=device) % k, k)
    noise_dim = g.noise_dim(size)
    # On CUDA the images go to pinned host buffers without the host waiting for each copy, so it queues the
    # next batch at once instead of leaving the GPU idle between batches (untimed until the next lent GPU;
    # 19,755 images/s at 128 px was measured with a blocking .cpu()). Copies on one stream run in order, so
    # a buffer is never written twice at once; sync() ends the timing.
    buffers = None
    if device.type == "cuda":
        pinned = [torch.empty(batch, 3, size, size, dtype=torch.uint8, pin_memory=True) for _ in range(2)]
        buffers = itertools.cycle(pinned)

    def one_batch() -> torch.Tensor:
        with autocast():
            images = to_uint8(run(torch.randn(batch, noise_dim, device=device), c))
        return images.cpu() if buffers is None else next(buffers).copy_(images, non_blocking=True)

    for _ in range(args.warmup):
        one_batch()
    sync(device)
    n_batches = max(1, args.sample_images // batch)
    t0 = time.perf_counter()
    for _ in range(n_batches):
        one_batch()
    sync(device)
    return n_batches * batch / (time.perf_counter() - t0)


def bench_write_set(checkpoint: Path, device: torch.device, per_culture: int) -> float:
    t0 = time.perf_counter()
    g, _ = load_generator(checkpoint, device)
    with tempfile.TemporaryDirectory() as tmp:
        conditions = [Condition({c: 1.0}) for c in g.config.cultures]
        write_stimulus_set(g, Path(tmp) / "set", conditions, per_culture, device=device)
        return time.perf_counter() - t0


def generator_at(cfg: CGANConfig, trained: torch.nn.Module | None, size: int) -> torch.nn.Module | None:
    """The trained G at its own size (a spatial G at every size), else fresh weights of the same family
    (None where the family does not reach ``size``: the dcgan stops at 128 px)."""
    if trained is not None and (cfg.arch == "spatial" or size == cfg.resolution):
        return trained
    if size not in ARCH_RESOLUTIONS[cfg.arch]:
        return None
    return make_generator(replace(cfg, resolution=size))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: the GPU recipe's model, untrained")
    parser.add_argument("--resolutions", default="128,256", help="sampling sizes, comma-separated")
    parser.add_argument("--batch-size", type=int, default=None, help="training batch; default: 64 on CUDA, 16 on CPU")
    parser.add_argument("--train-steps", type=int, default=None, help="default: 100 on CUDA, 5 on CPU")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--sample-batch", type=int, default=None, help="default: 1024 on CUDA, 256 on CPU")
    parser.add_argument("--sample-images", type=int, default=None, help="default: 40960 on CUDA, 512 on CPU")
    parser.add_argument("--set-per-culture", type=int, default=500)
    parser.add_argument("--quick", action="store_true", help="a quarter of the work (benchmarks/gpu_train.sh)")
    for flag in ("bf16", "channels-last", "compile"):
        parser.add_argument(
            f"--{flag}", action=argparse.BooleanOptionalAction, default=None, help="default: on for CUDA, off for CPU"
        )
    parser.add_argument("--compile-train", action=argparse.BooleanOptionalAction, default=False)
    args = parser.parse_args()

    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    for name in ("bf16", "channels_last", "compile"):
        if getattr(args, name) is None:
            setattr(args, name, cuda)
    args.batch_size = args.batch_size or (64 if cuda else 16)
    args.train_steps = args.train_steps or (100 if cuda else 5)
    args.sample_batch = args.sample_batch or (1024 if cuda else 256)
    args.sample_images = args.sample_images or (40960 if cuda else 512)
    if args.quick:
        args.train_steps, args.sample_images = max(2, args.train_steps // 4), max(1, args.sample_images // 4)
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True

    trained, diffaug = None, TrainConfig.diffaug
    cfg = RECIPE
    if args.checkpoint is not None:
        trained, header = load_generator(args.checkpoint, device)
        cfg, diffaug = trained.config, header.get("train", {}).get("diffaug", "")
    result = {
        "device": device_name(device),
        "torch": torch.__version__,
        "checkpoint": args.checkpoint.name if args.checkpoint else None,
        "arch": cfg.arch,
        "g_channels": cfg.g_channels,
        "d_channels": cfg.d_channels,
        "bf16": args.bf16,
        "channels_last": args.channels_last,
        "compile_sampling": args.compile,
        "train_size": train_size(cfg),
        "train_batch_size": args.batch_size,
        "diffaug": diffaug,
        "train_steps_per_s": round(bench_train(cfg, device, args, diffaug), 2),
        "sample_images_per_s": {},
    }
    for size in (int(s) for s in args.resolutions.split(",")):
        g = generator_at(cfg, trained, size)
        if g is None:
            result["sample_images_per_s"][str(size)] = f"arch {cfg.arch} does not draw {size} px"
            continue
        rates = {"eager": round(bench_sample(g, size, device, args, compiled=False), 1)}
        if args.compile:
            rates["compiled"] = round(bench_sample(g, size, device, args, compiled=True), 1)
        rates["trained_weights"] = g is trained
        result["sample_images_per_s"][str(size)] = rates
    if args.checkpoint is not None:
        result["write_set_per_culture"] = args.set_per_culture
        result["write_set_resolution"] = cfg.resolution
        result["write_set_seconds"] = round(bench_write_set(args.checkpoint, device, args.set_per_culture), 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
