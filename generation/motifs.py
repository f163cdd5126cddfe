"""The built-in data set: five procedural ornament families, one per "culture".

Each family is rendered from a small set of random parameters (palette, scale, rotation, line widths,
construction angles) drawn from a seeded generator, so an image is a pure function of
``(culture, seed, resolution)`` and the same seed gives the same composition at every resolution.
Every renderer works on a whole supersampled coordinate grid with numpy (no per-pixel Python loops);
PIL's box filter then averages the supersamples down, which anti-aliases the edges.

- ``seigaiha`` (Japan): rows of overlapping concentric half-circles, the "blue ocean waves".
- ``girih`` (Persia, Central Asia): strapwork star tiling, Hankin's polygons-in-contact construction on
  the 4.8.8 (octagon-square) tiling, which gives the classic eight-pointed stars.
- ``kente`` (Ghana): narrow woven strips sewn side by side, alternating warp-striped and weft blocks.
- ``meander`` (Greece): the running Greek key fret, in stacked bands.
- ``ice_ray`` (China): the cracked-ice window lattice, straight bars splitting the field irregularly.
"""

from __future__ import annotations

import colorsys
import itertools
import math

import numpy as np
from PIL import Image

CULTURES: tuple[str, ...] = ("seigaiha", "girih", "kente", "meander", "ice_ray")
MIN_RESOLUTION = 32
MAX_RESOLUTION = 256

# Traditional colour families (sRGB hex); a picture draws from its family and jitters hue/value slightly.
_PALETTES: dict[str, list[list[str]]] = {
    "seigaiha": [
        ["#1d3a6e", "#2f5c9a", "#f4efe3"],  # indigo, blue, paper white
        ["#0f2f4f", "#3f7fa8", "#e9e2cf"],
        ["#17494d", "#3b8686", "#f2ead8"],  # teal
        ["#6d1f2b", "#b0413e", "#f3e6cf"],  # red lacquer
        ["#2b2b3a", "#5a6a8a", "#d9c58f"],  # night blue with gold
    ],
    "girih": [
        ["#f1e7c9", "#1f2a44", "#1c7c8c", "#2a4fa0", "#c8a14a"],  # strap cream, outline, turquoise, cobalt
        ["#f3efe6", "#202020", "#b5532f", "#d9a441", "#2c6e7f"],
        ["#e8d9a8", "#2d1f14", "#3a7d44", "#1d4e89", "#a63d2f"],
        ["#ffffff", "#14213d", "#3d9bc1", "#0d3b66", "#e0b04c"],
    ],
    "kente": [
        ["#f2c01e", "#1e7b3a", "#c8202b", "#111111", "#1f4e9c"],
        ["#f5b700", "#0b6e4f", "#d7263d", "#1b1b1b", "#f46036"],
        ["#e9b10a", "#2a7f3e", "#a4161a", "#0f0f0f", "#3066be"],
    ],
    "meander": [
        ["#c9632b", "#161210"],  # red-figure: terracotta ground, black line
        ["#161210", "#d2773a"],  # black-figure
        ["#f3efe4", "#1f4f8f"],  # white and blue
        ["#1f3f7a", "#f1ebdc"],
        ["#efe3c4", "#7a1f1f"],
    ],
    "ice_ray": [
        ["#efe6d2", "#5a2e1b"],  # rice paper, dark wood
        ["#f3ecdd", "#8b2e1e"],  # paper, red lacquered wood
        ["#1f4a6b", "#e8eef2"],  # porcelain blue, white bars
        ["#d8cfb8", "#2b2420"],
        ["#c3d6cf", "#2f3e3a"],  # celadon
    ],
}


