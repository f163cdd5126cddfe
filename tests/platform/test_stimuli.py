"""Contract 1 import: every image's sha256 and size are checked; a bad set is refused whole, naming the entry."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from sqlalchemy import func, select

from culturelab.platform.db import session_scope
from culturelab.platform.models import Stimulus, StimulusSet
from culturelab.platform.stimuli import StimulusSetError, import_set

from studykit import make_stimulus_set


def do_import(app, folder: Path):
    with session_scope(app) as session:
        return import_set(session, folder, Path(app.config["MEDIA_DIR"])).id


def n_rows(app):
    with session_scope(app) as session:
        return (
            session.scalar(select(func.count()).select_from(StimulusSet)),
            session.scalar(select(func.count()).select_from(Stimulus)),
        )


def test_import_copies_images_by_hash_and_twice_changes_nothing(app, tmp_path):
    folder = make_stimulus_set(tmp_path / "set")
    first = do_import(app, folder)
    assert do_import(app, folder) == first
    assert n_rows(app) == (1, 24)
    manifest = json.loads((folder / "manifest.json").read_text())
    media = Path(app.config["MEDIA_DIR"])
    assert {p.name for p in media.iterdir()} == {f"{s['sha256']}.png" for s in manifest["stimuli"]}


def test_what_is_served_is_the_pixels_alone_under_bytes_no_manifest_lists(app, tmp_path):
    """A set made by another tool may carry its prompt and seed in PNG text chunks, and a public manifest
    lists each file's sha256 beside its culture: the stored (served) file must give away neither."""
    folder = make_stimulus_set(tmp_path / "set")
    tagged = folder / "images" / "girih-0001.png"
    info = PngInfo()
    info.add_text("parameters", "girih star pattern, seed 1")
    Image.open(tagged).save(tagged, pnginfo=info)
    digest = hashlib.sha256(tagged.read_bytes()).hexdigest()
    edit(folder, lambda m: next(e for e in m["stimuli"] if e["id"] == "girih-0001").update(sha256=digest))
    do_import(app, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    media = Path(app.config["MEDIA_DIR"])
    for entry in manifest["stimuli"]:
        served = (media / f"{entry['sha256']}.png").read_bytes()
        assert hashlib.sha256(served).hexdigest() != entry["sha256"], entry["id"]
        assert b"tEXt" not in served and b"girih" not in served
        with Image.open(folder / entry["file"]) as original, Image.open(io.BytesIO(served)) as image:
            assert image.info == {} and image.tobytes() == original.convert("RGB").tobytes()


def edit(folder: Path, fn) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    fn(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    "damage,message",
    [
        (
            lambda f: (f / "images" / "girih-0002.png").unlink(),
            "stimulus 'girih-0002': file images/girih-0002.png is missing",
        ),
        (
            lambda f: (f / "images" / "kente-0001.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really"),
            "stimulus 'kente-0001': images/kente-0001.png does not match its sha256",
        ),
        (lambda f: edit(f, lambda m: m["stimuli"][3].update(width=99)), "is 16x16, the manifest says 99x16"),
        (
            lambda f: edit(f, lambda m: m["stimuli"][0].update(culture="atlantis")),
            "culture 'atlantis' is not one of cultures",
        ),
        (lambda f: edit(f, lambda m: m["stimuli"][1].update(id="seigaiha-0000")), "id appears twice"),
        (
            lambda f: edit(f, lambda m: m["stimuli"][0].update(mix={"seigaiha": 0.4, "girih": 0.4})),
            "sum to 1",
        ),
        (
            lambda f: edit(f, lambda m: m["stimuli"][0].update(mix={"seigaiha": 0.4, "girih": 0.6})),
            "the largest mix weight is 'girih'",
        ),
        (
            lambda f: edit(f, lambda m: m["stimuli"][0].update(file="../escape.png")),
            "relative path inside the set",
        ),
        (lambda f: edit(f, lambda m: m.update(schema="culturelab.stimuli/9")), "schema"),
        (lambda f: (f / "manifest.json").write_text("{"), "not valid JSON"),
    ],
)
def test_a_bad_set_is_refused_whole_naming_the_entry(app, tmp_path, damage, message):
    folder = make_stimulus_set(tmp_path / "set")
    damage(folder)
    with pytest.raises(StimulusSetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        do_import(app, folder)
    assert n_rows(app) == (0, 0)


def test_a_mix_tie_goes_to_the_earlier_culture(app, tmp_path):
    folder = make_stimulus_set(tmp_path / "set")
    edit(folder, lambda m: m["stimuli"][0].update(mix={"seigaiha": 0.5, "girih": 0.5}))
    do_import(app, folder)
    with session_scope(app) as session:
        assert session.scalar(select(Stimulus.mix).where(Stimulus.key == "seigaiha-0000")) == {
            "seigaiha": 0.5,
            "girih": 0.5,
        }
