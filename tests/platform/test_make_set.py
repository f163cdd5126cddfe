"""A researcher's own images: `culturelab stimuli make-set` and a `study validate` that finds everything
`study load` would refuse, all at once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml
from PIL import Image

from culturelab.platform.stimuli import file_problems, read_manifest

from studykit import study_document


def culturelab(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "culturelab.platform.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def lab_folder(root: Path) -> Path:
    """Three cultures' folders as a lab has them: PNG and JPEG, odd file names, a stray text file."""
    for ci, culture in enumerate(["seigaiha", "girih", "kente"]):
        (root / culture).mkdir(parents=True)
        for k in range(3):
            Image.new("RGB", (40 + k, 30), (80 * ci, 20 * k, 90)).save(root / culture / f"Scan {k}.png")
        Image.new("RGB", (64, 64), (10, 200, 30 * ci)).save(root / culture / "photo.JPG", format="JPEG")
        (root / culture / "notes.txt").write_text("not an image")
    return root


def test_make_set_writes_a_set_that_validates_and_loads(tmp_path):
    folder = lab_folder(tmp_path / "my images")
    result = culturelab(tmp_path, "stimuli", "make-set", "my images", "--out", "stimuli/mine")
    assert result.returncode == 0, result.stderr
    assert "4 girih, 4 kente, 4 seigaiha" in result.stdout
    out = tmp_path / "stimuli" / "mine"
    manifest, _ = read_manifest(out)
    assert file_problems(out, manifest) == []
    assert manifest.cultures == ["girih", "kente", "seigaiha"]
    entry = next(e for e in manifest.stimuli if e.id == "kente-scan-2")
    assert (entry.width, entry.height, entry.method, entry.culture) == (42, 30, "human", "kente")
    assert Image.open(out / entry.file).format == "PNG"
    assert json.loads((out / "manifest.json").read_text())["generator"]["method"] == "human"
    assert len(list(folder.rglob("*"))) == 3 + 15  # the lab's folder is left as it was

    document = study_document(stimulus_sets=["stimuli/mine"], match={"east_asian": ["seigaiha"]})
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(document))
    validated = culturelab(tmp_path, "study", "validate", "study.yaml")
    assert validated.returncode == 0, validated.stderr


def test_make_set_names_every_bad_file_and_writes_nothing(tmp_path):
    folder = lab_folder(tmp_path / "imgs")
    (folder / "girih" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    Image.new("RGB", (8, 8)).save(folder / "kente" / "tiny.png")
    (folder / "ice ray").mkdir()
    result = culturelab(tmp_path, "stimuli", "make-set", "imgs", "--out", "set")
    assert result.returncode == 2
    assert "4 problems" in result.stderr and "ice ray/: no images" in result.stderr
    assert "girih/broken.png: not a readable image" in result.stderr
    assert "kente/tiny.png: 8x8 is smaller than 16x16" in result.stderr
    assert "ice ray/: a culture's folder name must match" in result.stderr
    assert not (tmp_path / "set").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["imgs"]


def test_make_set_refuses_a_folder_without_culture_subfolders(tmp_path):
    (tmp_path / "flat").mkdir()
    Image.new("RGB", (32, 32)).save(tmp_path / "flat" / "a.png")
    result = culturelab(tmp_path, "stimuli", "make-set", "flat", "--out", "set")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "Error: flat has no subfolders: put each culture's images in a folder named for it"
    )


def test_validate_lists_every_problem_load_would_find(tmp_path):
    culturelab(tmp_path, "stimuli", "make-set", str(lab_folder(tmp_path / "imgs")), "--out", "set")
    entry = read_manifest(tmp_path / "set")[0].stimuli[0]
    (tmp_path / "set" / entry.file).write_bytes(b"changed")
    document = study_document(
        stimulus_sets=["set", "missing-set"],
        match={"east_asian": ["seigaiha", "ice_ray"], "west_african": ["kente"]},
        questions=[{"id": "liking", "kind": "likert", "scale": {"min": 5, "max": 1},
                    "text": {"en": "Like?", "zh": "喜欢吗?"}}],
    )
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(document))
    result = culturelab(tmp_path, "study", "validate", "study.yaml")
    assert result.returncode == 2
    # The file's own errors come first and alone: the sets are checked once the file itself is valid.
    assert "questions[0].scale: max (1) must be greater than min (5)" in result.stderr

    document["questions"][0]["scale"] = {"min": 1, "max": 5}
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(document))
    result = culturelab(tmp_path, "study", "validate", "study.yaml")
    assert result.returncode == 2
    problems = [line for line in result.stderr.splitlines() if line.startswith("  - ")]
    assert len(problems) == 3, result.stderr
    assert f"stimulus {entry.id!r}: {entry.file} does not match its sha256" in result.stderr
    assert "stimulus_sets: missing-set:" in result.stderr and "cannot read the manifest" in result.stderr
    assert "match.east_asian: 'ice_ray' is not a culture of the stimulus sets" in result.stderr
