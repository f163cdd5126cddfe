"""The whole pipeline through the real commands: generated stimuli → study → participants → export →
analysis. Participants are the project's bots, preferring their own group's patterns, so the analysis must find it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from culturelab.platform.app import create_app
from culturelab.platform.bots import StudyKnowledge, run_bots
from culturelab.platform.cli import main
from culturelab.platform.db import session_scope

from bot import FlaskTransport

GROUPS = {"east_asian": "seigaiha", "west_african": "kente", "european": "meander"}


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.slow
def test_generated_stimuli_rated_exported_and_analysed(tmp_path, monkeypatch):
    monkeypatch.setenv("CULTURELAB_DATABASE_URL", f"sqlite:///{tmp_path / 'lab.sqlite3'}")
    monkeypatch.setenv("CULTURELAB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CULTURELAB_SECRET_KEY", "pipeline")
    monkeypatch.setenv("CULTURELAB_RATELIMIT_ENABLED", "0")

    run("generate", "sample", "--per-culture", 4, "--out", tmp_path / "study" / "stimuli", "--seed", 7)
    manifest = json.loads((tmp_path / "study" / "stimuli" / "manifest.json").read_text())
    assert {s["method"] for s in manifest["stimuli"]} == {"cgan"}
    study = {
        "slug": "pipeline",
        "title": {"en": "Pipeline", "zh": "流程"},
        "languages": ["en", "zh"],
        "culture_groups": [{"id": g, "label": {"en": g, "zh": g}} for g in GROUPS],
        "stimulus_sets": ["stimuli"],
        "match": {g: [c] for g, c in GROUPS.items()},
        "questions": [{"id": "liking", "kind": "likert", "scale": {"min": 1, "max": 7},
                       "text": {"en": "Like?", "zh": "喜欢吗?"}}],
        "design": {"trials_per_participant": 15, "order": "latin_square", "balance": ["stimulus_culture"],
                   "attention_checks": 1},
        "consent": {"en": "ok", "zh": "好"},
    }
    (tmp_path / "study" / "study.yaml").write_text(yaml.safe_dump(study, allow_unicode=True))
    run("db", "upgrade")
    run("study", "load", tmp_path / "study" / "study.yaml")

    # The project's bots, which recognise each image by the pixels they download (its id is opaque to them).
    app = create_app()
    with session_scope(app) as session:
        knowledge = StudyKnowledge.from_database(session, "pipeline", Path(app.config["MEDIA_DIR"]))
    tally, _ = run_bots(lambda: FlaskTransport(app.test_client()), knowledge, 36, in_group_d=1.2, seed=1,
                        concurrency=1)
    assert tally.completed == 36

    run("export", "--study", "pipeline", "--out", tmp_path / "export")
    run("analyze", tmp_path / "export", "--out", tmp_path / "results")
    results = json.loads((tmp_path / "results" / "results.json").read_text())
    assert results["schema"] == "culturelab.results/1"
    assert results["n"]["participants"] == 36
    test = next(t for t in results["questions"]["liking"]["tests"] if t["name"] == "in_group_preference")
    assert test["estimate"] > 0.5 and test["ci95"][0] > 0 and test["p"] < 0.001
    report = (tmp_path / "results" / "report.html").read_text(encoding="utf-8")
    assert "<script" in report and not re.search(r"<script[^>]+src=[\"']https?://", report)  # offline
