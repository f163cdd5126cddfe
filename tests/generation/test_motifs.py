"""The built-in motifs data set: sizes, determinism, and five visibly different families."""

from __future__ import annotations

import numpy as np
import pytest

from culturelab.generation.motifs import CULTURES, motif_seed, render_motif, render_motif_array


@pytest.mark.parametrize("culture", CULTURES)
@pytest.mark.parametrize("resolution", [32, 64, 256])
def test_render_size_and_mode(culture, resolution):
    image = render_motif(culture, 7, resolution)
    assert image.mode == "RGB" and image.size == (resolution, resolution)
    array = np.asarray(image)
    assert array.std() > 10  # a pattern, not a flat colour


@pytest.mark.parametrize("culture", CULTURES)
def test_same_seed_same_image_other_seed_other_image(culture):
    a = render_motif_array(culture, 3, 64)
    assert np.array_equal(a, render_motif_array(culture, 3, 64))
    assert not np.array_equal(a, render_motif_array(culture, 4, 64))


def test_dataset_seeds_are_independent_per_culture_and_index():
    a = render_motif_array("girih", motif_seed(0, "girih", 1), 32)
    assert np.array_equal(a, render_motif_array("girih", motif_seed(0, "girih", 1), 32))
    assert not np.array_equal(a, render_motif_array("girih", motif_seed(0, "girih", 2), 32))
    assert not np.array_equal(a, render_motif_array("girih", motif_seed(1, "girih", 1), 32))


def test_families_differ_more_between_than_within():
    """A nearest-centroid rule on simple colour/edge statistics already separates the five families."""

    def stats(array):
        gray = array.mean(axis=2)
        return np.array(
            [
                np.abs(np.diff(gray, axis=0)).mean(),
                np.abs(np.diff(gray, axis=1)).mean(),
                *array.reshape(-1, 3).std(axis=0),
                (np.abs(np.diff(gray, axis=1)) > 40).mean() * 100,
            ]
        )

    feats = {c: np.stack([stats(render_motif_array(c, motif_seed(0, c, i), 64)) for i in range(12)]) for c in CULTURES}
    train = {c: f[:8].mean(axis=0) for c, f in feats.items()}
    scale = np.concatenate([f for f in feats.values()]).std(axis=0)
    correct = sum(
        min(CULTURES, key=lambda k: np.linalg.norm((x - train[k]) / scale)) == c
        for c, f in feats.items()
        for x in f[8:]
    )
    assert correct / (4 * len(CULTURES)) >= 0.6


def test_bad_culture_and_resolution():
    with pytest.raises(ValueError, match="unknown culture"):
        render_motif("tartan", 0, 64)
    with pytest.raises(ValueError, match="resolution"):
        render_motif("kente", 0, 16)
