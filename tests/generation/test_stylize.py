"""`culturelab generate stylize` as a researcher runs it, from a working folder of their own: the content x
culture grid as a Contract 1 set on success; one line, exit 2 and no set at all on bad input."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from clikit import one_line_error
from PIL import Image

from culturelab.generation.checkpoint import sha256_file
from culturelab.generation.content_images import draw_scene
from culturelab.generation.motifs import render_motif
from culturelab.generation.nst import NSTConfig
from culturelab.generation.stylize import StylizeError, check_memory, match_colors, memory_needed
from culturelab.generation.vgg import IMAGENET_FILE, _random_body
from culturelab.platform.cli import main
from culturelab.platform.stimuli import Manifest

FAST = ["--size", "32", "--steps", "3", "--features", "random", "--device", "cpu"]


def run(*args):
    return CliRunner().invoke(main, ["generate", "stylize", *map(str, args)], catch_exceptions=False)



@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A researcher's folder: two content images and a style image of their own."""
    torch.set_num_threads(1)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "photos").mkdir()
    draw_scene("house", 48).save("photos/house.png")
    draw_scene("fish", 40).convert("RGB").save("photos/Fish Photo.jpg")
    render_motif("kente", 3, 64).save("kente-cloth.png")
    return tmp_path


def test_stylize_writes_the_content_by_culture_grid_as_a_stimulus_set(workdir):
    result = run(
        "--content",
        "photos",
        "--styles",
        "girih=motif",
        "--styles",
        "kente=kente-cloth.png",
        "--out",
        "set",
        "--seed",
        5,
        "--motifs-per-culture",
        2,
        *FAST,
    )
    assert result.exit_code == 0, result.output
    assert "wrote 4 stimuli (2 cultures) to set" in result.output
    manifest = json.loads((workdir / "set" / "manifest.json").read_text())
    Manifest.model_validate(manifest)  # the platform's own Contract 1 check
    assert manifest["cultures"] == ["girih", "kente"]
    grid = {(s["content"], s["culture"]): s for s in manifest["stimuli"]}
    assert sorted(grid) == [("fish-photo", "girih"), ("fish-photo", "kente"), ("house", "girih"), ("house", "kente")]
    for (content, culture), entry in grid.items():
        assert entry["id"] == f"{content}-{culture}" and entry["method"] == "nst" and entry["mix"] == {culture: 1.0}
        with Image.open(workdir / "set" / entry["file"]) as im:
            assert im.size == (32, 32) and im.mode == "RGB"
    assert [s["seed"] for s in manifest["stimuli"]] == [5, 6, 7, 8]
    generator = manifest["generator"]
    assert generator["method"] == "nst" and generator["features"] == {
        "kind": "random",
        "file": None,
        "sha256": None,
        "seed": 5,
    }
    assert generator["config"]["steps"] == 3 and generator["config"]["beta"] == 1e8
    assert generator["styles"]["kente"] == [
        {"file": "kente-cloth.png", "sha256": sha256_file(workdir / "kente-cloth.png")}
    ]
    assert len(generator["styles"]["girih"]) == 2
    with Image.open(workdir / "set" / "contact-sheet.png") as sheet:  # 160 px cells, 4 px gaps, 18 px titles
        assert sheet.size == (3 * 164 + 4, 18 + 2 * 164 + 4)  # columns: content, girih, kente; rows: 2 contents


def test_stylize_is_deterministic_for_a_seed_and_styles_change_the_images(workdir):
    args = ["--content", "photos/house.png", "--styles", "meander=motif", "--styles", "seigaiha=motif", *FAST]
    assert run(*args, "--out", "a").exit_code == 0
    assert run(*args, "--out", "b", "--batch-size", 1).exit_code == 0
    a = json.loads((workdir / "a" / "manifest.json").read_text())["stimuli"]
    b = json.loads((workdir / "b" / "manifest.json").read_text())["stimuli"]
    assert [s["sha256"] for s in a] == [s["sha256"] for s in b]
    pixels = [np.asarray(Image.open(workdir / "a" / s["file"]), dtype=float) for s in a]
    assert np.abs(pixels[0] - pixels[1]).mean() > 1.0  # two cultures, two different images


def test_a_pyramid_stylises_coarse_to_fine_and_ends_at_the_size_asked_for(workdir):
    args = ["--content", "photos/house.png", "--styles", "kente=motif", *FAST, "--size", 64]
    assert run(*args, "--out", "flat").exit_code == 0
    result = run(*args, "--out", "pyramid", "--pyramid", 2)
    assert result.exit_code == 0, result.output
    manifest = json.loads((workdir / "pyramid" / "manifest.json").read_text())
    assert manifest["generator"]["config"]["pyramid"] == [32, 64] and manifest["generator"]["config"]["size"] == 64
    entry = manifest["stimuli"][0]
    assert (entry["width"], entry["height"]) == (64, 64)
    flat = json.loads((workdir / "flat" / "manifest.json").read_text())
    assert flat["generator"]["config"]["pyramid"] == [64]
    assert flat["stimuli"][0]["sha256"] != entry["sha256"]  # the 32 px level's result is the 64 px level's start


