"""`culturelab generate evaluate --set ...`: stimulus sets of any method judged side by side, from a researcher's
own folder. The figures are checked on sets whose answer is known (the content images themselves, content
images under the wrong id, real motifs under their own and under the wrong culture)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from culturelab.generation.checkpoint import PACKAGED
from culturelab.generation.content_grid import load_contents
from culturelab.generation.content_images import BUILTIN_CONTENT_DIR, draw_scene
from culturelab.generation.motifs import CULTURES, motif_seed, render_motif_array
from culturelab.generation.set_evaluation import _classifier_file
from culturelab.platform.cli import main
from culturelab.platform.stimuli import read_manifest, verify_files

FAST = ["--per-culture", "150", "--classifier-dir", "classifiers", "--device", "cpu"]


def evaluate(*args):
    return CliRunner().invoke(main, ["generate", "evaluate", *map(str, args)], catch_exceptions=False)


def write_set(folder, items, method, contents=None):
    """A Contract 1 set of ``items`` = [(id, rgb, culture, content id or None)]."""
    (folder / "images").mkdir(parents=True)
    stimuli = []
    for stimulus_id, rgb, culture, content in items:
        Image.fromarray(rgb).save(folder / "images" / f"{stimulus_id}.png")
        data = (folder / "images" / f"{stimulus_id}.png").read_bytes()
        stimuli.append(
            {
                "id": stimulus_id,
                "file": f"images/{stimulus_id}.png",
                "sha256": hashlib.sha256(data).hexdigest(),
                "width": rgb.shape[1],
                "height": rgb.shape[0],
                "culture": culture,
                "mix": {culture: 1.0},
                "method": method,
                "seed": None,
                "content": content,
            }
        )
    cultures = list(dict.fromkeys(c for _, _, c, _ in items))
    generator = {"method": method, "checkpoint_sha256": None, "config": {}, "version": "0.1.0", "seed": 0}
    if contents is not None:
        generator["contents"] = contents
    manifest = {
        "schema": "culturelab.stimuli/1",
        "name": folder.name,
        "created_at": "2026-11-28T00:00:00Z",
        "cultures": cultures,
        "generator": generator,
        "stimuli": stimuli,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    verify_files(folder, read_manifest(folder)[0])  # the helper writes valid Contract 1 sets
    return folder


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def motif_set(folder, shift):
    """Real motifs (seeds the evaluation never renders), labelled with the culture ``shift`` places on."""
    items = []
    for k, culture in enumerate(CULTURES):
        for i in range(6):
            rgb = render_motif_array(culture, motif_seed(77, culture, i), 32)
            items.append((f"{culture}-{i}", rgb, CULTURES[(k + shift) % len(CULTURES)], None))
    return write_set(folder, items, "cgan")


def content_set(folder, swap: bool):
    """The built-in content images at 32 px as the stimuli themselves; with ``swap`` each under another's id."""
    pictures = load_contents([BUILTIN_CONTENT_DIR], 32)
    ids = [p.id for p in pictures]
    items = []
    for n, picture in enumerate(pictures):
        named = ids[(n + 1) % len(ids)] if swap else picture.id
        for culture in ("girih", "kente"):
            items.append((f"{named}-{culture}", picture.rgb, culture, named))
    return write_set(folder, items, "nst", {p.id: p.source for p in pictures})


