"""The built-in content images for style transfer: five simple, recognisable scenes drawn by the project.

A cross-cultural study holds the content fixed and varies the culture's style, so content images should be
objects anyone recognises in any style: a house, a tree, a sailing boat, a fish, a flower in a vase. They
are drawn here with PIL (supersampled, then box-filtered to anti-alias the edges), so CultureLab may
redistribute them; ``generation/content/*.png`` were written by ``python -m culturelab.generation.content_images``.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw

BUILTIN_CONTENT_DIR = Path(__file__).parent / "content"
SIZE = 512
_SUPERSAMPLE = 4

Draw = ImageDraw.ImageDraw


def _sky_and_ground(d: Draw, s: float, sky: str, ground: str, horizon: float) -> None:
    d.rectangle([0, 0, s, horizon * s], fill=sky)
    d.rectangle([0, horizon * s, s, s], fill=ground)


def _sun(d: Draw, s: float, cx: float, cy: float, r: float) -> None:
    d.ellipse([(cx - r) * s, (cy - r) * s, (cx + r) * s, (cy + r) * s], fill="#f6c945")


def _house(d: Draw, s: float) -> None:
    _sky_and_ground(d, s, "#9fc9e8", "#6aa84f", 0.72)
    _sun(d, s, 0.82, 0.17, 0.08)
    d.rectangle([0.22 * s, 0.45 * s, 0.78 * s, 0.82 * s], fill="#f1e3c6", outline="#5b3a29", width=int(0.01 * s))
    d.polygon([(0.16 * s, 0.46 * s), (0.5 * s, 0.18 * s), (0.84 * s, 0.46 * s)], fill="#b23a2e")
    d.rectangle([0.44 * s, 0.6 * s, 0.56 * s, 0.82 * s], fill="#6b4226")
    for x0 in (0.28, 0.62):
        d.rectangle(
            [x0 * s, 0.52 * s, (x0 + 0.1) * s, 0.62 * s], fill="#d6ecf7", outline="#5b3a29", width=int(0.01 * s)
        )
        d.line([((x0 + 0.05) * s, 0.52 * s), ((x0 + 0.05) * s, 0.62 * s)], fill="#5b3a29", width=int(0.008 * s))
    d.rectangle([0.64 * s, 0.22 * s, 0.72 * s, 0.36 * s], fill="#7a4b35")  # chimney


def _tree(d: Draw, s: float) -> None:
    _sky_and_ground(d, s, "#cfe6f2", "#88b04b", 0.78)
    d.rectangle([0.45 * s, 0.5 * s, 0.55 * s, 0.86 * s], fill="#6e4b2a")
    for cx, cy, r in ((0.5, 0.32, 0.2), (0.33, 0.42, 0.15), (0.67, 0.42, 0.15), (0.5, 0.5, 0.14)):
        d.ellipse([(cx - r) * s, (cy - r) * s, (cx + r) * s, (cy + r) * s], fill="#2f7d32")
    for cx, cy in ((0.42, 0.3), (0.6, 0.38), (0.38, 0.47), (0.55, 0.24), (0.66, 0.5)):
        r = 0.025
        d.ellipse([(cx - r) * s, (cy - r) * s, (cx + r) * s, (cy + r) * s], fill="#d8402f")  # apples


def _boat(d: Draw, s: float) -> None:
    _sky_and_ground(d, s, "#f4d8b0", "#2e6f9e", 0.66)
    _sun(d, s, 0.22, 0.2, 0.09)
    for k in range(6):  # wave crests
        y = (0.72 + 0.05 * k) * s
        for i in range(9):
            x = (i / 8 + (0.06 if k % 2 else 0.0)) * s
            d.arc(
                [x - 0.05 * s, y - 0.02 * s, x + 0.05 * s, y + 0.02 * s], 180, 360, fill="#d8ecf5", width=int(0.008 * s)
            )
    d.polygon([(0.2 * s, 0.64 * s), (0.8 * s, 0.64 * s), (0.7 * s, 0.76 * s), (0.3 * s, 0.76 * s)], fill="#7b3f21")
    d.line([(0.5 * s, 0.64 * s), (0.5 * s, 0.18 * s)], fill="#3d2614", width=int(0.015 * s))
    d.polygon([(0.52 * s, 0.2 * s), (0.52 * s, 0.6 * s), (0.76 * s, 0.6 * s)], fill="#fbfaf4")
    d.polygon([(0.48 * s, 0.26 * s), (0.48 * s, 0.6 * s), (0.3 * s, 0.6 * s)], fill="#e8e2cf")


def _fish(d: Draw, s: float) -> None:
    d.rectangle([0, 0, s, s], fill="#bfe3ea")
    d.polygon([(0.7 * s, 0.5 * s), (0.92 * s, 0.3 * s), (0.92 * s, 0.7 * s)], fill="#e07b39")  # tail
    d.ellipse([0.12 * s, 0.3 * s, 0.76 * s, 0.7 * s], fill="#f29e4c")
    d.polygon([(0.35 * s, 0.33 * s), (0.5 * s, 0.18 * s), (0.58 * s, 0.34 * s)], fill="#e07b39")  # dorsal fin
    for x in (0.4, 0.5, 0.6):  # scales
        d.arc([(x - 0.06) * s, 0.4 * s, (x + 0.06) * s, 0.6 * s], 270, 90, fill="#c8642b", width=int(0.01 * s))
    d.ellipse([0.22 * s, 0.42 * s, 0.3 * s, 0.5 * s], fill="white")
    d.ellipse([0.245 * s, 0.445 * s, 0.285 * s, 0.485 * s], fill="#1b1b1b")
    for cx, cy, r in ((0.12, 0.25, 0.03), (0.08, 0.15, 0.02), (0.15, 0.08, 0.015)):
        d.ellipse([(cx - r) * s, (cy - r) * s, (cx + r) * s, (cy + r) * s], outline="#f7fbfc", width=int(0.006 * s))


def _flower(d: Draw, s: float) -> None:
    _sky_and_ground(d, s, "#efe7da", "#c9b79c", 0.8)
    d.line([(0.5 * s, 0.55 * s), (0.5 * s, 0.2 * s)], fill="#3f7a3a", width=int(0.018 * s))
    d.line([(0.5 * s, 0.5 * s), (0.34 * s, 0.3 * s)], fill="#3f7a3a", width=int(0.014 * s))
    d.line([(0.5 * s, 0.5 * s), (0.66 * s, 0.32 * s)], fill="#3f7a3a", width=int(0.014 * s))
    for cx, cy, r, colour in ((0.5, 0.2, 0.09, "#d94f70"), (0.34, 0.3, 0.07, "#f2b134"), (0.66, 0.32, 0.07, "#7b5ea7")):
        for k in range(6):
            a = k * math.pi / 3
            px, py = cx + 0.9 * r * math.cos(a), cy + 0.9 * r * math.sin(a)
            d.ellipse([(px - r * 0.6) * s, (py - r * 0.6) * s, (px + r * 0.6) * s, (py + r * 0.6) * s], fill=colour)
        d.ellipse([(cx - r * 0.45) * s, (cy - r * 0.45) * s, (cx + r * 0.45) * s, (cy + r * 0.45) * s], fill="#fff3b0")
    d.polygon([(0.36 * s, 0.52 * s), (0.64 * s, 0.52 * s), (0.7 * s, 0.88 * s), (0.3 * s, 0.88 * s)], fill="#3467a8")
    d.rectangle([0.34 * s, 0.5 * s, 0.66 * s, 0.55 * s], fill="#27507f")


SCENES: dict[str, Callable[[Draw, float], None]] = {
    "house": _house,
    "tree": _tree,
    "boat": _boat,
    "fish": _fish,
    "flower": _flower,
}


def draw_scene(name: str, size: int = SIZE) -> Image.Image:
    """One built-in scene as an RGB image of ``size`` x ``size`` pixels."""
    big = Image.new("RGB", (size * _SUPERSAMPLE, size * _SUPERSAMPLE), "white")
    SCENES[name](ImageDraw.Draw(big), float(size * _SUPERSAMPLE))
    return big.reduce(_SUPERSAMPLE)


def write_builtin_content(out: Path = BUILTIN_CONTENT_DIR, size: int = SIZE) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in SCENES:
        path = out / f"{name}.png"
        draw_scene(name, size).save(path, optimize=True)
        paths.append(path)
    return paths


if __name__ == "__main__":
    for written in write_builtin_content(Path(sys.argv[1]) if len(sys.argv) > 1 else BUILTIN_CONTENT_DIR):
        print(written)
