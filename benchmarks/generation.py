"""Speed of the culture-conditioned GAN on this machine; prints ONE JSON object.

- training steps/s at 64 px (one D and one G update per step, batch --batch-size, synthetic data);
- sampling images/s at 64 px (noise -> uint8 images on the host), eager and, on CUDA, torch.compile'd;
- seconds to write a 500-image-per-culture stimulus set (PNG + manifest) with a generator checkpoint
  (default: the shipped one), the way ``culturelab generate sample`` does, excluding Python start-up.

On CUDA, bf16 autocast, channels_last and torch.compile are on by default (flags turn them off).

    python3 benchmarks/generation.py                    # CPU here
    python3 benchmarks/generation.py --device cuda      # on a GPU machine
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from culturelab.generation.cgan import CGANConfig, Discriminator, Generator, one_hot
from culturelab.generation.checkpoint import DEFAULT_CHECKPOINT, load_generator
from culturelab.generation.data import to_uint8
from culturelab.generation.motifs import CULTURES
from culturelab.generation.sample import Condition, write_stimulus_set
from culturelab.generation.train import TrainConfig, gan_update, make_autocast, resolve_device


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return f"{line.split(':', 1)[1].strip()} ({torch.get_num_threads()} threads)"
    return "cpu"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_train(cfg: CGANConfig, device: torch.device, args) -> float:
    g, d = Generator(cfg).to(device), Discriminator(cfg).to(device)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    g, d = g.to(memory_format=fmt), d.to(memory_format=fmt)
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    g_step, d_step = (torch.compile(g), torch.compile(d)) if args.compile_train else (g, d)
    autocast = make_autocast(device, args.bf16)
    k = len(cfg.cultures)
    real = torch.rand(args.batch_size, 3, cfg.resolution, cfg.resolution, device=device).mul(2).sub(1)
    real = real.contiguous(memory_format=fmt)
    c = one_hot(torch.arange(args.batch_size, device=device) % k, k)
    z = torch.randn(args.batch_size, cfg.z_dim, device=device)
    mode_seeking = TrainConfig.mode_seeking  # the shipped recipe's G loss (its mode-seeking term costs a little)
    for _ in range(args.warmup):
        gan_update(g_step, d_step, d, opt_g, opt_d, real, c, z, autocast, mode_seeking)
    sync(device)
    t0 = time.perf_counter()
    for _ in range(args.train_steps):
        gan_update(g_step, d_step, d, opt_g, opt_d, real, c, z, autocast, mode_seeking)
    sync(device)
    return args.train_steps / (time.perf_counter() - t0)


@torch.inference_mode()
def bench_sample(cfg: CGANConfig, device: torch.device, args, compiled: bool) -> float:
    g = Generator(cfg).to(device).eval()
    if args.channels_last:
        g = g.to(memory_format=torch.channels_last)
    run = torch.compile(g) if compiled else g
    autocast = make_autocast(device, args.bf16)
    k, batch = len(cfg.cultures), args.sample_batch
    c = one_hot(torch.arange(batch, device=device) % k, k)

    def one_batch() -> torch.Tensor:
        with autocast():
            images = run(torch.randn(batch, cfg.z_dim, device=device), c)
        return to_uint8(images).cpu()

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--train-steps", type=int, default=None, help="default: 200 on CUDA, 5 on CPU")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--sample-batch", type=int, default=None, help="default: 2048 on CUDA, 256 on CPU")
    parser.add_argument("--sample-images", type=int, default=None, help="default: 100000 on CUDA, 1024 on CPU")
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--set-per-culture", type=int, default=500)
    parser.add_argument("--g-channels", type=int, default=None, help="default: the checkpoint's")
    parser.add_argument("--d-channels", type=int, default=None, help="default: the checkpoint's")
    for flag in ("bf16", "channels-last", "compile"):
        parser.add_argument(
            f"--{flag}",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="default: on for CUDA, off for CPU",
        )
    parser.add_argument(
        "--compile-train",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="also torch.compile G and D for the training measurement",
    )
    args = parser.parse_args()

    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    for name in ("bf16", "channels_last", "compile"):
        if getattr(args, name) is None:
            setattr(args, name, cuda)
    args.train_steps = args.train_steps or (200 if cuda else 5)
    args.sample_batch = args.sample_batch or (2048 if cuda else 256)
    args.sample_images = args.sample_images or (100_000 if cuda else 1024)
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.benchmark = True

    shipped = load_generator(args.checkpoint)[1]["model"] if args.checkpoint.exists() else {}
    cfg = CGANConfig(
        cultures=list(CULTURES),
        resolution=args.resolution,
        g_channels=args.g_channels or shipped.get("g_channels", 24),
        d_channels=args.d_channels or shipped.get("d_channels", 32),
    )
    result = {
        "device": device_name(device),
        "torch": torch.__version__,
        "resolution": cfg.resolution,
        "g_channels": cfg.g_channels,
        "d_channels": cfg.d_channels,
        "batch_size": args.batch_size,
        "bf16": args.bf16,
        "channels_last": args.channels_last,
        "compile_sampling": args.compile,
        "compile_train": args.compile_train,
        "train_steps_per_s": round(bench_train(cfg, device, args), 2),
        "sample_images_per_s_eager": round(bench_sample(cfg, device, args, compiled=False), 1),
    }
    result["sample_images_per_s"] = result["sample_images_per_s_eager"]
    if args.compile:
        result["sample_images_per_s_compiled"] = round(bench_sample(cfg, device, args, compiled=True), 1)
        result["sample_images_per_s"] = max(result["sample_images_per_s"], result["sample_images_per_s_compiled"])
    if args.checkpoint.exists():
        result["write_set_checkpoint"] = args.checkpoint.name
        result["write_set_per_culture"] = args.set_per_culture
        result["write_set_seconds"] = round(bench_write_set(args.checkpoint, device, args.set_per_culture), 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