def test_match_colors_gives_the_content_the_styles_colour_mean_and_covariance():
    rng = np.random.default_rng(0)
    content = (rng.normal([120, 90, 60], [12, 20, 8], (64, 64, 3))).clip(0, 255).astype(np.uint8)
    style = (rng.multivariate_normal([100, 140, 160], [[90, 40, 0], [40, 120, 30], [0, 30, 60]], (32, 32))).clip(0, 255)
    out = match_colors(content, [style[:16].astype(np.uint8), style[16:].astype(np.uint8)]) * 255
    flat_style = style.astype(np.uint8).reshape(-1, 3).astype(float)
    np.testing.assert_allclose(out.reshape(-1, 3).mean(0), flat_style.mean(0), atol=0.05)
    np.testing.assert_allclose(
        np.cov(out.reshape(-1, 3), rowvar=False), np.cov(flat_style, rowvar=False), rtol=0.01, atol=0.3
    )
    # a linear map of colours: the content's structure (here, which pixels are darker) is kept
    grey = content.astype(float) @ [0.3, 0.6, 0.1]
    assert np.corrcoef(grey.ravel(), (out @ [0.3, 0.6, 0.1]).ravel())[0, 1] > 0.5


def test_color_match_is_recorded_and_recolours_the_content(workdir):
    args = ["--content", "photos/house.png", "--styles", "kente=kente-cloth.png", *FAST, "--steps", 1]
    assert run(*args, "--out", "plain").exit_code == 0
    assert run(*args, "--out", "matched", "--color-match").exit_code == 0
    plain, matched = (json.loads((workdir / d / "manifest.json").read_text()) for d in ("plain", "matched"))
    assert (
        plain["generator"]["config"]["color_match"] is False and matched["generator"]["config"]["color_match"] is True
    )
    assert plain["generator"]["config"]["precision"] == "fp32"
    assert run(*args, "--out", "half", "--precision", "bf16").exit_code == 0
    assert json.loads((workdir / "half" / "manifest.json").read_text())["generator"]["config"]["precision"] == "bf16"
    kente = np.asarray(Image.open("kente-cloth.png").convert("RGB"), dtype=float).reshape(-1, 3).mean(0)
    means = [
        np.asarray(Image.open(workdir / d / "images" / "house-kente.png"), dtype=float).reshape(-1, 3).mean(0)
        for d in ("plain", "matched")
    ]
    assert np.abs(means[1] - kente).sum() < np.abs(means[0] - kente).sum()


