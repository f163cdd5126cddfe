"""ImageFolder loading and the motifs data set writer, as a lab would use them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from culturelab.generation.data import DatasetError, load_image_folder, motif_images, write_motif_dataset


def make_folder(root, counts: dict[str, int], size=(40, 36)):
    for culture, n in counts.items():
        (root / culture).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", size, (i * 40, 100, 200)).save(root / culture / f"{i}.png")
    return root


def test_write_then_load_motifs_folder(tmp_path):
    written = write_motif_dataset(tmp_path / "motifs", 2, 32, seed=1)
    assert len(written) == 10 and (tmp_path / "motifs/ice_ray/ice_ray-00001.png").exists()
    data = load_image_folder(tmp_path / "motifs", 32)
    assert data.cultures == sorted(["seigaiha", "girih", "kente", "meander", "ice_ray"])
    assert data.images.shape == (10, 3, 32, 32) and data.images.dtype == torch.uint8
    # The files hold exactly what is rendered in memory.
    in_memory = motif_images(2, 32, seed=1)
    girih_file = data.images[data.labels == data.cultures.index("girih")][0]
    assert torch.equal(girih_file, in_memory.images[in_memory.labels == in_memory.cultures.index("girih")][0])


def test_non_square_images_are_centre_cropped_and_resized(tmp_path):
    data = load_image_folder(make_folder(tmp_path, {"a": 2, "b": 1}, size=(50, 40)), 32)
    assert data.images.shape == (3, 3, 32, 32) and data.labels.tolist() == [0, 0, 1]
    assert np.allclose(data.images[1, :, 0, 0].numpy(), [40, 100, 200], atol=1)


def test_images_smaller_than_the_resolution_are_refused_not_enlarged(tmp_path):
    make_folder(tmp_path, {"a": 2, "b": 2}, size=(50, 20))
    with pytest.raises(DatasetError, match=r"image .*/a/0\.png is 20 px on its shorter side, below 32 px"):
        load_image_folder(tmp_path, 32)


def test_missing_folder(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_image_folder(tmp_path / "nope", 32)


def test_fewer_than_two_cultures(tmp_path):
    with pytest.raises(DatasetError, match="at least two culture sub-folders"):
        load_image_folder(make_folder(tmp_path, {"only": 2}), 32)


def test_empty_culture_folder_is_named(tmp_path):
    make_folder(tmp_path, {"a": 2})
    (tmp_path / "b").mkdir()
    with pytest.raises(DatasetError, match=r"culture folder .*/b has no images"):
        load_image_folder(tmp_path, 32)


def test_unreadable_image_is_named(tmp_path):
    make_folder(tmp_path, {"a": 1, "b": 1})
    (tmp_path / "b" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match=r"cannot read image .*/b/broken\.png"):
        load_image_folder(tmp_path, 32)


def test_missing_culture_for_a_model(tmp_path):
    make_folder(tmp_path, {"a": 1, "b": 1})
    with pytest.raises(DatasetError, match="no sub-folder for culture"):
        load_image_folder(tmp_path, 32, cultures=["a", "c"])