def test_sets_of_every_kind_are_judged_side_by_side(workdir):
    motif_set(workdir / "right", 0)
    motif_set(workdir / "wrong", 1)
    content_set(workdir / "same", swap=False)
    content_set(workdir / "swapped", swap=True)
    result = evaluate(
        *[a for s in ("right", "wrong", "same", "swapped") for a in ("--set", s)], *FAST, "--out", "compare.json"
    )
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if line.startswith("| ") and "culture acc." not in line]
    assert [row.split("|")[1].strip() for row in rows] == ["right", "wrong", "same", "swapped"]

    sets = {r["set"]: r for r in json.loads((workdir / "compare.json").read_text())["sets"]}
    right, wrong = sets["right"]["summary"], sets["wrong"]["summary"]
    assert right["culture_accuracy"] >= 0.7 and wrong["culture_accuracy"] <= 0.3
    assert right["chance"] == pytest.approx(0.2)
    assert right["content_ssim"] is None and sets["right"]["per_culture"]["girih"]["n"] == 6
    # the same images, labelled truly or not, are equally varied: diversity does not depend on labels' truth
    assert 0.5 < right["diversity_ratio"] < 2.0

    same, swapped = sets["same"]["summary"], sets["swapped"]["summary"]
    assert same["content_ssim"] == pytest.approx(1.0) and same["content_feature_distance"] < 1e-4
    assert same["content_identification"] == 1.0 and same["content_chance"] == pytest.approx(0.2)
    assert swapped["content_identification"] == 0.0 and swapped["content_ssim"] < 0.8
    assert swapped["content_feature_distance"] > 0.1
    assert set(sets["same"]["per_culture"]) == {"girih", "kente"}
    # one classifier for the 32 px motifs, trained once and kept where it was asked to be
    assert [p.name for p in (workdir / "classifiers").glob("*.safetensors")] == [
        "culture.classifier-motifs-s0-n150-32px.safetensors"
    ]


def test_content_images_of_the_users_own_are_matched_by_id_and_checked(workdir):
    (workdir / "photos").mkdir()
    draw_scene("house", 40).save("photos/porch.png")
    porch = load_contents([workdir / "photos"], 32)[0]
    write_set(workdir / "mine", [("porch-girih", porch.rgb, "girih", "porch")], "nst", {"porch": porch.source})
    assert evaluate("--set", "mine", "--content", "photos", *FAST).exit_code == 0
    draw_scene("house", 44).save("photos/porch.png")  # not the image the set was made from
    result = evaluate("--set", "mine", "--content", "photos", *FAST)
    assert result.exit_code == 2 and "differs from the one set" in result.output
    result = evaluate("--set", "mine", *FAST)  # the built-in content has no porch
    assert result.exit_code == 2 and "pass the content images with --content" in result.output


def _set_and_data_without_its_culture(folder):
    write_set(folder, [("a", np.zeros((32, 32, 3), np.uint8), "viking", None)], "cgan")
    for culture in ("girih", "kente"):
        (folder.parent / "data" / culture).mkdir(parents=True)
        for i in range(3):
            image = render_motif_array(culture, motif_seed(0, culture, i), 32)
            Image.fromarray(image).save(folder.parent / "data" / culture / f"{i}.png")


@pytest.mark.parametrize(
    "make, args, message",
    [
        (lambda d: d.mkdir(), [], "is not a stimulus set"),
        (lambda d: None, ["--checkpoint", "x.safetensors"], "leave out --checkpoint"),
        (
            lambda d: write_set(d, [("a", np.zeros((32, 32, 3), np.uint8), "viking", None)], "cgan"),
            [],
            "viking are not built-in motifs",
        ),
        (_set_and_data_without_its_culture, ["--data", "data"],
         "data folder data has no sub-folder for culture(s) viking"),
        (lambda d: write_set(d, [("a", np.zeros((32, 32, 3), np.uint8), "girih", None)], "cgan"),
         ["--data", "nowhere"], "data folder nowhere does not exist"),
        (
            lambda d: write_set(
                d,
                [
                    ("a", np.zeros((32, 32, 3), np.uint8), "girih", None),
                    ("b", np.zeros((40, 40, 3), np.uint8), "kente", None),
                ],
                "cgan",
            ),
            [],
            "mixes image sizes",
        ),
    ],
)
def test_bad_sets_are_one_line_and_exit_2(workdir, make, args, message):
    make(workdir / "set")
    result = evaluate("--set", "set", *args, *FAST)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.output
    assert not (workdir / "classifiers").exists() or not any((workdir / "classifiers").iterdir())


def test_a_classifier_shipped_for_the_same_data_and_size_is_reused(tmp_path):
    path = _classifier_file("motifs-s0-n500", 128, list(CULTURES), tmp_path)
    assert path.parent == PACKAGED and path.name.endswith("classifier-motifs-s0-n500-128px.safetensors")
    assert _classifier_file("motifs-s0-n500", 256, list(CULTURES), tmp_path).parent == tmp_path
    assert _classifier_file("motifs-s0-n500", 128, ["girih", "kente"], tmp_path).parent == tmp_path
