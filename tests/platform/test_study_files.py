"""Study files: validation with paths in the messages, all-or-nothing loading, safe reloads."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select

from culturelab.platform.db import session_scope
from culturelab.platform.models import Stimulus, StimulusSet, Study
from culturelab.platform.study import StudyError, parse_study, read_study
from culturelab.platform.study_load import load_study

from bot import Bot
from studykit import study_document, write_study


def problems(**overrides) -> list[str]:
    with pytest.raises(StudyError) as info:
        parse_study(study_document(**overrides))
    return info.value.problems


def test_the_default_document_is_valid():
    spec = parse_study(study_document())
    assert spec.slug == "motif-test" and [q.kind for q in spec.questions] == ["likert", "slider", "choice"]


@pytest.mark.parametrize(
    "overrides,expected",
    [
        ({"slug": "Has Spaces"}, "slug: 'Has Spaces' does not match"),
        ({"languages": []}, "languages: List should have at least 1 item"),
        (
            {"design": {"trials_per_participant": 0}},
            "design.trials_per_participant: Input should be greater than or equal to 1",
        ),
        (
            {"design": {"trials_per_participant": 5, "order": "zigzag"}},
            "design.order: Input should be 'latin_square' or 'random'",
        ),
        (
            {
                "questions": [
                    {
                        "id": "q",
                        "kind": "likert",
                        "scale": {"min": 5, "max": 1},
                        "text": {"en": "?", "zh": "?"},
                    }
                ]
            },
            "questions[0].scale: max (1) must be greater than min (5)",
        ),
        (
            {"questions": [{"id": "q", "kind": "likert", "text": {"en": "?", "zh": "?"}}]},
            "questions[0]: a likert question needs a scale",
        ),
        (
            {"questions": [{"id": "q", "kind": "rating", "text": {"en": "?", "zh": "?"}}]},
            "questions[0].kind: Input should be",
        ),
        ({"consent": {"en": "ok"}}, "consent: missing text for language(s) zh"),
        ({"match": {"martians": ["girih"]}}, "match.martians: not a culture group id"),
        ({"recruitment": {"quotas": {"nobody": 3}}}, "recruitment.quotas.nobody: not a culture group id"),
        ({"recruitment": {"completion_url": "ftp://x"}}, "recruitment: completion_url must start with http"),
        ({"surprise": 1}, "surprise: Extra inputs are not permitted"),
    ],
)
def test_errors_name_the_field_path(overrides, expected):
    found = problems(**overrides)
    assert any(p.startswith(expected) for p in found), found


def test_unreadable_and_non_mapping_files(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("slug: [unclosed")
    with pytest.raises(StudyError, match="not valid YAML"):
        read_study(bad)
    bad.write_text("- a list")
    with pytest.raises(StudyError, match="expected a mapping"):
        read_study(bad)
    with pytest.raises(StudyError, match="cannot read"):
        read_study(tmp_path / "missing.yaml")


def load(app, path: Path):
    with session_scope(app) as session:
        return load_study(session, read_study(path), path.parent, Path(app.config["MEDIA_DIR"])).action


def counts(app):
    with session_scope(app) as session:
        return tuple(
            session.scalar(select(func.count()).select_from(m)) for m in (Study, StimulusSet, Stimulus)
        )


def test_loading_twice_changes_nothing(app, tmp_path):
    path = write_study(tmp_path)
    assert load(app, path) == "created"
    before = counts(app)
    assert load(app, path) == "unchanged"
    assert counts(app) == before == (1, 1, 24)


def test_an_invalid_study_is_never_half_loaded(app, tmp_path):
    path = write_study(tmp_path, match={"east_asian": ["atlantis"]})  # not a culture of the stimulus set
    with pytest.raises(StudyError, match="match.east_asian: 'atlantis' is not a culture"):
        load(app, path)
    assert counts(app) == (0, 0, 0)


def test_safe_changes_apply_after_participants_started(app, client, tmp_path):
    path = write_study(tmp_path)
    load(app, path)
    Bot(client, "motif-test").complete()
    document = yaml.safe_load(path.read_text())
    document["title"]["en"] = "Pattern preferences (v2)"
    document["recruitment"]["quotas"]["east_asian"] = 80
    document["languages"].append("ja")
    for key in ("title", "consent"):
        document[key]["ja"] = "テスト"
    for group in document["culture_groups"]:
        group["label"]["ja"] = "グループ"
    for q in document["questions"]:
        q["text"]["ja"] = "質問"
    path.write_text(yaml.safe_dump(document, allow_unicode=True))
    assert load(app, path) == "updated"
    with session_scope(app) as session:
        study = session.scalar(select(Study))
        assert study.spec["title"]["en"] == "Pattern preferences (v2)"
        assert {g.key: g.quota for g in study.groups}["east_asian"] == 80


@pytest.mark.parametrize(
    "change,named",
    [
        (lambda d: d["design"].update(trials_per_participant=20), "design"),
        (lambda d: d["questions"].pop(), "questions"),
        (lambda d: d["culture_groups"].pop(), "culture_groups"),
        (lambda d: d.update(languages=["en"]), "languages (removes zh)"),
    ],
)
def test_unsafe_changes_are_refused_once_participants_started(app, client, tmp_path, change, named):
    path = write_study(tmp_path)
    load(app, path)
    bot = Bot(client, "motif-test")
    bot.consent()
    document = yaml.safe_load(path.read_text())
    change(document)
    for group_key in list(document["match"]):
        if group_key not in [g["id"] for g in document["culture_groups"]]:
            del document["match"][group_key]
    document["recruitment"]["quotas"] = {
        k: v
        for k, v in document["recruitment"]["quotas"].items()
        if k in [g["id"] for g in document["culture_groups"]]
    }
    path.write_text(yaml.safe_dump(document, allow_unicode=True))
    with pytest.raises(StudyError, match=r"has 1 participant\(s\); refusing to change .*" + named.split()[0]):
        load(app, path)


def test_structural_changes_are_fine_before_anyone_started(app, tmp_path):
    path = write_study(tmp_path)
    load(app, path)
    document = yaml.safe_load(path.read_text())
    document["design"]["trials_per_participant"] = 20
    path.write_text(yaml.safe_dump(document, allow_unicode=True))
    assert load(app, path) == "updated"


def test_sets_sharing_a_stimulus_id_are_refused(app, tmp_path):
    from studykit import make_stimulus_set

    make_stimulus_set(tmp_path / "stimuli")
    make_stimulus_set(tmp_path / "other", name="other-set", size=8)
    path = write_study(tmp_path, stimulus_sets=["stimuli", "other"])
    with pytest.raises(StudyError, match="stimulus id 'seigaiha-0000' is in both 'test-set' and 'other-set'"):
        load(app, path)
    assert counts(app) == (0, 0, 0)
