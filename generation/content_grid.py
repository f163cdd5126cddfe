"""Content x culture grids, shared by style transfer (stylize.py) and translation (translate.py).

Content images are the user's files and folders, or the built-in scenes; each is centre-cropped to a square
and resized, and gets the id of its file name's stem. A grid is written as ``images/<content>-<culture>.png``
with Contract 1 entries, and drawn as a contact sheet: one row per content image, one column per culture.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, UnidentifiedImageError

from culturelab.generation.data import IMAGE_SUFFIXES
from culturelab.generation.sample import id_safe, png_bytes

MIN_SIDE = 32  # content and style images smaller than this on their shorter side carry too little to transfer
_SHEET_CELL = 160


class GridInputError(ValueError):
    """An image that cannot be used (missing, unreadable, tiny, two with one id); the message names it."""


@dataclass
class Picture:
    """A content or style image: its id, where it came from, and its pixels (size x size x 3, uint8)."""

    id: str
    source: dict
    rgb: np.ndarray = field(repr=False)


def load_square(path: Path, size: int, what: str) -> np.ndarray:
    """Decode ``path``, centre-crop it to a square and resize it to ``size`` (Lanczos)."""
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise GridInputError(f"cannot read {what} image {path}: {exc}") from exc
    w, h = im.size
    if min(w, h) < MIN_SIDE:
        raise GridInputError(f"{what} image {path} is {w}x{h} px; it needs at least {MIN_SIDE} px on its shorter side")
    side = min(w, h)
    im = im.crop(((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side))
    return np.asarray(im.resize((size, size), Image.Resampling.LANCZOS) if side != size else im)


def content_files(sources: list[Path]) -> list[Path]:
    """Files given directly, and every image in folders given (sorted by name)."""
    files: list[Path] = []
    for source in map(Path, sources):
        if source.is_dir():
            found = sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise GridInputError(f"content folder {source} has no images ({', '.join(IMAGE_SUFFIXES)})")
            files += found
        elif source.is_file():
            files.append(source)
        else:
            raise GridInputError(f"content image {source} does not exist")
    return files


def load_contents(sources: list[Path], size: int) -> list[Picture]:
    """The content images; each one's id is its file name's stem, made Contract-1 safe, and must be unique."""
    pictures, seen = [], {}
    for path in content_files(sources):
        content_id = id_safe(path.stem)[:48]
        if content_id in seen:
            raise GridInputError(f"content images {seen[content_id]} and {path} would both get the id {content_id!r}")
        seen[content_id] = path
        rgb = load_square(path, size, "content")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        pictures.append(Picture(content_id, {"file": path.name, "sha256": digest}, rgb))
    return pictures


def write_contact_sheet(path: Path, contents: list[Picture], cultures: list[str], grid: dict) -> None:
    """The grid as people read it: one row per content image (the original first), one column per culture."""
    cell = _SHEET_CELL
    pad, label = 4, 18
    sheet = Image.new(
        "RGB", ((len(cultures) + 1) * (cell + pad) + pad, label + len(contents) * (cell + pad) + pad), "white"
    )
    draw = ImageDraw.Draw(sheet)
    for j, title in enumerate(["content", *cultures]):
        draw.text((pad + j * (cell + pad), 3), title, fill="black")
    for i, content in enumerate(contents):
        row = [content.rgb] + [grid[(i, k)] for k in range(len(cultures))]
        for j, rgb in enumerate(row):
            thumb = Image.fromarray(rgb).resize((cell, cell), Image.Resampling.LANCZOS)
            sheet.paste(thumb, (pad + j * (cell + pad), label + pad + i * (cell + pad)))
    sheet.save(path)


def write_grid_images(
    tmp: Path,
    contents: list[Picture],
    cultures: list[str],
    grid: dict,
    method: str,
    seed: Callable[[int, int], int | None],
) -> list[dict]:
    """Write ``images/<content>-<culture>.png`` for the grid {(content index, culture index): RGB} and return
    their Contract 1 entries; ``seed(i, k)`` is the manifest seed of pair (i, k)."""
    (tmp / "images").mkdir()
    stimuli = []
    for (i, k), rgb in sorted(grid.items()):
        stimulus_id = f"{contents[i].id}-{id_safe(cultures[k])}"
        data = png_bytes(rgb)
        (tmp / "images" / f"{stimulus_id}.png").write_bytes(data)
        stimuli.append(
            {
                "id": stimulus_id,
                "file": f"images/{stimulus_id}.png",
                "sha256": hashlib.sha256(data).hexdigest(),
                "width": int(rgb.shape[1]),
                "height": int(rgb.shape[0]),
                "culture": cultures[k],
                "mix": {cultures[k]: 1.0},
                "method": method,
                "seed": seed(i, k),
                "content": contents[i].id,
            }
        )
    return stimuli
