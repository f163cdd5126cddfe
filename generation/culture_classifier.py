"""The independent judge of a set's cultures: a small culture classifier trained on real images.

No ImageNet network is needed, so evaluation runs offline at any resolution: the classifier is trained at the
resolution it will judge (the size participants see) on real images that the generators never trained on,
and kept as a safetensors file beside what it judged, so that later evaluations reuse it. Its penultimate
layer is also the feature space of the KID/FID and diversity figures (evaluate.py, set_evaluation.py).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm import tqdm

from culturelab.generation.data import ImageSet, load_image_folder, motif_images, to_unit_range

log = logging.getLogger(__name__)

REAL_SEED_OFFSET = 1_000_003  # real motif images for evaluation never overlap the training images


class CultureClassifier(nn.Module):
    """Four conv blocks and global average pooling: 128-d features, then a linear culture head.

    Above 32 px a stem of stride-2 convs (16 channels) first brings the image to 32-63 px, so the classifier
    sees every pixel of the size participants see (not a downscaled copy) at little cost; at 32 px there is
    no stem and the model is the one the 32 px checkpoint was evaluated with.
    """

    def __init__(self, num_cultures: int, width: int = 32, resolution: int = 32) -> None:
        super().__init__()
        stem: list[nn.Module] = []
        size, in_ch = resolution, 3
        while size >= 64:
            stem += [
                nn.Conv2d(in_ch, 16, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(16),
                nn.ReLU(inplace=True),
            ]
            size, in_ch = size // 2, 16
        self.stem = nn.Sequential(*stem) if stem else None
        layers: list[nn.Module] = []
        channels = [in_ch, width, 2 * width, 4 * width, 4 * width]
        for i in range(4):
            layers += [
                nn.Conv2d(channels[i], channels[i + 1], 3, padding=1, bias=False),
                nn.BatchNorm2d(channels[i + 1]),
                nn.ReLU(inplace=True),
            ]
            if i < 3:
                layers.append(nn.MaxPool2d(2))
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(channels[-1], num_cultures)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if self.stem is not None:
            x = self.stem(x)
        return self.body(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random flips and quarter turns: an ornament's culture does not depend on its orientation."""
    if torch.rand((), generator=gen) < 0.5:
        x = x.flip(3)
    return torch.rot90(x, int(torch.randint(4, (), generator=gen)), dims=(2, 3))


def train_classifier(
    real: ImageSet, device: torch.device, seed: int = 0, epochs: int = 6, progress: bool = False
) -> tuple[CultureClassifier, float]:
    """Fit on 80% of the real images; returns the model and its accuracy on the other 20%."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    order = torch.randperm(len(real), generator=gen)
    n_val = max(len(real) // 5, 1)
    val, fit = order[:n_val], order[n_val:]
    model = CultureClassifier(len(real.cultures), resolution=real.resolution).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    batch = 64
    steps = epochs * math.ceil(len(fit) / batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    model.train()
    bar = tqdm(total=steps, desc="train culture classifier", disable=not progress, leave=False)
    for _ in range(epochs):
        perm = fit[torch.randperm(len(fit), generator=gen)]
        for start in range(0, len(perm), batch):
            idx = perm[start : start + batch]
            x = _augment(to_unit_range(real.images[idx]), gen).to(device)
            loss = F.cross_entropy(model(x), real.labels[idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update()
    bar.close()
    model.eval()
    with torch.no_grad():
        pred = model(to_unit_range(real.images[val]).to(device)).argmax(1).cpu()
    return model, float((pred == real.labels[val]).float().mean())


@torch.no_grad()
def classifier_features(model: CultureClassifier, images_uint8: torch.Tensor, device: torch.device):
    feats, preds = [], []
    for start in range(0, len(images_uint8), 256):
        x = to_unit_range(images_uint8[start : start + 256]).to(device)
        f = model.features(x)
        feats.append(f.cpu())
        preds.append(model.head(f).argmax(1).cpu())
    return torch.cat(feats).double().numpy(), torch.cat(preds).numpy()


def real_images_key(data: str, seed: int, per_culture: int) -> str:
    """Names the real images a classifier is trained on, in its file name: the motifs' seed and count, or the
    ImageFolder's name."""
    return f"motifs-s{seed}-n{per_culture}" if data == "motifs" else "folder-" + Path(data).resolve().name


def load_real_images(
    data: str, resolution: int, per_culture: int, seed: int, progress: bool, cultures: list[str] | None = None
) -> ImageSet:
    """The real images ``data`` names at ``resolution``: built-in motifs rendered from seeds the training set never
    uses, or an ImageFolder (only the ``cultures`` sub-folders, if given)."""
    if data == "motifs":
        return motif_images(per_culture, resolution, seed + REAL_SEED_OFFSET, progress)
    return load_image_folder(Path(data), resolution, cultures=cultures, progress=progress)


def classifier_file_name(key: str, resolution: int) -> str:
    return f"classifier-{key}-{resolution}px.safetensors"


def load_or_train_classifier(path: Path, real: ImageSet, device: torch.device, seed: int, progress: bool):
    if path.exists():
        try:
            model = CultureClassifier(len(real.cultures), resolution=real.resolution)
            model.load_state_dict(load_file(str(path)))
            meta = json.loads(path.with_suffix(".json").read_text())
            if meta.get("cultures") == real.cultures:
                log.info("reusing culture classifier %s", path)
                return model.to(device).eval(), meta["val_accuracy"], path
        except (SafetensorError, OSError, RuntimeError, KeyError, ValueError) as exc:
            log.warning("ignoring classifier %s (%s); training a new one", path, exc)
    model, val_accuracy = train_classifier(real, device, seed, progress=progress)
    try:
        save_file({k: v.cpu().contiguous() for k, v in model.state_dict().items()}, str(path))
        path.with_suffix(".json").write_text(json.dumps({"cultures": real.cultures, "val_accuracy": val_accuracy}))
    except OSError as exc:  # e.g. a read-only install: evaluate anyway, just do not cache
        log.warning("could not keep the culture classifier beside the checkpoint: %s", exc)
        return model, val_accuracy, None
    return model, val_accuracy, path
