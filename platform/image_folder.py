"""A lab's own images as a stimulus set (`culturelab stimuli make-set`): one subfolder per culture, in
Contract 1's layout (docs/contracts.md), every image converted to an sRGB PNG, hashed and measured.

Nothing is written unless every image can be used: the set is built in a temporary folder beside the
target and renamed into place at the end.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from culturelab.platform.stimuli import SCHEMA, StimulusSetError, as_srgb

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
CULTURE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MIN_SIDE = 16  # smaller than this is not an image anyone could rate


def _stimulus_id(culture: str, stem: str, taken: set[str]) -> str:
    """``culture-stem`` in the manifest's id alphabet, made unique with a counter where two names collide."""
    base = re.sub(r"[^a-z0-9._-]+", "-", f"{culture}-{stem}".lower()).strip("-._")[:60] or "image"
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base[:56]}-{n}"
    taken.add(candidate)
    return candidate


def make_set(folder: Path, out: Path, name: str | None = None) -> dict:
    """Writes the stimulus set of ``folder/<culture>/<image>`` to ``out``; returns the manifest. Raises
    StimulusSetError listing every problem (one per line) before anything is written."""
    from PIL import Image, UnidentifiedImageError

    if not folder.is_dir():
        raise StimulusSetError(f"{folder} is not a folder")
    if out.exists() and any(out.iterdir()):
        raise StimulusSetError(f"{out} already exists and is not empty")
    cultures = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    problems = [f"{c.name}/: a culture's folder name must match {CULTURE.pattern}" for c in cultures
                if not CULTURE.match(c.name)]
    if not cultures:
        problems.append(f"{folder} has no subfolders: put each culture's images in a folder named for it")
    images: list[tuple[str, Path]] = []
    for culture in cultures:
        files = sorted(p for p in culture.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            problems.append(f"{culture.name}/: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        images += [(culture.name, f) for f in files]

    converted: list[tuple[str, Path, Image.Image]] = []
    for culture, path in images:
        try:
            with Image.open(path) as image:
                image.load()
                if image.width < MIN_SIDE or image.height < MIN_SIDE:
                    problems.append(f"{path.relative_to(folder)}: {image.width}x{image.height} is smaller than "
                                    f"{MIN_SIDE}x{MIN_SIDE}")
                    continue
                converted.append((culture, path, as_srgb(image)))
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            problems.append(f"{path.relative_to(folder)}: not a readable image ({type(exc).__name__})")
    if problems:
        raise StimulusSetError("\n".join(problems))

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        (staging / "images").mkdir()
        taken: set[str] = set()
        stimuli = []
        for culture, path, image in converted:
            stimulus_id = _stimulus_id(culture, path.stem, taken)
            target = staging / "images" / f"{stimulus_id}.png"
            image.save(target, format="PNG", optimize=True)
            stimuli.append({
                "id": stimulus_id, "file": f"images/{target.name}",
                "sha256": hashlib.sha256(target.read_bytes()).hexdigest(),
                "width": image.width, "height": image.height, "culture": culture, "mix": {culture: 1.0},
                "method": "human", "seed": None, "content": None, "source_file": str(path.relative_to(folder)),
            })
        manifest = {
            "schema": SCHEMA,
            "name": name or folder.resolve().name,
            "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "cultures": [c.name for c in cultures],
            "generator": {"method": "human", "tool": "culturelab stimuli make-set"},
            "stimuli": stimuli,
        }
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        if out.exists():
            out.rmdir()  # empty (checked above)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest
