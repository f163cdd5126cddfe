"""How well a checkpoint draws each culture, measured against real images of those cultures.

The judge is a small culture classifier trained on the real images (culture_classifier.py; no ImageNet
network needed). Then, on ``per_culture`` generated images per culture:

- culture accuracy: how often the classifier names the culture G was asked for;
- KID and FID between generated and real images in the classifier's 128-d feature space (Binkowski et al.
  2018, Heusel et al. 2017; the same estimators as Inception KID/FID, in a domain-specific space);
- within-culture diversity: the mean pairwise feature distance inside each culture, generated vs real
  (ratio < 1: less varied than the real images; near 0: mode collapse), and the same in pixel space.

With ``inception_weights`` (a local Inception-v3 weights file) standard FID/KID are added through the
optional torch-fidelity package.
"""
from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from culturelab.generation.cgan import one_hot
from culturelab.generation.checkpoint import load_generator, sha256_file
from culturelab.generation.culture_classifier import (
    classifier_features,
    classifier_file_name,
    load_or_train_classifier,
    load_real_images,
    real_images_key,
)
from culturelab.generation.data import ImageSet
from culturelab.generation.sample import generate


class EvaluationError(ValueError):
    """Evaluation cannot run as asked (e.g. a missing weights file or optional package)."""


