"""VGG19 feature responses for style transfer (research design §3.1, §3.2): ImageNet or seeded random weights.

The pretrained CNN of §3.1 is VGG19's convolutional part (Simonyan & Zisserman 2015), as in Gatys et al.
(2016). Its weights never come from the network at run time: ``imagenet`` reads torchvision's file
``vgg19-dcbb9e9d.pth`` from a path the user gives or from torchvision's cache, and says where to put it
when neither has it. ``random`` draws the weights with torchvision's own VGG initialisation from a seeded
generator: random networks still carry texture statistics (Ustyuzhaninov et al. 2017; He et al. 2016).

Layer names follow Gatys et al.: ``conv4_2`` is the second convolution of block 4, and its response F^l is
taken after the ReLU, because in their Caffe network the ReLU runs in place on the ``conv4_2`` blob.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torchvision.models.vgg import cfgs, make_layers

from culturelab.generation.checkpoint import sha256_file

IMAGENET_FILE = "vgg19-dcbb9e9d.pth"
IMAGENET_URL = f"https://download.pytorch.org/models/{IMAGENET_FILE}"
# torchvision's ImageNet input normalisation; the network sees (x - mean) / std for x in [0, 1].
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FEATURE_KINDS = ("imagenet", "random")


class FeaturesError(ValueError):
    """Features that cannot be loaded (missing or wrong weight file, unknown layer); the message says why."""


def _layer_names() -> list[str]:
    """Names of torchvision's ``vgg19().features`` modules in order: conv1_1, relu1_1, ..., pool5."""
    names, block, index = [], 1, 1
    for entry in cfgs["E"]:
        if entry == "M":
            names.append(f"pool{block}")
            block, index = block + 1, 1
        else:
            names += [f"conv{block}_{index}", f"relu{block}_{index}"]
            index += 1
    return names


LAYER_NAMES = _layer_names()
CONV_LAYERS = tuple(n for n in LAYER_NAMES if n.startswith("conv"))


def imagenet_weights_path(path: Path | None = None) -> Path:
    """The ImageNet weight file to read: ``path``, or the copy in torchvision's cache (which may not exist)."""
    return Path(path) if path is not None else Path(torch.hub.get_dir()) / "checkpoints" / IMAGENET_FILE


@dataclass(frozen=True)
class FeatureSource:
    """What the manifest records about the features: kind, file name and sha256 (None for random), seed."""

    kind: str
    file: str | None
    sha256: str | None
    seed: int | None

    def to_dict(self) -> dict:
        return {"kind": self.kind, "file": self.file, "sha256": self.sha256, "seed": self.seed}


def check_layers(layers: list[str]) -> None:
    unknown = [name for name in layers if name not in CONV_LAYERS]
    if unknown:
        raise FeaturesError(f"unknown VGG19 layer(s) {', '.join(unknown)}; use conv1_1 ... conv5_4")


class VGGFeatures(nn.Module):
    """VGG19's convolutional part up to the deepest requested layer; returns {layer: response}.

    Input: RGB in [0, 1], (B, 3, H, W); the ImageNet normalisation happens inside. Parameters are frozen.
    """

    def __init__(self, body: nn.Sequential, layers: list[str]) -> None:
        super().__init__()
        check_layers(layers)
        # A layer's response is read after its ReLU, which directly follows the conv (see module docstring).
        self.taps = {LAYER_NAMES.index(name) + 1: name for name in layers}
        # channels_last: oneDNN's and cuDNN's faster convolution layout (1.4x per pass on a 2-core CPU).
        self.body = body[: max(self.taps) + 1].to(memory_format=torch.channels_last)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {}
        h = ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
        for index, module in enumerate(self.body):
            h = module(h)
            if index in self.taps:
                out[self.taps[index]] = h
        return out


def _random_body(seed: int) -> nn.Sequential:
    """VGG19's layers initialised as torchvision's VGG.__init__ does, but from a generator seeded with ``seed``."""
    body = make_layers(cfgs["E"], batch_norm=False)
    gen = torch.Generator().manual_seed(seed)
    for module in body:
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu", generator=gen)
            nn.init.zeros_(module.bias)
    return body


def _imagenet_body(path: Path) -> nn.Sequential:
    if not path.is_file():
        raise FeaturesError(
            f"VGG19 ImageNet weights not found: put {IMAGENET_FILE} ({IMAGENET_URL}) at {path} "
            "or pass --vgg-weights PATH (or use --features random)"
        )
    try:
        # weights_only: the file is unpickled with tensors and containers only, never arbitrary objects.
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: pickle, zip and torch raise different types
        raise FeaturesError(f"cannot read VGG19 weights {path}: {exc}") from exc
    body = make_layers(cfgs["E"], batch_norm=False)
    features = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
    try:
        body.load_state_dict(features)
    except RuntimeError as exc:
        raise FeaturesError(f"{path} does not hold torchvision's VGG19 weights ({IMAGENET_FILE})") from exc
    return body


def load_features(
    kind: str, layers: list[str], *, weights: Path | None = None, seed: int = 0
) -> tuple[VGGFeatures, FeatureSource]:
    """VGG19 features of ``kind`` (``imagenet`` | ``random``) tapping ``layers``, and their provenance."""
    if kind == "imagenet":
        path = imagenet_weights_path(weights)
        body = _imagenet_body(path)
        source = FeatureSource("imagenet", path.name, sha256_file(path), None)
    elif kind == "random":
        body = _random_body(seed)
        source = FeatureSource("random", None, None, seed)
    else:
        raise FeaturesError(f"unknown features {kind!r}; use {' or '.join(FEATURE_KINDS)}")
    return VGGFeatures(body, list(dict.fromkeys(layers))), source