def _palette(culture: str, rng: np.random.Generator) -> np.ndarray:
    """A family palette with a small hue, saturation and value jitter, as float RGB in [0, 1]."""
    family = _PALETTES[culture]
    base = family[rng.integers(len(family))]
    dh, ds, dv = rng.normal(0.0, [0.015, 0.05, 0.05])
    out = []
    for hex_colour in base:
        r, g, b = (int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
        h, s, v = colorsys.rgb_to_hsv(r, g, b)
        out.append(colorsys.hsv_to_rgb((h + dh) % 1.0, min(max(s + ds, 0.0), 1.0), min(max(v + dv, 0.0), 1.0)))
    return np.asarray(out, dtype=np.float32)


def _grid(size: int, rng: np.random.Generator, units_across: float, rotate: bool = True):
    """Pattern-space coordinates of a size x size pixel grid: random scale, rotation and offset."""
    t = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
    y, x = np.meshgrid(t, t, indexing="ij")
    angle = rng.uniform(0, 2 * math.pi) if rotate else rng.normal(0.0, 0.03)
    c, s = math.cos(angle), math.sin(angle)
    u = (c * x - s * y) * units_across + rng.uniform(0, 100)
    v = (s * x + c * y) * units_across + rng.uniform(0, 100)
    return u, v


def _seigaiha(size: int, rng: np.random.Generator) -> np.ndarray:
    pal = _palette("seigaiha", rng)
    u, v = _grid(size, rng, rng.uniform(2.5, 5.0), rotate=rng.random() < 0.3)
    rings = int(rng.integers(3, 6))
    line = rng.uniform(0.06, 0.14)
    # Circles of radius 1 on rows 0.5 apart, every other row shifted by 1; a later (lower) row is drawn
    # over an earlier one, so a pixel shows the lowest row whose upper half-disc contains it.
    dist = np.full(u.shape, np.inf, dtype=np.float32)
    row0 = np.ceil(v * 2.0)
    for k in (2.0, 1.0, 0.0):
        row = row0 + k
        shift = np.mod(row, 2.0)
        cx = np.round((u - shift) / 2.0) * 2.0 + shift
        d = np.hypot(u - cx, v - row * 0.5)
        take = np.isinf(dist) & (d < 1.0)
        dist = np.where(take, d, dist)
    dist = np.where(np.isinf(dist), 0.999, dist)
    ring_pos = dist * rings
    ring = np.floor(ring_pos)
    fill = np.where(np.mod(ring, 2.0)[..., None] == 0, pal[0], pal[1])
    edge = np.minimum(ring_pos - ring, ring + 1 - ring_pos) < line
    return np.where(edge[..., None], pal[2], fill)


def _hankin_segments(poly: np.ndarray, theta: float) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Hankin's polygons-in-contact rays for one convex polygon (vertices counter-clockwise).

    From each edge midpoint two rays leave at the contact angle ``theta`` to the edge and stop where they
    meet the neighbouring edge's ray, on the line from the centre to the shared vertex. Returns
    (start, end, unit normal pointing to the polygon's centre side) per segment.
    """
    centre = poly.mean(axis=0)
    segments = []
    n = len(poly)
    for k in range(n):
        a, b = poly[k], poly[(k + 1) % n]
        mid = (a + b) / 2
        e = (b - a) / np.linalg.norm(b - a)
        for vertex, sign in ((b, 1.0), (a, -1.0)):
            rot = sign * theta
            base = e if sign > 0 else -e
            d = np.array(
                [
                    base[0] * math.cos(rot) - base[1] * math.sin(rot),
                    base[0] * math.sin(rot) + base[1] * math.cos(rot),
                ]
            )
            w = vertex - centre
            # mid + t d = centre + s w  ->  solve the 2x2 system for t
            t, _ = np.linalg.solve(np.stack([d, -w], axis=1), centre - mid)
            end = mid + t * d
            normal = np.array([-d[1], d[0]])
            if np.dot(centre - mid, normal) < 0:
                normal = -normal
            segments.append((mid, end, normal))
    return segments


def _clip_to_wedge(p: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Clip segment pq to the fundamental triangle 0 <= y <= x <= 0.5 (with a small margin)."""
    eps = 1e-6
    t0, t1 = 0.0, 1.0
    d = q - p
    # half-planes as (a, b, c): a*x + b*y + c >= 0
    for a, b, c in ((0.0, 1.0, eps), (1.0, -1.0, eps), (-1.0, 0.0, 0.5 + eps)):
        fp = a * p[0] + b * p[1] + c
        fd = a * d[0] + b * d[1]
        if abs(fd) < 1e-12:
            if fp < 0:
                return None
            continue
        t = -fp / fd
        if fd > 0:
            t0 = max(t0, t)
        else:
            t1 = min(t1, t)
    if t1 - t0 < 1e-9:
        return None
    return p + t0 * d, p + t1 * d


def _girih(size: int, rng: np.random.Generator) -> np.ndarray:
    pal = _palette("girih", rng)
    u, v = _grid(size, rng, rng.uniform(1.6, 3.2))
    theta = math.radians(rng.uniform(58.0, 72.0))
    half_width = rng.uniform(0.018, 0.03)
    outline = rng.uniform(0.008, 0.014)
    # 4.8.8 tiling: octagons (apothem 0.5) on the unit lattice, squares in the gaps at (0.5, 0.5).
    radius = 0.5 / math.cos(math.pi / 8)
    octagon = np.array(
        [
            [
                radius * math.cos(math.pi / 8 + k * math.pi / 4),
                radius * math.sin(math.pi / 8 + k * math.pi / 4),
            ]
            for k in range(8)
        ]
    )
    a, b = octagon[0], octagon[1]
    square = np.array([a, [1.0 - b[0], b[1]], [1.0 - a[0], 1.0 - a[1]], b])
    # The tiling has the symmetry of the square around an octagon's centre, so fold every pixel into the
    # triangle 0 <= y <= x <= 0.5 (a distance-reducing map) and measure against the clipped segments only.
    x = np.abs(np.mod(u + 0.5, 1.0) - 0.5)
    y = np.abs(np.mod(v + 0.5, 1.0) - 0.5)
    x, y = np.maximum(x, y), np.minimum(x, y)
    in_octagon = (x + y) / math.sqrt(2) <= 0.5
    best = np.full(x.shape, np.inf, dtype=np.float32)
    side = np.zeros(x.shape, dtype=bool)
    for poly, is_octagon in ((octagon, True), (_ccw(square), False)):
        for p, q, normal in _hankin_segments(poly, theta):
            q = q + (q - p) / np.linalg.norm(q - p) * 1e-3
            p = p - (q - p) / np.linalg.norm(q - p) * (half_width + outline)  # carry the strap across the edge
            clipped = _clip_to_wedge(p, q)
            if clipped is None:
                continue
            s0, s1 = clipped
            d = s1 - s0
            t = np.clip(((x - s0[0]) * d[0] + (y - s0[1]) * d[1]) / float(d @ d), 0.0, 1.0)
            dist = np.hypot(x - s0[0] - t * d[0], y - s0[1] - t * d[1])
            mine = in_octagon == is_octagon
            closer = (dist < best) & mine
            best = np.where(closer, dist, best)
            side = np.where(closer, (x - s0[0]) * normal[0] + (y - s0[1]) * normal[1] > 0, side)
    # Regions: stars (the centre side of the nearest ray) in octagons and squares, the rest between them.
    fill = np.where(side[..., None], np.where(in_octagon[..., None], pal[2], pal[4]), pal[3])
    img = np.where((best < half_width + outline)[..., None], pal[1], fill)
    return np.where((best < half_width)[..., None], pal[0], img)


def _ccw(poly: np.ndarray) -> np.ndarray:
    area = np.sum(poly[:, 0] * np.roll(poly[:, 1], -1) - np.roll(poly[:, 0], -1) * poly[:, 1])
    return poly if area > 0 else poly[::-1]


def _kente(size: int, rng: np.random.Generator) -> np.ndarray:
    pal = _palette("kente", rng)
    u, v = _grid(size, rng, rng.uniform(3.0, 6.0), rotate=False)
    strip = np.floor(u)
    xl = u - strip
    block_h = rng.uniform(0.9, 1.6)
    block = np.floor(v / block_h)
    yl = v / block_h - block
    order = rng.permutation(len(pal))
    warp_colours = pal[order[:3]]
    ground, motif = pal[order[3]], pal[order[4]]
    n_pin = int(rng.integers(5, 10))
    n_bands = int(rng.integers(3, 7))
    # Warp-faced block: fine lengthwise stripes across the strip.
    pin = np.floor(xl * n_pin).astype(np.int64)
    warp = warp_colours[np.where(pin % 2 == 0, 0, 1 + (pin // 2) % 2)]
    # Weft-faced block: crosswise bands with a centred diamond or bars motif.
    band = np.floor(yl * n_bands).astype(np.int64) % 2
    weft = np.where(band[..., None] == 0, ground, warp_colours[0])
    if rng.random() < 0.5:
        shape = np.abs(xl - 0.5) + np.abs(yl - 0.5) * block_h < 0.3
    else:
        shape = (np.abs(xl - 0.5) < 0.32) & (np.mod(yl * 2 * n_bands, 2.0) < 1.0) & (np.abs(yl - 0.5) < 0.35)
    weft = np.where(shape[..., None], motif, weft)
    checker = (np.mod(strip + block, 2.0) == 0)[..., None]
    img = np.where(checker, warp, weft)
    # Woven texture: thread-scale shading, and a dark seam where the strips are sewn together.
    threads = 0.9 + 0.1 * np.sin(v * 2 * math.pi * 10.0) * np.sin(u * 2 * math.pi * 12.0)
    img = img * threads[..., None]
    seam = np.minimum(xl, 1 - xl) < 0.02
    return np.where(seam[..., None], img * 0.55, img)


# Greek key in a 5 x 5 period: the baseline, then a square spiral rising from it (line spacing 1).
_KEY_PATH = [(0, 0), (0, 4), (4, 4), (4, 1), (1, 1), (1, 3), (3, 3), (3, 2), (2, 2)]


def _meander(size: int, rng: np.random.Generator) -> np.ndarray:
    pal = _palette("meander", rng)
    period = 5.0
    u, v = _grid(size, rng, rng.uniform(9.0, 16.0), rotate=rng.random() < 0.25)
    half = rng.uniform(0.2, 0.3)
    band = np.floor(v / period)
    x = np.mod(u, period)
    x = np.where(np.mod(band, 2.0) == 1, period - x, x)  # alternate bands run the other way
    y = np.mod(v, period)
    rects = [(0.0, period, 0.0, 0.0)]
    for (x0, y0), (x1, y1) in itertools.pairwise(_KEY_PATH):
        rects.append((min(x0, x1), max(x0, x1), min(y0, y1), max(y0, y1)))
    on = np.zeros(u.shape, dtype=bool)
    for dx in (0.0, period):
        for dy in (0.0, period):
            for x0, x1, y0, y1 in rects:
                on |= (x >= x0 + dx - half) & (x <= x1 + dx + half) & (y >= y0 + dy - half) & (y <= y1 + dy + half)
    return np.where(on[..., None], pal[1], pal[0])


def _ice_ray(size: int, rng: np.random.Generator) -> np.ndarray:
    pal = _palette("ice_ray", rng)
    t = (np.arange(size, dtype=np.float32) + 0.5) / size
    y, x = np.meshgrid(t, t, indexing="ij")
    labels = np.zeros((size, size), dtype=np.int32)
    bars = np.zeros((size, size), dtype=bool)
    half = rng.uniform(0.007, 0.012)
    n_splits = int(rng.integers(22, 40))
    flat_labels = labels.reshape(-1)
    flat_x, flat_y = x.reshape(-1), y.reshape(-1)
    for new_label in range(1, n_splits + 1):
        # Crack one of the largest pieces with a straight line near its centre, roughly across its long
        # axis (with a wide random tilt), so the pieces stay compact polygons of irregular shape.
        counts = np.bincount(flat_labels, minlength=new_label)
        target = int(rng.choice(np.argsort(counts)[-3:]))
        members = np.flatnonzero(flat_labels == target)
        mx, my = flat_x[members], flat_y[members]
        cx, cy = mx.mean(), my.mean()
        cov = np.cov(np.stack([mx - cx, my - cy])) if len(members) > 2 else np.eye(2)
        evals, evecs = np.linalg.eigh(cov)
        long_axis = math.atan2(evecs[1, 1], evecs[0, 1])
        spread = math.sqrt(max(evals[1], 1e-8))
        px, py = (
            cx + rng.normal(0, 0.4) * spread * math.cos(long_axis),
            cy + rng.normal(0, 0.4) * spread * math.sin(long_axis),
        )
        angle = long_axis + math.pi / 2 + rng.uniform(-0.7, 0.7)
        d = (x - px) * math.sin(angle) - (y - py) * math.cos(angle)
        region = labels == target
        bars |= region & (np.abs(d) < half)
        labels[region & (d > 0)] = new_label
    # Edges of the field are part of the frame.
    frame = np.minimum(np.minimum(x, 1 - x), np.minimum(y, 1 - y)) < half
    shade = 1.0 + rng.normal(0, 0.025, size=n_splits + 1).astype(np.float32)[labels]
    img = pal[0] * shade[..., None]
    return np.where((bars | frame)[..., None], pal[1], img)


_RENDERERS = {
    "seigaiha": _seigaiha,
    "girih": _girih,
    "kente": _kente,
    "meander": _meander,
    "ice_ray": _ice_ray,
}


def _supersample(resolution: int) -> int:
    return max(2, math.ceil(128 / resolution))


def render_motif_array(culture: str, seed: int | np.random.Generator, resolution: int = 64) -> np.ndarray:
    """Render one motif as a (resolution, resolution, 3) uint8 sRGB array."""
    if culture not in _RENDERERS:
        raise ValueError(f"unknown culture {culture!r}; expected one of {', '.join(CULTURES)}")
    if not MIN_RESOLUTION <= resolution <= MAX_RESOLUTION:
        raise ValueError(f"resolution {resolution} is outside {MIN_RESOLUTION}..{MAX_RESOLUTION}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    factor = _supersample(resolution)
    rgb = _RENDERERS[culture](resolution * factor, rng)
    big = Image.fromarray(np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8), "RGB")
    return np.asarray(big.reduce(factor))


def render_motif(culture: str, seed: int | np.random.Generator, resolution: int = 64) -> Image.Image:
    """Render one motif of ``culture`` as an RGB PIL image; the same seed gives the same image."""
    return Image.fromarray(render_motif_array(culture, seed, resolution), "RGB")


def motif_seed(seed: int, culture: str, index: int) -> np.random.Generator:
    """The generator for image ``index`` of ``culture`` in a data set made with ``seed``."""
    return np.random.default_rng([seed, CULTURES.index(culture), index])