def test_stylize_takes_the_built_in_content_images_by_default(workdir):
    result = run(
        "--styles", "ice_ray=motif", "--out", "set", "--steps", "1", *FAST[:2], *FAST[4:], "--motifs-per-culture", 1
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((workdir / "set" / "manifest.json").read_text())
    assert [s["content"] for s in manifest["stimuli"]] == ["boat", "fish", "flower", "house", "tree"]


def test_imagenet_features_are_recorded_with_their_file_sha256(workdir):
    weights = workdir / IMAGENET_FILE
    torch.save({f"features.{k}": v for k, v in _random_body(1).state_dict().items()}, weights)
    result = run(
        "--content",
        "photos/house.png",
        "--styles",
        "girih=motif",
        "--out",
        "set",
        "--size",
        32,
        "--steps",
        2,
        "--features",
        "imagenet",
        "--vgg-weights",
        weights,
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.output
    generator = json.loads((workdir / "set" / "manifest.json").read_text())["generator"]
    assert generator["features"]["sha256"] == generator["checkpoint_sha256"] == sha256_file(weights)
    assert generator["features"]["kind"] == "imagenet" and generator["config"]["beta"] == 1e6


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (
            ["--content", "photos/tiny.png", "--styles", "girih=motif"],
            ["photos/tiny.png is 20x20 px", "at least 32 px"],
        ),
        (
            ["--content", "photos/broken.png", "--styles", "girih=motif"],
            ["cannot read content image photos/broken.png"],
        ),
        (["--content", "nowhere", "--styles", "girih=motif"], ["content image nowhere does not exist"]),
        (["--content", "photos/house.png", "--styles", "aztec=motif"], ["unknown culture 'aztec'"]),
        (["--content", "photos/house.png", "--styles", "girih=missing.png"], ["style image missing.png"]),
        (["--content", "photos/house.png", "--styles", "girih"], ["not CULTURE=FILE or CULTURE=motif"]),
        (
            ["--content", "photos/house.png", "--styles", "girih=motif", "--size", 200000],
            ["--size 200000 with --batch-size 1 needs about", "would fit"],  # one pair: a batch of 1
        ),
        (
            ["--content", "photos/house.png", "--styles", "girih=motif", "--style-layers", "conv9_1"],
            ["unknown VGG19 layer(s) conv9_1"],
        ),
        (["--content", "photos/house.png", "--styles", "girih=motif", "--style-weights", "1,2"], ["2 style weights"]),
        (
            ["--content", "photos/house.png", "--styles", "girih=motif", "--size", 64, "--pyramid", 3],
            ["--pyramid 3 with --size 64 would start at 16 px", "at least 32 px"],
        ),
        (
            ["--content", "photos/house.png", "--styles", "girih=motif", "--pyramid", 0],
            ["--pyramid must be at least 1"],
        ),
        # nan and inf weights made black images and a manifest that is not JSON; negative ones push away.
        (
            ["--content", "photos/house.png", "--styles", "girih=motif", "--style-weights", "nan,1,1,1,1"],
            ["style weight of conv1_1 must be a finite number >= 0"],
        ),
        (
            ["--content", "photos/house.png", "--styles", "girih=motif", "--style-weights", "-1,1,1,1,1"],
            ["style weight of conv1_1 must be a finite number >= 0"],
        ),
        (["--content", "photos/house.png", "--styles", "girih=motif", "--alpha", "nan"], ["--alpha", "not a finite"]),
        (["--content", "photos/house.png", "--styles", "girih=motif", "--beta", "inf"], ["--beta", "not a finite"]),
        (["--content", "photos/house.png", "--styles", "girih=motif", "--seed", 2**64], ["--seed"]),
        (["--content", "photos/house.png", "--styles", "girih=motif", "--name", "n" * 129], ["--name", "1 to 128"]),
        (["--content", "photos/house.png", "--styles", "girih=motif", "--out", "."], ["working folder"]),
    ],
)
def test_bad_input_is_one_line_exit_2_and_leaves_no_set(workdir, args, fragments):
    Image.new("RGB", (20, 20)).save("photos/tiny.png")
    (workdir / "photos" / "broken.png").write_text("not an image")
    result = run(*FAST, "--out", "set", *args)  # options given later win, so args can override FAST
    one_line_error(result, *fragments)
    assert not (workdir / "set").exists()
    assert not [p for p in workdir.iterdir() if p.name.startswith(".set")]


def test_missing_imagenet_weights_name_the_file_and_where_to_put_it(workdir, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(workdir / "hub"))
    result = run("--content", "photos/house.png", "--styles", "girih=motif", "--out", "set", "--size", 32)
    one_line_error(result, IMAGENET_FILE, str(workdir / "hub" / "checkpoints" / IMAGENET_FILE), "--vgg-weights")
    assert not (workdir / "set").exists()


def test_an_existing_set_is_kept_unless_overwrite(workdir):
    (workdir / "set").mkdir()
    (workdir / "set" / "keep.txt").write_text("mine")
    one_line_error(
        run("--content", "photos/house.png", "--styles", "girih=motif", "--out", "set", *FAST), "--overwrite"
    )
    assert (workdir / "set" / "keep.txt").read_text() == "mine"


def test_the_memory_check_names_a_size_that_fits():
    cfg = NSTConfig()
    available = 3 * 2**30
    with pytest.raises(StylizeError, match=r"--size 1024 with --batch-size 2 needs about .* GiB") as exc:
        check_memory(1024, 2, cfg, torch.device("cpu"), available)
    fits = int(str(exc.value).split("--size ")[2].split()[0])
    assert memory_needed(fits, 2, cfg) <= 0.9 * available < memory_needed(fits + 32, 2, cfg)
    check_memory(fits, 2, cfg, torch.device("cpu"), available)


def test_a_run_stopped_with_sigterm_leaves_no_half_written_set(workdir):
    """`timeout` and job schedulers stop a run with SIGTERM, which Python does not unwind by itself."""
    run_ = subprocess.Popen(
        [sys.executable, "-m", "culturelab.platform.cli", "generate", "stylize", *FAST, "--steps", "100000",
         "--content", "photos", "--styles", "girih=motif", "--out", "set"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not list(workdir.glob(".set.*")):  # the staging folder: the set is being written
        assert run_.poll() is None and time.monotonic() < deadline, "stylize never started writing"
        time.sleep(0.1)
    run_.send_signal(signal.SIGTERM)
    assert run_.wait(60) == 128 + signal.SIGTERM
    assert not (workdir / "set").exists() and not list(workdir.glob(".set*"))
