"""A content x culture grid made by the translation GAN (translation.py), as a stimulus set (Contract 1).

G runs once per (content, culture) pair, in batches; it has no noise, so the same checkpoint and content
images always give the same set (the manifest's ``seed`` is null). The set is written beside ``out`` and
renamed into place, as every stimulus set is.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from culturelab.generation.checkpoint import sha256_file
from culturelab.generation.content_grid import GridInputError, load_contents, write_contact_sheet, write_grid_images
from culturelab.generation.data import to_uint8, to_unit_range
from culturelab.generation.sample import SCHEMA, VERSION, created_at, staged_folder
from culturelab.generation.translation import one_hot
from culturelab.generation.translation_train import load_translator

log = logging.getLogger(__name__)


def write_translation_set(
    checkpoint: Path,
    content_sources: list[Path],
    out: Path,
    *,
    cultures: list[str] | None = None,
    batch_size: int = 32,
    device: torch.device | str = "cpu",
    name: str | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Restyle every content image to every culture (default: all the model's) and write ``out/``."""
    out, device = Path(out), torch.device(device)
    g, header = load_translator(checkpoint, device)
    known = list(g.config.cultures)
    cultures = known if cultures is None else list(cultures)
    if not cultures:
        raise GridInputError(f"no culture named; the model knows {', '.join(known)}")
    if twice := sorted({c for c in cultures if cultures.count(c) > 1}):
        raise GridInputError(f"culture(s) named twice: {', '.join(twice)} (each version's id must be unique)")
    unknown = [c for c in cultures if c not in known]
    if unknown:
        raise GridInputError(f"unknown culture(s) {', '.join(unknown)}; the model knows {', '.join(known)}")
    contents = load_contents(content_sources, g.config.resolution)
    k = len(g.config.domains)
    pairs = [(i, j) for i in range(len(contents)) for j in range(len(cultures))]
    grid: dict[tuple[int, int], np.ndarray] = {}
    with staged_folder(out, overwrite) as tmp:
        with torch.no_grad():
            for start in tqdm(range(0, len(pairs), batch_size), desc="translate", disable=not progress):
                batch = pairs[start : start + batch_size]
                x = torch.stack([torch.from_numpy(contents[i].rgb.copy()).permute(2, 0, 1) for i, _ in batch])
                target = torch.tensor([known.index(cultures[j]) for _, j in batch])
                y = g(to_unit_range(x).to(device), one_hot(target, k).to(device))
                for pair, rgb in zip(batch, to_uint8(y).permute(0, 2, 3, 1).cpu().numpy(), strict=True):
                    grid[pair] = rgb
        stimuli = write_grid_images(tmp, contents, cultures, grid, "translation", lambda i, j: None)
        manifest = {
            "schema": SCHEMA,
            "name": name or out.name,
            "created_at": created_at(),
            "cultures": cultures,
            "generator": {
                "method": "translation",
                "checkpoint_sha256": sha256_file(checkpoint),
                "config": header["model"],
                "step": header.get("step"),
                "contents": {c.id: c.source for c in contents},
                "version": VERSION,
            },
            "stimuli": stimuli,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        write_contact_sheet(tmp / "contact-sheet.png", contents, cultures, grid)
    log.info("wrote %d stimuli (%d contents x %d cultures) to %s", len(stimuli), len(contents), len(cultures), out)
    return out
