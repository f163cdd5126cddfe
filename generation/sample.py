"""Write a stimulus set (DESIGN.md, Contract 1) from a trained generator.

Every image has its own seed: its noise vector is ``randn(z_dim)`` from a generator seeded with it, so
one stimulus can be remade from its manifest entry alone, and the same command writes the same bytes.
The set is written into a temporary folder next to ``out`` and renamed into place at the end, so a
failed or interrupted run never leaves a half-written set behind.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import torch
from PIL import Image
from torch import nn
from tqdm import tqdm

from culturelab.generation.data import to_uint8

log = logging.getLogger(__name__)

SCHEMA = "culturelab.stimuli/1"
VERSION = "0.1.0"
BATCH = 256  # fixed, so the same command always runs the same batches (bit-identical outputs)


def id_safe(name: str) -> str:
    """A culture name as part of a Contract 1 id, ``[a-z0-9][a-z0-9._-]*``."""
    return re.sub(r"[^a-z0-9.-]+", "-", name.lower()).strip("-.") or "x"


@dataclass(frozen=True)
class Condition:
    """One culture mix to sample: weights over the model's cultures, summing to 1."""

    mix: dict[str, float]

    def dominant(self, cultures: list[str]) -> str:
        """The culture with the largest weight; ties go to the earlier one in ``cultures`` (Contract 1)."""
        return max(cultures, key=lambda c: (self.mix.get(c, 0.0), -cultures.index(c)))

    def slug(self, index: int) -> str:
        """The id stem of this condition's stimuli: ``girih``, ``mix-girih50-kente50`` (or ``mix03``)."""
        if len(self.mix) == 1:
            stem = id_safe(next(iter(self.mix)))
        else:
            stem = "mix-" + "-".join(f"{id_safe(c).replace('-', '')}{round(w * 100):d}" for c, w in self.mix.items())
        return stem if len(stem) <= 58 else f"mix{index:02d}"

    def weights(self, cultures: list[str]) -> torch.Tensor:
        return torch.tensor([self.mix.get(c, 0.0) for c in cultures], dtype=torch.float32)


def parse_mix(text: str, cultures: list[str]) -> Condition:
    """``girih=0.5,kente=0.5`` -> a Condition with weights normalised to sum to 1."""
    weights: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.strip().partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"mix entry {part.strip()!r} is not CULTURE=WEIGHT")
        if name not in cultures:
            raise ValueError(f"unknown culture {name!r} in mix; the model knows {', '.join(cultures)}")
        try:
            weight = float(value)
        except ValueError:
            raise ValueError(f"weight {value.strip()!r} for {name} is not a number") from None
        if not weight >= 0.0 or weight == float("inf"):
            raise ValueError(f"weight for {name} must be a finite number >= 0, not {value.strip()}")
        weights[name] = weights.get(name, 0.0) + weight
    total = sum(weights.values())
    if not total > 0:
        raise ValueError("mix weights must sum to a positive number")
    ordered = {c: weights[c] / total for c in cultures if weights.get(c, 0.0) > 0}
    return Condition(ordered)


def sweep(a: str, b: str, steps: int, cultures: list[str]) -> list[Condition]:
    """``steps`` mixes from all ``a`` to all ``b`` in equal steps (both ends included)."""
    for name in (a, b):
        if name not in cultures:
            raise ValueError(f"unknown culture {name!r} in sweep; the model knows {', '.join(cultures)}")
    if a == b:
        raise ValueError("a sweep needs two different cultures")
    if steps < 2:
        raise ValueError("a sweep needs at least 2 steps")
    out = []
    for i in range(steps):
        t = round(i / (steps - 1), 6)
        mix = {a: 1.0 - t, b: t}
        out.append(Condition({c: w for c, w in mix.items() if w > 0}))
    return out


def png_bytes(array) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array, "RGB").save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def created_at() -> str:
    # SOURCE_DATE_EPOCH (reproducible-builds.org) makes the manifest byte-identical too.
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = datetime.fromtimestamp(int(epoch), UTC) if epoch else datetime.now(UTC).replace(microsecond=0)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 natively: CUDA (Ampere on), or a CPU with AVX-512 BF16 or AMX.
    Elsewhere a CPU emulates bf16 and would be slower than fp32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    # torch.cpu's feature probes are private: a torch without them counts as without the feature
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return device.type == "cpu" and any(getattr(torch.cpu, name, lambda: False)() for name in probes)


@torch.no_grad()
def generate(g: nn.Module, weights: torch.Tensor, seeds: list[int], device: torch.device) -> torch.Tensor:
    """uint8 images (N, H, W, 3) for per-image culture weights (N, K) and seeds.

    Image i's noise is ``randn(g.noise_dim())`` from a generator seeded with ``seeds[i]`` (``z_dim`` values
    for the dcgan and resnet G, a flat global + periodic + local noise map for the spatial G)."""
    z_dim = g.noise_dim()
    autocast = nullcontext()
    if g.config.to_dict().get("arch", "dcgan") != "dcgan":
        # channels_last convolutions are ~1.5x faster on a CPU for the 128 px models, and bf16 (which the GPU
        # recipe trains in) twice that again where the hardware computes it natively; the dcgan keeps fp32
        # and its layout so that its sets stay byte-identical to those written before
        g = g.to(memory_format=torch.channels_last)
        if native_bf16(device):
            autocast = torch.autocast(device.type, dtype=torch.bfloat16)
    z = torch.stack([torch.randn(z_dim, generator=torch.Generator().manual_seed(s)) for s in seeds])
    out = []
    for start in range(0, len(seeds), BATCH):
        n = min(BATCH, len(seeds) - start)
        # Always a full batch (zero rows pad it): CPU kernels differ by batch size in the last bits, which
        # changed 1 in 7 images by one grey level when a stimulus was remade alone from its seed.
        zb, wb = z.new_zeros(BATCH, z_dim), weights.new_zeros(BATCH, weights.shape[1])
        zb[:n], wb[:n] = z[start : start + n], weights[start : start + n]
        with autocast:
            batch = g(zb.to(device), wb.to(device))[:n].float()
        out.append(to_uint8(batch).permute(0, 2, 3, 1).cpu())
    return torch.cat(out) if out else torch.empty(0, g.config.resolution, g.config.resolution, 3, dtype=torch.uint8)


