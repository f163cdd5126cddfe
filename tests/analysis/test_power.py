"""`culturelab power --study FILE` plans the study a researcher wrote: any number of groups, choice too."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from culturelab.analysis.power import study_plan
from culturelab.platform.cli import main

EXAMPLE = Path(__file__).resolve().parents[2] / "platform" / "examples" / "motif-preferences" / "study.yaml"


def test_study_plan_reads_groups_match_cultures_questions_and_trials():
    base, questions, per_culture = study_plan(EXAMPLE)
    assert [g["id"] for g in base.groups] == ["east_asian", "west_asian", "west_african", "european", "other"]
    assert base.match["east_asian"] == ["seigaiha", "ice_ray"] and "other" not in base.match
    assert sorted(base.cultures) == ["girih", "ice_ray", "kente", "meander", "seigaiha"]
    assert [(q.id, q.kind, q.trials) for q in questions] == [
        ("liking", "likert", 5), ("familiarity", "slider", 5), ("preference", "choice", 5),
        ("same_scene", "choice", 5)]  # 20 trials / 4
    assert questions[0].likert_points == 7 and per_culture == 8 + 5  # cGAN images and scenes per culture


def test_power_cli_with_a_study_file_covers_every_question(tmp_path):
    result = CliRunner().invoke(main, ["power", "--study", str(EXAMPLE), "--participants-per-group", "8",
                                       "--effect", "1.2", "--nsim", "10", "--sd-stimulus-group", "0.2",
                                       "--out", str(tmp_path / "power.json")])
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "power.json").read_text())
    assert doc["variance_sds"]["sd_stimulus_group"] == 0.2
    cells = {c["question"]: c for c in doc["cells"]}
    assert set(cells) == {"liking", "familiarity", "preference", "same_scene"}
    assert cells["preference"]["kind"] == "choice"
    assert all(c["groups"] == 5 and c["nsim"] == 10 for c in cells.values())
    assert cells["liking"]["power"] >= 0.8  # d = 1.2 with 8 per group: found nearly always


def test_power_cli_refuses_a_study_file_without_groups(tmp_path):
    bad = tmp_path / "study.yaml"
    bad.write_text("slug: x\nculture_groups: []\n")
    result = CliRunner().invoke(main, ["power", "--study", str(bad)])
    assert result.exit_code == 2 and "culture_groups" in result.stderr
