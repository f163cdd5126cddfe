"""Contract 2: the export data package, exactly the columns of DESIGN.md, in CSV and Parquet."""

from __future__ import annotations

import csv
import json

import pyarrow.parquet as pq
import pytest
from sqlalchemy import update

from culturelab.platform.db import session_scope
from culturelab.platform.export import export_study
from culturelab.platform.models import Participant

from bot import Bot

PARTICIPANT_COLUMNS = [
    "participant_id",
    "study",
    "culture_group",
    "country_of_birth",
    "country_of_residence",
    "language",
    "age",
    "gender",
    "art_training",
    "source",
    "status",
    "started_at",
    "completed_at",
    "attention_passed",
    "attention_total",
]
STIMULUS_COLUMNS = ["stimulus_id", "stimulus_set", "culture", "mix", "method", "seed", "sha256"]
RESPONSE_COLUMNS = [
    "response_id",
    "participant_id",
    "trial_index",
    "trial_kind",
    "question_id",
    "stimulus_id",
    "stimulus_id_b",
    "value",
    "correct",
    "rt_ms",
    "created_at",
]


@pytest.fixture
def collected(app, client, load):
    """Three participants: one completed (Prolific), one screened out, one withdrawn."""
    slug = load()
    done = Bot(client, slug, external_id="PROLIFIC-SECRET-ID", source="prolific")
    done.complete("west_african")
    Bot(client, slug).consent(False)
    gone = Bot(client, slug)
    gone.consent(), gone.background()
    gone.answer(gone.next()["trial"])
    with session_scope(app) as session:
        session.execute(update(Participant).where(Participant.token == gone.token).values(status="withdrawn"))
    return slug


def read_csv(path):
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_csv_package_has_the_contract_columns_and_rows(app, collected, tmp_path):
    out = tmp_path / "export"
    with session_scope(app) as session:
        counts = export_study(session, collected, out)
    assert counts == {"participants": 2, "stimuli": 24, "responses": 14}
    for name, columns in [
        ("participants", PARTICIPANT_COLUMNS),
        ("stimuli", STIMULUS_COLUMNS),
        ("responses", RESPONSE_COLUMNS),
    ]:
        with (out / f"{name}.csv").open(encoding="utf-8") as f:
            assert next(csv.reader(f)) == columns
    people = read_csv(out / "participants.csv")
    assert {p["status"] for p in people} == {"completed", "screened_out"}  # withdrawn rows are not exported
    completed = next(p for p in people if p["status"] == "completed")
    assert completed["participant_id"].startswith("p-")
    assert "PROLIFIC-SECRET-ID" not in (out / "participants.csv").read_text()  # never the recruitment id
    assert (
        completed["culture_group"],
        completed["source"],
        completed["attention_passed"],
        completed["attention_total"],
        completed["age"],
    ) == ("west_african", "prolific", "2", "2", "30")
    assert completed["completed_at"].endswith("Z")

    responses = read_csv(out / "responses.csv")
    assert [r["trial_index"] for r in responses] == [str(i) for i in range(14)]
    stimulus_ids = {s["stimulus_id"] for s in read_csv(out / "stimuli.csv")}
    for r in responses:
        assert r["stimulus_id"] in stimulus_ids
        if r["trial_kind"] == "choice":
            assert r["stimulus_id_b"] in stimulus_ids and r["value"] in {"0", "1"}
        else:
            assert r["stimulus_id_b"] == ""
        assert r["correct"] == ("true" if r["trial_kind"] == "attention" else "")
        assert int(r["rt_ms"]) == 800
    stimuli = read_csv(out / "stimuli.csv")
    assert json.loads(stimuli[0]["mix"]) == {stimuli[0]["culture"]: 1.0}


def test_datapackage_describes_every_column_and_the_design(app, collected, tmp_path):
    out = tmp_path / "export"
    with session_scope(app) as session:
        export_study(session, collected, out)
    package = json.loads((out / "datapackage.json").read_text(encoding="utf-8"))
    assert package["profile"] == "tabular-data-package"
    resources = {r["name"]: r for r in package["resources"]}
    assert [f["name"] for f in resources["responses"]["schema"]["fields"]] == RESPONSE_COLUMNS
    assert all(f["description"] and f["type"] for r in resources.values() for f in r["schema"]["fields"])
    design = package["culturelab"]
    assert design["match"] == {"east_asian": ["seigaiha"], "west_african": ["kente"]}
    assert design["questions"]["liking"] == {"kind": "likert", "scale": {"min": 1, "max": 7}}
    assert design["questions"]["beauty"] == {"kind": "slider", "scale": {"min": 0, "max": 100}}
    assert design["culture_groups"][0] == {"id": "east_asian", "label": {"en": "East Asian", "zh": "东亚"}}
    assert design["study"] == {"slug": "motif-test", "title": {"en": "Pattern preferences", "zh": "图案偏好"}}


def test_parquet_package_matches_csv(app, collected, tmp_path):
    with session_scope(app) as session:
        export_study(session, collected, tmp_path / "csv")
        export_study(session, collected, tmp_path / "pq", "parquet")
    table = pq.read_table(tmp_path / "pq" / "responses.parquet")
    assert table.column_names == RESPONSE_COLUMNS
    rows = read_csv(tmp_path / "csv" / "responses.csv")
    assert table.column("response_id").to_pylist() == [r["response_id"] for r in rows]
    assert table.column("value").to_pylist() == [float(r["value"]) for r in rows]
    assert pq.read_table(tmp_path / "pq" / "participants.parquet").num_rows == 2


def test_export_replaces_an_earlier_package_and_refuses_unknown_studies(app, collected, tmp_path):
    out = tmp_path / "export"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    with session_scope(app) as session:
        export_study(session, collected, out)
        with pytest.raises(LookupError, match="no study 'nope'"):
            export_study(session, "nope", tmp_path / "x")
    assert not (out / "stale.txt").exists()
    assert not (tmp_path / "x").exists()