class OutputError(ValueError):
    """An --out that cannot take a set: not empty, not a set to replace, holding the working folder, unwritable."""


@contextmanager
def staged_folder(out: Path, overwrite: bool = False) -> Iterator[Path]:
    """A temporary folder beside ``out`` to write a set into; it replaces ``out`` only when the block succeeds.

    Refuses the working folder or one that holds it (``--out .``), and a non-empty ``out`` unless
    ``overwrite``, which then replaces only a stimulus set (a folder with a manifest.json): ``--overwrite``
    must never delete a user's other files. On any error, SIGTERM included (the CLI turns it into
    SystemExit), the temporary folder is removed, so a failed or interrupted run leaves no half-written set.
    """
    out = Path(out).absolute()
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out} is a file, not a folder for the set")
    if Path.cwd().resolve().is_relative_to(out.resolve()):
        raise OutputError(f"{out} is the working folder or holds it; write the set to a folder of its own")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise OutputError(f"{out} already exists and is not empty (use --overwrite to replace it)")
        if not (out / "manifest.json").is_file():
            raise OutputError(f"{out} is not a stimulus set (no manifest.json); --overwrite replaces only a set")
    # Not mkdtemp, which makes the folder private (0700): a set is for others too (the platform may run as
    # another user), so it gets the permissions of any folder made here.
    tmp = out.parent / f".{out.name}.{secrets.token_hex(4)}"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
    except OSError as exc:
        raise OutputError(f"cannot write a set in {out.parent}: {exc.strerror}") from None
    try:
        yield tmp
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_contact_sheet(path: Path, rows: list[list], resolution: int, columns: int = 10) -> None:
    """One row per condition (culture or mix), its first ``columns`` images."""
    n_cols = min(columns, max(len(r) for r in rows))
    sheet = Image.new("RGB", (n_cols * (resolution + 2), len(rows) * (resolution + 2)), "white")
    for i, row in enumerate(rows):
        for j, array in enumerate(row[:n_cols]):
            sheet.paste(Image.fromarray(array, "RGB"), (j * (resolution + 2) + 1, i * (resolution + 2) + 1))
    sheet.save(path)


def write_stimulus_set(
    g: nn.Module,
    out: Path,
    conditions: list[Condition],
    per_condition: int,
    *,
    seed: int = 0,
    name: str | None = None,
    checkpoint_sha256: str = "",
    device: torch.device | str = "cpu",
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Sample ``per_condition`` images for each condition and write ``out/`` with its manifest.json.

    Image ``j`` of condition ``i`` gets seed ``seed + i * per_condition + j``.
    """
    out = Path(out)
    cultures = list(g.config.cultures)
    device = torch.device(device)
    g = g.to(device).eval()
    with staged_folder(out, overwrite) as tmp:
        (tmp / "images").mkdir()
        stimuli, sheet_rows = [], []
        for i, cond in enumerate(tqdm(conditions, desc="sample", disable=not progress)):
            seeds = [seed + i * per_condition + j for j in range(per_condition)]
            weights = cond.weights(cultures).expand(per_condition, -1)
            arrays = generate(g, weights, seeds, device).numpy()
            sheet_rows.append(list(arrays))
            for j, (s, array) in enumerate(zip(seeds, arrays, strict=True)):
                stimulus_id = f"{cond.slug(i)}-{j:04d}"
                data = png_bytes(array)
                (tmp / "images" / f"{stimulus_id}.png").write_bytes(data)
                stimuli.append(
                    {
                        "id": stimulus_id,
                        "file": f"images/{stimulus_id}.png",
                        "sha256": hashlib.sha256(data).hexdigest(),
                        "width": int(array.shape[1]),
                        "height": int(array.shape[0]),
                        "culture": cond.dominant(cultures),
                        "mix": cond.mix,
                        "method": "cgan",
                        "seed": s,
                        "content": None,
                    }
                )
        ids = [s["id"] for s in stimuli]
        if len(set(ids)) != len(ids):
            raise ValueError("two conditions give the same stimulus ids; give each mix only once")
        manifest = {
            "schema": SCHEMA,
            "name": name or out.name,
            "created_at": created_at(),
            "cultures": cultures,
            "generator": {
                "method": "cgan",
                "checkpoint_sha256": checkpoint_sha256,
                "config": g.config.to_dict() | {"culture_vectors": g.config.culture_vectors is not None},
                "version": VERSION,
                "seed": seed,
            },
            "stimuli": stimuli,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        write_contact_sheet(tmp / "contact-sheet.png", sheet_rows, g.config.resolution)
    log.info("wrote %d stimuli to %s", len(stimuli), out)
    return out
