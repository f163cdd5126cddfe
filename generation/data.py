"""Training images: the built-in motifs set, or an ImageFolder (one sub-folder of images per culture).

Images are small, so a whole set is held in memory as one uint8 tensor (N, 3, R, R); a training step
then indexes a batch out of it instead of decoding files, which keeps a 2-core CPU busy with the model.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from culturelab.generation.motifs import CULTURES, motif_seed, render_motif, render_motif_array

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


class DatasetError(ValueError):
    """A data set that cannot be trained or evaluated on; the message names the folder or file."""


def min_images_per_culture(resolution: int) -> int:
    """The fewest images per culture a GAN is trained on at ``resolution``: 2 up to 32 px, then resolution / 16
    (8 at 128 px, 16 at 256). A floor against mistakes (a wrong folder, a one-image culture), not a promise:
    with fewer images than this D memorises them almost at once, even with DiffAugment."""
    return max(2, resolution // 16)


def check_enough_images(counts: dict[str, int], resolution: int, source: str) -> None:
    """Raise DatasetError naming the first culture of ``counts`` with too few images for ``resolution``."""
    need = min_images_per_culture(resolution)
    for culture, n in counts.items():
        if n == 1:
            raise DatasetError(f"culture {culture} of {source} has only one image; a culture needs at least {need}")
        if n < need:
            raise DatasetError(
                f"{source} has {n} images of culture {culture}; training at {resolution} px needs at least {need} "
                "per culture"
            )


@dataclass
class ImageSet:
    images: torch.Tensor  # uint8 (N, 3, R, R)
    labels: torch.Tensor  # int64 (N,)
    cultures: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def resolution(self) -> int:
        return int(self.images.shape[-1])


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1], the range of G's tanh output."""
    return images.float().div_(127.5).sub_(1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 [0, 255], rounding to nearest."""
    return images.float().add(1.0).mul(127.5).round_().clamp_(0, 255).to(torch.uint8)


def motif_images(
    per_culture: int, resolution: int, seed: int = 0, progress: bool = False, workers: int | None = None
) -> ImageSet:
    """Render ``per_culture`` images of each built-in culture straight into memory.

    Large sets are rendered by ``workers`` processes (default: one per CPU core for 1,000 images or more;
    10,000 motifs at 128 px take ~3 minutes on one core). Each image is a pure function of its culture,
    seed and resolution, so the set is the same whatever the number of workers.
    """
    n = per_culture * len(CULTURES)
    images = np.empty((n, resolution, resolution, 3), dtype=np.uint8)
    labels = np.repeat(np.arange(len(CULTURES)), per_culture)
    jobs = [(c, motif_seed(seed, c, i)) for c in CULTURES for i in range(per_culture)]
    workers = workers or (os.cpu_count() or 1 if n >= 1000 else 1)
    bar = tqdm(total=n, desc="render motifs", disable=not progress, leave=False)
    if workers == 1:
        for k, (culture, motif_seed_k) in enumerate(jobs):
            images[k] = render_motif_array(culture, motif_seed_k, resolution)
            bar.update()
    else:
        # Forked, as torch's DataLoader workers are (the children run only numpy and PIL, never torch's OpenMP);
        # spawned children would re-run a caller's unguarded script. Spawn only where there is no fork.
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        cultures, seeds = zip(*jobs, strict=True)
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            done = pool.map(render_motif_array, cultures, seeds, [resolution] * n, chunksize=max(1, n // (8 * workers)))
            for k, array in enumerate(done):
                images[k] = array
                bar.update()
    bar.close()
    return ImageSet(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(labels), list(CULTURES))


def write_motif_dataset(
    out: Path, per_culture: int, resolution: int, seed: int = 0, progress: bool = False
) -> list[Path]:
    """Write the motifs set as an ImageFolder: ``out/<culture>/<culture>-00000.png``, into a new or empty
    folder (images of another seed or count left beside these would be trained on too)."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DatasetError(f"{out} already exists and is not an empty folder; write the motifs to a new one")
    written = []
    jobs = [(c, i) for c in CULTURES for i in range(per_culture)]
    for culture in CULTURES:
        (out / culture).mkdir(parents=True, exist_ok=True)
    for culture, i in tqdm(jobs, desc="write motifs", disable=not progress):
        path = out / culture / f"{culture}-{i:05d}.png"
        render_motif(culture, motif_seed(seed, culture, i), resolution).save(path)
        written.append(path)
    log.info("wrote %d motif images to %s", len(written), out)
    return written


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _image_side(path: Path) -> int:
    """The shorter side of an image, read from its header only."""
    try:
        with Image.open(path) as im:
            return min(im.size)
    except (UnidentifiedImageError, OSError) as exc:
        raise DatasetError(f"cannot read image {path}: {exc}") from exc


def _load_rgb(path: Path, resolution: int) -> np.ndarray:
    """Decode, centre-crop to a square and resize to ``resolution`` (box filter; images are never enlarged)."""
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise DatasetError(f"cannot read image {path}: {exc}") from exc
    w, h = im.size
    side = min(w, h)
    im = im.crop(((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side))
    if side != resolution:
        im = im.resize((resolution, resolution), Image.Resampling.BOX)
    return np.asarray(im)


def _culture_folders(root: Path) -> list[Path]:
    """An ImageFolder's culture sub-folders, sorted by name (hidden ones skipped)."""
    if not root.is_dir():
        raise DatasetError(f"data folder {root} does not exist")
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def require_cultures(source: str, cultures: Iterable[str]) -> None:
    """Raises DatasetError unless ``source`` (``motifs`` or an ImageFolder path) has each of ``cultures``;
    reads no image, so it can come before any work."""
    have = CULTURES if source == "motifs" else [p.name for p in _culture_folders(Path(source))]
    missing = ", ".join(sorted(set(cultures) - set(have)))
    if missing and source == "motifs":
        raise DatasetError(
            f"culture(s) {missing} are not built-in motifs; give --data an ImageFolder with a folder per culture"
        )
    if missing:
        raise DatasetError(f"data folder {source} has no sub-folder for culture(s) {missing}")


def load_image_folder(
    root: Path,
    resolution: int,
    cultures: Iterable[str] | None = None,
    progress: bool = False,
    train_resolution: int | None = None,
) -> ImageSet:
    """Load ``root/<culture>/*.png|jpg|...`` into memory, one label per sub-folder (sorted by name).

    Raises DatasetError for a missing folder, fewer than two cultures, a culture folder without images, an
    image smaller than ``resolution`` (enlarged, it would teach G blur), or an image that cannot be decoded
    (naming it); sizes are read from the headers before anything is decoded. With ``train_resolution`` (a
    training resolution) it also refuses cultures with too few images for it, before decoding.
    """
    root = Path(root)
    folders = _culture_folders(root)
    if cultures is not None:
        wanted = list(cultures)
        require_cultures(str(root), wanted)
        folders = [root / c for c in wanted]
    if len(folders) < 2:
        raise DatasetError(
            f"data folder {root} needs at least two culture sub-folders (found {len(folders)}); "
            "layout: DATA/<culture>/<image>.png"
        )
    files: list[tuple[Path, int]] = []
    for label, folder in enumerate(folders):
        found = _image_files(folder)
        if not found:
            raise DatasetError(f"culture folder {folder} has no images ({', '.join(IMAGE_SUFFIXES)})")
        files += [(f, label) for f in found]
    if train_resolution is not None:
        counts = {f.name: sum(1 for _, label in files if label == i) for i, f in enumerate(folders)}
        check_enough_images(counts, train_resolution, f"data folder {root}")
    for path, _ in files:
        side = _image_side(path)
        if side < resolution:
            raise DatasetError(f"image {path} is {side} px on its shorter side, below {resolution} px")
    images = np.empty((len(files), resolution, resolution, 3), dtype=np.uint8)
    for k, (path, _) in enumerate(tqdm(files, desc="load images", disable=not progress, leave=False)):
        images[k] = _load_rgb(path, resolution)
    labels = torch.tensor([label for _, label in files], dtype=torch.int64)
    log.info("loaded %d images of %d cultures from %s", len(files), len(folders), root)
    return ImageSet(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), labels, [f.name for f in folders])


def load_data(source: str, resolution: int, per_culture: int, seed: int = 0, progress: bool = False) -> ImageSet:
    """``source`` is ``motifs`` (render ``per_culture`` per culture) or an ImageFolder path."""
    if source == "motifs":
        return motif_images(per_culture, resolution, seed, progress)
    return load_image_folder(Path(source), resolution, progress=progress, train_resolution=resolution)
