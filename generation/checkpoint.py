"""Checkpoints as safetensors files (no pickles): tensors plus a JSON header with the model config.

Two kinds share one format tag:
- ``training``: G, D, the EMA generator, both Adam states, the data-sampling RNG state and the step,
  everything ``--resume`` needs to continue exactly as if never stopped;
- ``generator``: only the EMA generator, what ``generate sample`` needs (the shipped one is of this kind).
A JSON file with the same header (``NAME.json`` beside ``NAME.safetensors``) is written for people to read;
the header inside the safetensors file is the one that is loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from culturelab.generation.cgan import CGANConfig
from culturelab.generation.models import make_generator

FORMAT = "culturelab.cgan/1"
PACKAGED = Path(__file__).parent / "checkpoints"
DEFAULT_CHECKPOINT = PACKAGED / "motifs-resnet128.safetensors"


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt or of another format version; the message names the file."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _optimizer_tensors(prefix: str, optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list]:
    state = optimizer.state_dict()
    tensors = {
        # On the host and dense, like module tensors: safetensors refused strided CUDA ones (channels_last moments)
        f"{prefix}.{idx}.{name}": value.detach().cpu().contiguous() if torch.is_tensor(value) else torch.tensor(value)
        for idx, entries in state["state"].items()
        for name, value in entries.items()
    }
    return tensors, state["param_groups"]


def _load_optimizer(
    prefix: str, optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: list
) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith(prefix + "."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def module_tensors(prefix: str, module: nn.Module) -> dict[str, torch.Tensor]:
    """A module's state as checkpoint tensors named ``prefix.<key>``."""
    return {f"{prefix}.{k}": v.detach().cpu().contiguous() for k, v in module.state_dict().items()}


def module_state(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state dict stored under ``prefix`` (inverse of ``module_tensors``)."""
    return {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}


@dataclass
class TrainingState:
    """What ``--resume`` restores, by the names it is stored under: the networks (``g``, ``d``, ...), their
    optimisers (``opt_g``, ...) and the RNG that draws batches and noise. The cGAN and the translation GAN
    both keep theirs in one of these."""

    modules: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    rng: torch.Generator

    def tensors(self) -> tuple[dict[str, torch.Tensor], dict[str, list]]:
        """All of it as checkpoint tensors, and the optimisers' parameter groups (which go in the header)."""
        tensors: dict[str, torch.Tensor] = {}
        for name, module in self.modules.items():
            tensors |= module_tensors(name, module)
        groups = {}
        for name, optimizer in self.optimizers.items():
            moments, groups[name] = _optimizer_tensors(name, optimizer)
            tensors |= moments
        return tensors | {"rng": self.rng.get_state()}, groups

    def restore(self, tensors: dict[str, torch.Tensor], groups: dict[str, list]) -> None:
        """Load what ``tensors`` (and the header's ``groups``) hold, in place."""
        for name, module in self.modules.items():
            module.load_state_dict(module_state(name, tensors))
        for name, optimizer in self.optimizers.items():
            _load_optimizer(name, optimizer, tensors, groups[name])
        self.rng.set_state(tensors["rng"])


# Training settings that name files or folders; a checkpoint records them relative to its own folder, so a
# checkpoint copied elsewhere (the shipped one) holds no path of the machine that made it.
PATH_SETTINGS = ("out", "data", "culture_vectors", "generator_out")


def portable_paths(train_config: dict, folder: Path) -> dict:
    """``train_config`` with its file and folder settings relative to ``folder`` (``data="motifs"`` is a name)."""
    out = dict(train_config)
    for key in PATH_SETTINGS:
        value = out.get(key)
        if value and not (key == "data" and value == "motifs"):
            out[key] = os.path.relpath(Path(value).resolve(), Path(folder).resolve())
    return out


def resolve_setting(value: str | None, folder: Path) -> str | None:
    """A recorded path setting back as an absolute path (inverse of ``portable_paths``)."""
    if not value or value == "motifs":
        return value
    return str((Path(folder) / value).resolve())


def write(path: Path, tensors: dict[str, torch.Tensor], header: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file(tensors, str(tmp), metadata={"culturelab": json.dumps(header, sort_keys=True)})
    tmp.replace(path)  # never leave a half-written checkpoint behind
    path.with_suffix(".json").write_text(json.dumps(header, indent=2, sort_keys=True) + "\n")


def save_training(path: Path, state: TrainingState, *, model_config: CGANConfig, train_config: dict, step: int) -> None:
    tensors, groups = state.tensors()
    header = {
        "format": FORMAT,
        "kind": "training",
        "model": model_config.to_dict(),
        "train": portable_paths(train_config, path.parent),
        "step": step,
        "param_groups": groups,
    }
    write(path, tensors, header)


def save_generator(path: Path, model_config: CGANConfig, g_ema: nn.Module, extra: dict | None = None) -> None:
    header = {"format": FORMAT, "kind": "generator", "model": model_config.to_dict(), **(extra or {})}
    if "train" in header:
        header["train"] = portable_paths(header["train"], path.parent)
    write(path, module_tensors("g_ema", g_ema), header)


def read(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Header and tensors of a checkpoint, checking that it is one of ours and of this version."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            metadata = fh.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path} is not a readable safetensors file ({exc})") from exc
    try:
        header = json.loads(metadata["culturelab"])
    except (KeyError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"checkpoint {path} has no CultureLab header") from exc
    if header.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} is format {header.get('format')!r}; this version reads {FORMAT!r}")
    return header, tensors


def load_generator(
    path: Path, device: torch.device | str = "cpu", weights: str = "g_ema"
) -> tuple[nn.Module, dict[str, Any]]:
    """The EMA generator (or, with ``weights="g"``, a training checkpoint's raw G) in eval mode, and the header."""
    header, tensors = read(path)
    try:
        config = CGANConfig(**header["model"])
        g = make_generator(config)
        g.load_state_dict(module_state(weights, tensors))
    except (TypeError, ValueError, KeyError, RuntimeError) as exc:
        raise CheckpointError(f"checkpoint {path} does not match this generator: {exc}") from exc
    return g.to(device).eval(), header


def load_training(path: Path, state: TrainingState) -> dict[str, Any]:
    """Restore a training checkpoint into ``state``; returns its header (``step`` is where to continue)."""
    header, tensors = read(path)
    if header.get("kind") != "training":
        raise CheckpointError(f"checkpoint {path} holds only a generator; --resume needs a training checkpoint")
    state.restore(tensors, header["param_groups"])
    return header
