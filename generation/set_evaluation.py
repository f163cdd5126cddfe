"""Which method makes better stimuli: cGAN, style-transfer and translation sets judged on the same footing.

Every set is judged at its own image size, the size participants see, against real images of the cultures
(the built-in motifs, or an ImageFolder) at that size:

- culture accuracy: how often an independent culture classifier (trained on the real images only, never on
  generated ones, and sharing nothing with the VGG features style transfer optimises) names the stimulus's
  culture; it chooses among all the real images' cultures, so chance is 1 / that number;
- KID to the real images of the same cultures, in the classifier's feature space (unbiased, so small sets
  can be compared; FID is left out: its covariances need far more images than a content grid has);
- within-culture diversity, the set's against the real images' (mean pairwise feature distance);
- for sets with content images (``nst``, ``translation``), content preservation against the content image
  each stimulus was made from: SSIM of the grey levels (Wang et al. 2004, Gaussian window σ = 1.5), a
  feature distance (relative distance of conv4_2 responses of a seeded random VGG19 whose seed is not the
  style transfer's), and content identification: how often the stimulus is more similar (SSIM) to its own
  content image than to any other content image of the set (chance: 1 / number of contents).

One classifier per (real data, size) is trained once and kept in ``classifier_dir``; a matching classifier
that ships beside a checkpoint in ``generation/checkpoints/`` is used instead of training one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from skimage.metrics import structural_similarity

from culturelab.generation.checkpoint import PACKAGED
from culturelab.generation.content_grid import GridInputError, load_contents
from culturelab.generation.content_images import BUILTIN_CONTENT_DIR
from culturelab.generation.culture_classifier import (
    CultureClassifier,
    classifier_features,
    classifier_file_name,
    load_or_train_classifier,
    load_real_images,
    real_images_key,
)
from culturelab.generation.data import ImageSet, require_cultures
from culturelab.generation.evaluate import EvaluationError, kid, mean_pairwise_distance
from culturelab.generation.vgg import load_features

log = logging.getLogger(__name__)

CONTENT_LAYER = "conv4_2"
CONTENT_FEATURE_SEED = 20_161_027  # not a seed anyone stylises with by default: the distance is not the loss


def default_classifier_dir() -> Path:
    """Where trained evaluation classifiers are kept: $XDG_CACHE_HOME/culturelab/classifiers (~/.cache/...)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "culturelab" / "classifiers"


