"""Building blocks for platform tests, bots and benchmarks: Contract 1 stimulus sets made on the fly and
study files (import as `studykit`; tests/platform is on pytest's pythonpath)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import yaml
from PIL import Image

CULTURES = ["seigaiha", "girih", "kente", "meander"]


def make_stimulus_set(
    folder: Path, cultures=CULTURES, per_culture: int = 6, size: int = 16, name: str = "test-set"
) -> Path:
    """A Contract 1 stimulus set of small flat-coloured PNGs."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    stimuli = []
    for ci, culture in enumerate(cultures):
        for k in range(per_culture):
            sid = f"{culture}-{k:04d}"
            path = folder / "images" / f"{sid}.png"
            Image.new("RGB", (size, size), (40 * ci % 256, 30 * k % 256, 128)).save(path)
            stimuli.append(
                {
                    "id": sid,
                    "file": f"images/{sid}.png",
                    "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                    "width": size,
                    "height": size,
                    "culture": culture,
                    "mix": {culture: 1.0},
                    "method": "cgan",
                    "seed": k,
                    "content": None,
                }
            )
    manifest = {
        "schema": "culturelab.stimuli/1",
        "name": name,
        "created_at": "2026-11-26T12:00:00Z",
        "cultures": list(cultures),
        "generator": {"method": "cgan"},
        "stimuli": stimuli,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return folder


def study_document(**overrides) -> dict:
    document = {
        "slug": "motif-test",
        "title": {"en": "Pattern preferences", "zh": "图案偏好"},
        "languages": ["en", "zh"],
        "culture_groups": [
            {"id": "east_asian", "label": {"en": "East Asian", "zh": "东亚"}},
            {"id": "west_african", "label": {"en": "West African", "zh": "西非"}},
        ],
        "stimulus_sets": ["stimuli"],
        "match": {"east_asian": ["seigaiha"], "west_african": ["kente"]},
        "questions": [
            {
                "id": "liking",
                "kind": "likert",
                "scale": {"min": 1, "max": 7},
                "text": {"en": "How much do you like this image?", "zh": "你有多喜欢这张图片?"},
            },
            {"id": "beauty", "kind": "slider", "text": {"en": "How beautiful is it?", "zh": "它有多美?"}},
            {
                "id": "preference",
                "kind": "choice",
                "text": {"en": "Which do you prefer?", "zh": "你更喜欢哪一张?"},
            },
        ],
        "design": {
            "trials_per_participant": 12,
            "order": "latin_square",
            "balance": ["stimulus_culture"],
            "attention_checks": 2,
        },
        "recruitment": {
            "quotas": {"east_asian": 50, "west_african": 50},
            "completion_url": "https://app.prolific.com/submissions/complete?cc={code}",
            "completion_code": "C1234ABC",
        },
        "consent": {"en": "You agree to take part.", "zh": "您同意参加。"},
    }
    document.update(overrides)
    return document


def write_study(folder: Path, **overrides) -> Path:
    if not (folder / "stimuli" / "manifest.json").exists():
        make_stimulus_set(folder / "stimuli")
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(study_document(**overrides), allow_unicode=True))
    return path
