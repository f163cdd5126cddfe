"""Speed of neural style transfer (``culturelab generate stylize``) on this machine; prints ONE JSON object.

- ``unbatched``: seconds per image for one (content, style) pair, ``--evaluations`` L-BFGS loss evaluations
  at ``--size`` px (issue targets: 300 evaluations at 512 px, <= 3 s on one H100);
- ``batched``: images/s for ``--batch-size`` pairs optimised at once, same size and evaluations
  (target: >= 2 images/s on one H100);
- ``vs_bare_vgg``: ``--compare-evaluations`` evaluations at ``--compare-size`` px against as many bare VGG19
  forward+backward passes to relu5_1 on the same input, measured in the same run: what the losses, the Gram
  matrices and L-BFGS add to the network itself (target: ratio <= 1.2 on the 2-core CPU, 256 px, 200);
  ``median_ratio`` compares median evaluation and pass times, which a shared CPU disturbs less;
- ``lbfgs_step``: L-BFGS's own cost per step once its history is full, unbatched and batched at ``--size``,
  on a cheap objective (a few element-wise kernels), i.e. what the optimiser adds to each evaluation;
- ``translation``: images/s of the translation GAN's generator (default widths) at 64 px, batches of 64.

Timing does not depend on the weights' values, so the features are seeded random VGG19 weights (no file
needed); everything else is what the command runs (channels_last, deterministic cuDNN, the batched L-BFGS).

    python3 benchmarks/style_transfer.py                                   # full settings
    python3 benchmarks/style_transfer.py --device cpu --size 256 --evaluations 20 --compare-evaluations 20
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import statistics
import time

import torch

from culturelab.generation.data import to_uint8
from culturelab.generation.lbfgs import minimize_lbfgs
from culturelab.generation.motifs import CULTURES, render_motif_array
from culturelab.generation.nst import NSTConfig, Targets, content_targets, style_grams, stylize
from culturelab.generation.stylize import DEFAULT_BETA
from culturelab.generation.train import resolve_device
from culturelab.generation.translation import CONTENT_DOMAIN, TranslationConfig, TranslationGenerator, one_hot
from culturelab.generation.vgg import load_features

from torch_timing import device_name, sync  # benchmarks/, beside this script


def images(culture: str, n: int, size: int, device: torch.device) -> torch.Tensor:
    arrays = [render_motif_array(culture, i, min(size, 256)) for i in range(n)]
    x = torch.stack([torch.from_numpy(a.copy()).permute(2, 0, 1) for a in arrays]).float().div(255)
    return torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear").to(device)


def time_stylize(vgg, cfg: NSTConfig, batch: int, size: int, device: torch.device) -> tuple[float, float]:
    """Seconds to stylise ``batch`` pairs for ``cfg.steps`` evaluations (targets computed before the clock),
    and the median seconds between evaluations (robust to other processes taking the CPU for a while)."""
    content = images("kente", batch, size, device)
    grams = style_grams(vgg, images("girih", 1, size, device), cfg)
    targets = Targets(
        content_targets(vgg, content, cfg), {k: v.expand(batch, -1, -1).contiguous() for k, v in grams.items()}
    )
    warm = dataclasses.replace(cfg, steps=2)
    stylize(vgg, content, targets, warm)  # first-call allocations and kernel selection
    sync(device)
    stamps = [time.perf_counter()]
    stylize(vgg, content, targets, cfg, on_evaluation=lambda: (sync(device), stamps.append(time.perf_counter())))
    sync(device)
    total = time.perf_counter() - stamps[0]
    return total, statistics.median(b - a for a, b in itertools.pairwise(stamps))


def time_bare_vgg(passes: int, size: int, device: torch.device) -> tuple[float, float]:
    """Seconds for ``passes`` forward+backward passes of VGG19 to relu5_1, nothing else, and the median pass."""
    vgg, _ = load_features("random", ["conv5_1"], seed=0)
    vgg = vgg.to(device)
    x = images("kente", 1, size, device).requires_grad_(True)
    for _ in range(2):
        vgg(x)["conv5_1"].sum().backward()
    sync(device)
    stamps = [time.perf_counter()]
    for _ in range(passes):
        x.grad = None
        vgg(x)["conv5_1"].sum().backward()
        sync(device)
        stamps.append(time.perf_counter())
    return stamps[-1] - stamps[0], statistics.median(b - a for a, b in itertools.pairwise(stamps))


def time_lbfgs_step(batch: int, size: int, history: int, device: torch.device) -> float:
    """Median seconds per L-BFGS step with a full history of ``history`` pairs, on an ill-conditioned separable
    objective (it neither converges nor stops within the run, so every step makes a pair)."""
    gen = torch.Generator().manual_seed(0)
    n = 3 * size * size
    scale = torch.pow(10.0, -4 * torch.rand(batch, n, generator=gen)).to(device)
    x = torch.randn(batch, n, generator=gen).to(device).requires_grad_(True)
    stamps: list[float] = []
    timed = 20  # steps timed after the history has filled

    def closure() -> torch.Tensor:
        x.grad = None
        loss = (scale * x * x).sum(1) + 1e-3 * x.pow(4).sum(1)
        loss.sum().backward()
        sync(device)
        stamps.append(time.perf_counter())
        return loss

    minimize_lbfgs(x, closure, history + 1 + timed, history_size=history, tolerance_grad=0.0, tolerance_change=0.0)
    return statistics.median(b - a for a, b in itertools.pairwise(stamps[-(timed + 1) :]))


def time_translation(resolution: int, batch: int, batches: int, device: torch.device) -> float:
    """Images/s of the translation generator (default widths, random weights) on uint8 content -> uint8."""
    cfg = TranslationConfig((*CULTURES, CONTENT_DOMAIN), resolution=resolution)
    g = TranslationGenerator(cfg).to(device).eval()
    x = images("kente", batch, resolution, device).mul(2).sub(1)
    c = one_hot(torch.arange(batch) % len(CULTURES), len(cfg.domains)).to(device)
    with torch.no_grad():
        g(x, c)
        sync(device)
        start = time.perf_counter()
        for _ in range(batches):
            to_uint8(g(x, c)).cpu()
        sync(device)
    return batch * batches / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--evaluations", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"], help="of the VGG19 passes")
    parser.add_argument("--history-size", type=int, default=NSTConfig.history_size, help="L-BFGS pairs kept")
    parser.add_argument(
        "--cudnn-benchmark",
        action="store_true",
        help="let cuDNN time its kernels and keep the fastest, as a run that need not repeat its bytes could",
    )
    parser.add_argument("--compare-size", type=int, default=256)
    parser.add_argument("--compare-evaluations", type=int, default=200)
    parser.add_argument("--translation-resolution", type=int, default=64)
    parser.add_argument("--translation-batches", type=int, default=10)
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=["unbatched", "batched", "vs_bare_vgg", "lbfgs_step", "translation"]
    )
    args = parser.parse_args()
    device = resolve_device(args.device)
    if device.type == "cuda":  # as `generate stylize` runs: deterministic cuDNN kernels (unless asked otherwise)
        torch.backends.cudnn.deterministic = not args.cudnn_benchmark
        torch.backends.cudnn.benchmark = args.cudnn_benchmark

    cfg = NSTConfig(
        steps=args.evaluations,
        beta=DEFAULT_BETA["random"],
        precision=args.precision,
        history_size=args.history_size,
    )
    vgg, _ = load_features("random", cfg.layers, seed=0)
    vgg = vgg.to(device)
    result: dict = {
        "device": device_name(device),
        "torch": torch.__version__,
        "optimizer": "lbfgs",
        "precision": args.precision,
        "history_size": args.history_size,
        "cudnn_benchmark": args.cudnn_benchmark,
    }
    if "unbatched" not in args.skip:
        seconds, _ = time_stylize(vgg, cfg, 1, args.size, device)
        result["unbatched"] = {"size": args.size, "evaluations": args.evaluations, "seconds_per_image": seconds}
    if "batched" not in args.skip:
        seconds, _ = time_stylize(vgg, cfg, args.batch_size, args.size, device)
        result["batched"] = {
            "size": args.size,
            "evaluations": args.evaluations,
            "batch_size": args.batch_size,
            "images_per_s": args.batch_size / seconds,
            "seconds_per_image": seconds / args.batch_size,
        }
    if "vs_bare_vgg" not in args.skip:
        n, size = args.compare_evaluations, args.compare_size
        stylize_s, stylize_median = time_stylize(vgg, NSTConfig(steps=n, beta=cfg.beta), 1, size, device)
        bare_s, bare_median = time_bare_vgg(n, size, device)
        result["vs_bare_vgg"] = {
            "size": size,
            "evaluations": n,
            "stylize_s": stylize_s,
            "bare_vgg_s": bare_s,
            "ratio": stylize_s / bare_s,
            "median_evaluation_s": stylize_median,
            "median_bare_pass_s": bare_median,
            "median_ratio": stylize_median / bare_median,
            "target_ratio": 1.2,
        }
    if "lbfgs_step" not in args.skip:
        result["lbfgs_step"] = {
            "size": args.size,
            "unbatched_ms": 1000 * time_lbfgs_step(1, args.size, args.history_size, device),
            "batched_ms_per_image": 1000
            * time_lbfgs_step(args.batch_size, args.size, args.history_size, device)
            / args.batch_size,
        }
    if "translation" not in args.skip:
        result["translation"] = {
            "resolution": args.translation_resolution,
            "batch_size": 64,
            "images_per_s": time_translation(args.translation_resolution, 64, args.translation_batches, device),
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