class StimulusSet:
    """A Contract 1 set read back: its manifest and its images as (N, 3, S, S) uint8."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        path = self.folder / "manifest.json"
        try:
            raw = path.read_bytes()
            self.manifest = json.loads(raw)
            self.entries: list[dict] = self.manifest["stimuli"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise EvaluationError(f"{self.folder} is not a stimulus set: cannot read {path} ({exc})") from exc
        self.manifest_sha256 = hashlib.sha256(raw).hexdigest()
        if not self.entries:
            raise EvaluationError(f"stimulus set {self.folder} has no stimuli")
        sizes = {(e.get("width"), e.get("height")) for e in self.entries}
        if len(sizes) != 1 or len({*next(iter(sizes))}) != 1:
            raise EvaluationError(
                f"stimulus set {self.folder} mixes image sizes or has non-square images: {sorted(sizes)}"
            )
        self.resolution = int(self.entries[0]["width"])
        arrays = []
        for entry in self.entries:
            file = self.folder / entry["file"]
            try:
                with Image.open(file) as im:
                    arrays.append(np.asarray(im.convert("RGB")))
            except (OSError, UnidentifiedImageError) as exc:
                raise EvaluationError(f"cannot read stimulus {file}: {exc}") from exc
            if arrays[-1].shape[:2] != (self.resolution, self.resolution):
                raise EvaluationError(f"stimulus {file} is not {self.resolution} px square as its manifest says")
        self.images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
        self.cultures = [e["culture"] for e in self.entries]
        self.methods = sorted({str(e.get("method")) for e in self.entries})

    @property
    def method(self) -> str:
        return "+".join(self.methods)

    @property
    def content_ids(self) -> list[str | None]:
        return [e.get("content") for e in self.entries]


def _classifier_file(key: str, resolution: int, cultures: list[str], classifier_dir: Path) -> Path:
    """A shipped classifier for these real images, size and cultures if there is one, else one in the cache."""
    name_end = "." + classifier_file_name(key, resolution)
    for path in sorted(PACKAGED.glob("*" + name_end)):
        try:
            if json.loads(path.with_suffix(".json").read_text()).get("cultures") == cultures:
                return path
        except (OSError, ValueError):
            continue
    return classifier_dir / ("culture" + name_end)


@dataclass
class _Reference:
    """The real images at one size, the classifier trained on them and their features: shared by every set of
    that size."""

    real: ImageSet
    classifier: CultureClassifier
    val_accuracy: float
    path: Path | None
    features: np.ndarray


def _reference(data, resolution, per_culture, seed, device, classifier_dir, progress) -> _Reference:
    real = load_real_images(data, resolution, per_culture, seed, progress)
    path = _classifier_file(real_images_key(data, seed, per_culture), resolution, real.cultures, classifier_dir)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # evaluate anyway; the classifier is just not kept for next time
        log.warning("cannot create %s: %s", path.parent, exc)
    classifier, val_accuracy, path = load_or_train_classifier(path, real, device, seed, progress)
    features, _ = classifier_features(classifier, real.images, device)
    return _Reference(real, classifier, val_accuracy, path, features)


def _ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of the grey levels of two RGB uint8 images (Wang et al. 2004's Gaussian window and constants)."""
    grey = np.array([0.299, 0.587, 0.114])
    return float(
        structural_similarity(
            a @ grey / 255.0,
            b @ grey / 255.0,
            data_range=1.0,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
    )


def _contents_for(stimuli: StimulusSet, sources: list[Path]) -> dict[str, np.ndarray]:
    """The content images the set names, found among ``sources`` by id and checked against the manifest's sha256."""
    recorded = (stimuli.manifest.get("generator") or {}).get("contents") or {}
    try:
        found = {c.id: c for c in load_contents(sources, stimuli.resolution)}
    except GridInputError as exc:
        raise EvaluationError(str(exc)) from exc
    out = {}
    for content_id in sorted({c for c in stimuli.content_ids if c is not None}):
        if content_id not in found:
            raise EvaluationError(
                f"set {stimuli.folder} was made from content image {content_id!r}, which is not among "
                f"{', '.join(map(str, sources))}; pass the content images with --content"
            )
        want = (recorded.get(content_id) or {}).get("sha256")
        if want and want != found[content_id].source["sha256"]:
            raise EvaluationError(
                f"content image {found[content_id].source['file']} differs from the one set {stimuli.folder} "
                "was made from (sha256)"
            )
        out[content_id] = found[content_id].rgb
    return out


@torch.no_grad()
def _content_preservation(stimuli: StimulusSet, contents: dict[str, np.ndarray], device: torch.device) -> dict:
    ids = sorted(contents)
    vgg, _ = load_features("random", [CONTENT_LAYER], seed=CONTENT_FEATURE_SEED)
    vgg = vgg.to(device).eval()

    def responses(arrays: list[np.ndarray]) -> torch.Tensor:
        x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div(255).to(device)
        return vgg(x)[CONTENT_LAYER].flatten(1).cpu()

    content_resp = dict(zip(ids, responses([contents[c] for c in ids]), strict=True))
    rows = []
    for k, content_id in enumerate(stimuli.content_ids):
        if content_id is None:
            continue
        rgb = stimuli.images[k].permute(1, 2, 0).numpy()
        similarity = {c: _ssim(rgb, contents[c]) for c in ids}
        response = responses([rgb])[0]
        target = content_resp[content_id]
        rows.append(
            {
                "culture": stimuli.cultures[k],
                "ssim": similarity[content_id],
                "feature_distance": float((response - target).norm() / target.norm()),
                "identified": max(similarity, key=similarity.get) == content_id,
            }
        )
    return {"contents": ids, "rows": rows}


def _mean(rows: list[dict], key: str) -> float:
    return float(np.mean([r[key] for r in rows]))


def evaluate_sets(
    folders: list[Path],
    *,
    data: str = "motifs",
    content_sources: list[Path] | None = None,
    per_culture: int = 500,
    seed: int = 0,
    device: torch.device | str = "cpu",
    classifier_dir: Path | None = None,
    progress: bool = False,
    report_dir: Path | None = None,
) -> dict[str, Any]:
    """Judge each stimulus set in ``folders``; returns {"sets": [...], "table": markdown}. See the module doc."""
    device = torch.device(device)
    # Every set is read, and its cultures looked for in the data, before any training starts.
    sets = [StimulusSet(f) for f in folders]
    require_cultures(data, {c for s in sets for c in s.cultures})
    content_sources = list(content_sources or [BUILTIN_CONTENT_DIR])
    needed = {s.folder: _contents_for(s, content_sources) for s in sets if any(s.content_ids)}
    classifier_dir = Path(classifier_dir) if classifier_dir is not None else default_classifier_dir()
    report_dir = Path(report_dir) if report_dir is not None else Path.cwd()
    references: dict[int, _Reference] = {}
    results = []
    for stimuli in sets:
        if stimuli.resolution not in references:
            references[stimuli.resolution] = _reference(
                data, stimuli.resolution, per_culture, seed, device, classifier_dir, progress
            )
        ref = references[stimuli.resolution]
        real, real_feats = ref.real, ref.features
        feats, pred = classifier_features(ref.classifier, stimuli.images, device)
        labels = np.array([real.cultures.index(c) for c in stimuli.cultures])
        real_labels = real.labels.numpy()
        preserved = _content_preservation(stimuli, needed[stimuli.folder], device) if stimuli.folder in needed else None
        per: dict[str, dict] = {}
        for culture in dict.fromkeys(stimuli.cultures):
            i = real.cultures.index(culture)
            mine, theirs = feats[labels == i], real_feats[real_labels == i]
            per[culture] = {
                "n": int(len(mine)),
                "accuracy": float((pred[labels == i] == i).mean()),
                "diversity_ratio": (
                    mean_pairwise_distance(mine) / mean_pairwise_distance(theirs) if len(mine) > 1 else None
                ),
            }
            if preserved:
                rows = [r for r in preserved["rows"] if r["culture"] == culture]
                per[culture] |= {
                    "content_ssim": _mean(rows, "ssim"),
                    "content_feature_distance": _mean(rows, "feature_distance"),
                    "content_identification": _mean(rows, "identified"),
                }
        in_set = np.isin(real_labels, np.unique(labels))
        ratios = [p["diversity_ratio"] for p in per.values() if p["diversity_ratio"] is not None]
        summary = {
            "culture_accuracy": float((pred == labels).mean()),
            "chance": 1.0 / len(real.cultures),
            "kid": kid(feats, real_feats[in_set], seed=seed) if len(feats) > 1 else None,
            "diversity_ratio": min(ratios) if ratios else None,
            "content_ssim": _mean(preserved["rows"], "ssim") if preserved else None,
            "content_feature_distance": _mean(preserved["rows"], "feature_distance") if preserved else None,
            "content_identification": _mean(preserved["rows"], "identified") if preserved else None,
            "content_chance": 1.0 / len(preserved["contents"]) if preserved else None,
        }
        generator = stimuli.manifest.get("generator") or {}
        results.append(
            {
                "set": os.path.relpath(stimuli.folder.resolve(), report_dir.resolve()),
                "manifest_sha256": stimuli.manifest_sha256,
                "method": stimuli.method,
                "features": generator.get("features"),
                "resolution": stimuli.resolution,
                "n": len(stimuli.entries),
                "cultures": list(per),
                "data": data,
                "classifier": {"file": ref.path.name if ref.path else None, "val_accuracy": ref.val_accuracy},
                "summary": summary,
                "per_culture": per,
            }
        )
    return {"seed": seed, "per_culture_real": per_culture, "sets": results, "table": markdown_table(results)}


def _cell(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def markdown_table(results: list[dict]) -> str:
    """One row per set: the figures docs/generation.md compares the methods by."""
    lines = [
        "| set | method | px | n | culture acc. (chance) | KID | diversity ratio | content SSIM "
        "| content feature dist. | content identified (chance) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        s = r["summary"]
        identified = (
            "–"
            if s["content_identification"] is None
            else (f"{s['content_identification']:.2f} ({s['content_chance']:.2f})")
        )
        lines.append(
            f"| {r['set']} | {r['method']} | {r['resolution']} | {r['n']} | {s['culture_accuracy']:.2f} "
            f"({s['chance']:.2f}) | {_cell(s['kid'], 3)} | {_cell(s['diversity_ratio'])} | {_cell(s['content_ssim'])} "
            f"| {_cell(s['content_feature_distance'])} | {identified} |"
        )
    return "\n".join(lines)