def kid(x: np.ndarray, y: np.ndarray, subsets: int = 50, subset_size: int = 1000, seed: int = 0) -> float:
    """Kernel distance: unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3, averaged over random subsets."""
    rng = np.random.default_rng(seed)
    m = min(subset_size, len(x), len(y))
    d = x.shape[1]
    values = []
    for _ in range(subsets):
        a = x[rng.choice(len(x), m, replace=False)]
        b = y[rng.choice(len(y), m, replace=False)]
        kxx, kyy, kxy = ((a @ a.T) / d + 1) ** 3, ((b @ b.T) / d + 1) ** 3, ((a @ b.T) / d + 1) ** 3
        values.append((kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean())
    return float(np.mean(values))


def fid(x: np.ndarray, y: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to the two feature sets."""
    mu_x, mu_y = x.mean(0), y.mean(0)
    cov_x, cov_y = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    # Tr sqrtm(Cx Cy) is the sum of the square roots of the eigenvalues of Cx Cy, which are real and >= 0 (a
    # product of two PSD matrices; clipped against rounding): the same value as Heusel et al.'s sqrtm, without
    # scipy, which a bare GPU machine may lack (benchmarks/gpu_train.sh evaluates there).
    eig = np.linalg.eigvals(cov_x @ cov_y)
    tr_covmean = np.sqrt(np.clip(eig.real, 0.0, None)).sum()
    return float(((mu_x - mu_y) ** 2).sum() + np.trace(cov_x) + np.trace(cov_y) - 2 * tr_covmean)


def mean_pairwise_distance(x: np.ndarray) -> float:
    """Mean Euclidean distance over all pairs of rows."""
    sq = (x * x).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0.0)
    n = len(x)
    return float(np.sqrt(d2).sum() / (n * (n - 1)))


def _classifier_path(checkpoint: Path, key: str, resolution: int) -> Path:
    return checkpoint.with_name(f"{checkpoint.stem}.{classifier_file_name(key, resolution)}")


def _check_fidelity(weights: Path) -> None:
    if not weights.is_file():
        raise EvaluationError(f"Inception weights file {weights} does not exist")
    try:
        import torch_fidelity  # noqa: F401  (optional extra, imported only when asked for)
    except ImportError as exc:
        raise EvaluationError("standard FID/KID need torch-fidelity: pip install 'culturelab[fidelity]'") from exc


def _torch_fidelity(gen_images: torch.Tensor, real_images: torch.Tensor, weights: Path, device: torch.device):
    import torch_fidelity

    with tempfile.TemporaryDirectory() as tmp:
        dirs = []
        for name, images in (("generated", gen_images), ("real", real_images)):
            folder = Path(tmp) / name
            folder.mkdir()
            for i, array in enumerate(images.permute(0, 2, 3, 1).numpy()):
                Image.fromarray(array, "RGB").save(folder / f"{i:06d}.png")
            dirs.append(str(folder))
        metrics = torch_fidelity.calculate_metrics(
            input1=dirs[0],
            input2=dirs[1],
            cuda=device.type == "cuda",
            fid=True,
            kid=True,
            verbose=False,
            feature_extractor_weights_path=str(weights),
            kid_subset_size=min(1000, len(gen_images), len(real_images)),
        )
    return {"fid": metrics[torch_fidelity.KEY_METRIC_FID], "kid": metrics[torch_fidelity.KEY_METRIC_KID_MEAN]}


def evaluate(
    checkpoint: Path,
    data: str,
    *,
    per_culture: int = 500,
    seed: int = 0,
    device: torch.device | str = "cpu",
    inception_weights: Path | None = None,
    progress: bool = False,
    real: ImageSet | None = None,
    classifier_path: Path | None = None,
    weights: str = "g_ema",
    report_dir: Path | None = None,
) -> dict[str, Any]:
    """Evaluate a generator checkpoint against ``data`` ("motifs" or an ImageFolder); returns the results.

    Everything is judged at the checkpoint's own resolution (the size participants see): real images,
    classifier, features. ``real`` (the images ``data`` names, already loaded) and ``classifier_path`` let a
    caller that compares several checkpoints load the real images and train the classifier once. Paths in
    the results are relative to ``report_dir`` (where the results will be written; default: the checkpoint's
    folder), so a results file shipped beside its checkpoint names no folder of the machine that made it.
    """
    checkpoint, device = Path(checkpoint), torch.device(device)
    if inception_weights is not None:
        _check_fidelity(Path(inception_weights))
    g, header = load_generator(checkpoint, device, weights)
    cultures, res = list(g.config.cultures), g.config.resolution
    key = real_images_key(data, seed, per_culture)
    if real is None:
        real = load_real_images(data, res, per_culture, seed, progress, cultures)
    if real.cultures != cultures:
        raise EvaluationError(f"checkpoint cultures {cultures} differ from the real images' {real.cultures}")
    classifier, val_accuracy, classifier_path = load_or_train_classifier(
        classifier_path or _classifier_path(checkpoint, key, res), real, device, seed, progress
    )

    k = len(cultures)
    labels = torch.arange(k).repeat_interleave(per_culture)
    seeds = [seed + i for i in range(k * per_culture)]
    fake = generate(g, one_hot(labels, k), seeds, device).permute(0, 3, 1, 2).contiguous()
    fake_feats, fake_pred = classifier_features(classifier, fake, device)
    real_feats, _ = classifier_features(classifier, real.images, device)
    real_labels = real.labels.numpy()
    labels_np = labels.numpy()

    per: dict[str, dict[str, float]] = {}
    for i, culture in enumerate(cultures):
        f, r = fake_feats[labels_np == i], real_feats[real_labels == i]
        fp = fake[labels == i].double().div(255).flatten(1).numpy() / math.sqrt(fake[0].numel())
        rp = real.images[real.labels == i].double().div(255).flatten(1).numpy() / math.sqrt(fake[0].numel())
        div_f, div_r = mean_pairwise_distance(f), mean_pairwise_distance(r)
        per[culture] = {
            "accuracy": float((fake_pred[labels_np == i] == i).mean()),
            "kid": kid(f, r, seed=seed),
            "diversity_generated": div_f,
            "diversity_real": div_r,
            "diversity_ratio": div_f / div_r,
            "pixel_diversity_generated": mean_pairwise_distance(fp),
            "pixel_diversity_real": mean_pairwise_distance(rp),
        }
    summary = {
        "culture_accuracy": float((fake_pred == labels_np).mean()),
        "diversity_ratio": min(p["diversity_ratio"] for p in per.values()),
        "kid": kid(fake_feats, real_feats, seed=seed),
        "fid": fid(fake_feats, real_feats),
    }
    fidelity = None
    if inception_weights is not None:
        fidelity = _torch_fidelity(fake.cpu(), real.images, Path(inception_weights), device)
    report_dir = Path(report_dir) if report_dir is not None else checkpoint.parent

    def relative(path: Path | str) -> str:
        return os.path.relpath(Path(path).resolve(), report_dir.resolve())

    return {
        "checkpoint": relative(checkpoint),
        "checkpoint_sha256": sha256_file(checkpoint),
        "checkpoint_step": header.get("step"),
        "data": data if data == "motifs" else relative(data),
        "resolution": res,
        "per_culture": per_culture,
        "n_real": len(real),
        "seed": seed,
        "classifier": {
            "path": relative(classifier_path) if classifier_path else None,
            "val_accuracy": val_accuracy,
            "feature_dim": int(fake_feats.shape[1]),
        },
        "summary": summary,
        "per_culture_results": per,
        "inception": fidelity,
    }
