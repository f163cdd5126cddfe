"""Contract 1 (DESIGN.md): the stimulus set folder and manifest the sampler writes."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import pytest
from PIL import Image

from culturelab.generation.checkpoint import load_generator
from culturelab.generation.sample import Condition, OutputError, parse_mix, sweep, write_stimulus_set

ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


def check_contract_1(folder) -> dict:
    """Everything Contract 1 promises about a set, checked the way the platform's import does."""
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["schema"] == "culturelab.stimuli/1"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", manifest["created_at"])
    assert {"method", "checkpoint_sha256", "config", "version"} <= manifest["generator"].keys()
    cultures = manifest["cultures"]
    ids = [s["id"] for s in manifest["stimuli"]]
    assert len(ids) == len(set(ids))
    for s in manifest["stimuli"]:
        assert ID.fullmatch(s["id"]), s["id"]
        data = (folder / s["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == s["sha256"]
        with Image.open(folder / s["file"]) as im:
            assert im.format == "PNG" and im.mode == "RGB" and im.size == (s["width"], s["height"])
        assert s["culture"] in cultures and set(s["mix"]) <= set(cultures)
        assert sum(s["mix"].values()) == pytest.approx(1.0)
        top = max(s["mix"].values())
        assert s["culture"] == next(c for c in cultures if s["mix"].get(c, 0) == top)
        assert s["method"] == "cgan" and isinstance(s["seed"], int) and s["content"] is None
    return manifest


def pure(cultures):
    return [Condition({c: 1.0}) for c in cultures]


def test_set_is_contract_1(tmp_path, tiny_generator):
    g, _ = load_generator(tiny_generator)
    out = write_stimulus_set(g, tmp_path / "set", pure(g.config.cultures), 3, seed=5, checkpoint_sha256="ab")
    manifest = check_contract_1(out)
    assert len(manifest["stimuli"]) == 3 * len(g.config.cultures)
    assert manifest["stimuli"][0]["id"] == "seigaiha-0000" and manifest["stimuli"][0]["seed"] == 5
    assert {s["id"] for s in manifest["stimuli"]} >= {"ice-ray-0002"}
    sheet = Image.open(out / "contact-sheet.png")
    assert sheet.size == (3 * 34, len(g.config.cultures) * 34)  # rows = cultures, 32 px + 2 px border
    assert [p.name for p in tmp_path.iterdir()] == ["set"]  # the temporary folder was renamed into place


def test_same_seed_gives_byte_identical_set(tmp_path, tiny_generator, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    g, _ = load_generator(tiny_generator)
    a = write_stimulus_set(g, tmp_path / "a", pure(g.config.cultures), 2, seed=9)
    b = write_stimulus_set(g, tmp_path / "b", pure(g.config.cultures), 2, seed=9)
    c = write_stimulus_set(g, tmp_path / "c", pure(g.config.cultures), 2, seed=10)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    manifest_a, manifest_b = (a / "manifest.json").read_text(), (b / "manifest.json").read_text()
    for name in files:
        data_a, data_b = (a / name).read_bytes(), (b / name).read_bytes()
        if name.name == "manifest.json":
            # the manifest names its own folder; everything else is identical
            assert manifest_a.replace('"name": "a"', '"name": "b"') == manifest_b
        else:
            assert data_a == data_b, name
    assert json.loads(manifest_a)["created_at"] == "2023-11-14T22:13:20Z"
    assert (a / "images/girih-0000.png").read_bytes() != (c / "images/girih-0000.png").read_bytes()


def test_one_stimulus_can_be_remade_from_its_seed(tmp_path, tiny_generator):
    g, _ = load_generator(tiny_generator)
    big = json.loads(
        (write_stimulus_set(g, tmp_path / "a", [Condition({"kente": 1.0})], 4) / "manifest.json").read_text()
    )
    entry = big["stimuli"][3]
    one = write_stimulus_set(g, tmp_path / "b", [Condition({"kente": 1.0})], 1, seed=entry["seed"])
    assert json.loads((one / "manifest.json").read_text())["stimuli"][0]["sha256"] == entry["sha256"]


def test_mix_and_sweep_manifest(tmp_path, tiny_generator):
    g, _ = load_generator(tiny_generator)
    cultures = list(g.config.cultures)
    conditions = [parse_mix("kente=1,girih=1", cultures)] + sweep("girih", "meander", 3, cultures)
    manifest = check_contract_1(write_stimulus_set(g, tmp_path / "set", conditions, 2))
    by_id = {s["id"]: s for s in manifest["stimuli"]}
    tie = by_id["mix-girih50-kente50-0000"]
    assert tie["mix"] == {"girih": 0.5, "kente": 0.5} and tie["culture"] == "girih"  # tie: earlier culture
    assert by_id["girih-0001"]["mix"] == {"girih": 1.0}
    assert by_id["mix-girih50-meander50-0000"]["culture"] == "girih"
    assert by_id["meander-0000"]["mix"] == {"meander": 1.0}
    assert len(manifest["stimuli"]) == 2 * 4
    image_mixed = (tmp_path / "set" / tie["file"]).read_bytes()
    assert image_mixed != (tmp_path / "set/images/girih-0000.png").read_bytes()


def test_parse_mix_errors():
    cultures = ["girih", "kente"]
    assert parse_mix("girih=3, kente=1", cultures).mix == {"girih": 0.75, "kente": 0.25}
    for text, message in [
        ("tartan=1", "unknown culture 'tartan'"),
        ("girih=0,kente=0", "sum to a positive"),
        ("girih=-1,kente=2", ">= 0"),
        ("girih", "CULTURE=WEIGHT"),
        ("girih=x", "not a number"),
        ("girih=nan", ">= 0"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            parse_mix(text, cultures)
    with pytest.raises(ValueError, match="two different"):
        sweep("girih", "girih", 3, cultures)


def test_existing_folder_is_not_touched_and_failures_leave_nothing(tmp_path, tiny_generator):
    g, _ = load_generator(tiny_generator)
    out = tmp_path / "set"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(OutputError, match="not empty"):
        write_stimulus_set(g, out, pure(g.config.cultures), 1)
    # --overwrite replaces a stimulus set, never a folder of other files.
    with pytest.raises(OutputError, match="not a stimulus set"):
        write_stimulus_set(g, out, pure(g.config.cultures), 1, overwrite=True)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    with pytest.raises(ValueError, match="same stimulus ids"):
        write_stimulus_set(g, tmp_path / "dup", [Condition({"girih": 1.0})] * 2, 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]
    made = tmp_path / "made"
    write_stimulus_set(g, made, pure(g.config.cultures), 1)
    assert made.stat().st_mode & 0o777 == 0o777 & ~current_umask()  # not mkdtemp's private 0700
    (made / "old.png").write_bytes(b"")
    write_stimulus_set(g, made, pure(g.config.cultures), 2, overwrite=True)
    assert not (made / "old.png").exists() and (made / "manifest.json").exists()


def current_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def test_the_working_folder_is_never_the_set_nor_replaced(tmp_path, tiny_generator, monkeypatch):
    g, _ = load_generator(tiny_generator)
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    (work / "thesis.tex").write_text("mine")
    (work / "manifest.json").write_text("{}")  # even a folder that looks like a set
    monkeypatch.chdir(work / "sub")
    for out in (Path(".."), Path("."), tmp_path):
        for overwrite in (False, True):
            with pytest.raises(OutputError, match="working folder"):
                write_stimulus_set(g, out, pure(g.config.cultures), 1, overwrite=overwrite)
    assert sorted(p.name for p in work.iterdir()) == ["manifest.json", "sub", "thesis.tex"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]
