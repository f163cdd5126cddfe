"""Contract 2: the export data package, exactly the columns of docs/contracts.md, in CSV and Parquet, read
back by the analysis loader."""

from __future__ import annotations

import csv
import json
import uuid

import pyarrow.parquet as pq
import pytest
from sqlalchemy import select, update

from culturelab.platform.db import session_scope
from culturelab.platform.export import export_study, spreadsheet_safe
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
    "languages",
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
    "hidden_ms",
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
    assert completed["languages"] == "ja;en"  # BCP 47 tags, in the order ticked
    assert next(p for p in people if p["status"] == "screened_out")["languages"] == ""

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
        assert r["hidden_ms"] == ""  # the bot does not measure it
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
    liking = {"en": "How much do you like this image?", "zh": "你有多喜欢这张图片?"}
    assert design["questions"]["liking"] == {"kind": "likert", "scale": {"min": 1, "max": 7}, "text": liking}
    assert design["questions"]["beauty"]["scale"] == {"min": 0, "max": 100}
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


def test_hidden_time_is_stored_and_exported_after_the_response_columns(app, client, load, tmp_path):
    bot = Bot(client, load())
    bot.consent(), bot.background()
    trial = bot.next()["trial"]
    body = {"trial_id": trial["id"], "response_id": str(uuid.uuid4()), "value": Bot.good_value(trial),
            "rt_ms": 5200, "hidden_ms": 4100}
    assert client.post(f"{bot.base}/responses", json=body).status_code == 201
    with session_scope(app) as session:
        export_study(session, "motif-test", tmp_path / "csv")
        export_study(session, "motif-test", tmp_path / "pq", "parquet")
    (row,) = read_csv(tmp_path / "csv" / "responses.csv")
    assert (row["rt_ms"], row["hidden_ms"]) == ("5200", "4100")
    assert pq.read_table(tmp_path / "pq" / "responses.parquet").column("hidden_ms").to_pylist() == [4100]
    package = json.loads((tmp_path / "csv" / "datapackage.json").read_text(encoding="utf-8"))
    fields = {r["name"]: r["schema"]["fields"] for r in package["resources"]}
    assert fields["responses"][-1]["name"] == "hidden_ms" and fields["responses"][-1]["type"] == "integer"
    assert fields["participants"][-1]["name"] == "languages"


FORMULAS = ['=HYPERLINK("https://example.org","x")', "+1", "-2+3", "@SUM(A1)", "'quoted", "plain - text"]


@pytest.mark.parametrize("gender", FORMULAS)
def test_typed_text_cannot_run_as_a_spreadsheet_formula(app, client, load, tmp_path, gender):
    bot = Bot(client, load())
    bot.consent()
    assert bot.background(gender=gender).status_code == 200
    with session_scope(app) as session:
        export_study(session, "motif-test", tmp_path / "csv")
    (person,) = read_csv(tmp_path / "csv" / "participants.csv")
    if gender[0] in "=+-@'":
        assert person["gender"] == "'" + gender  # one apostrophe: text, not a formula
    else:
        assert person["gender"] == gender


def test_tab_and_carriage_return_starts_are_escaped_too():
    # Not reachable through the questionnaire (it strips surrounding whitespace), but part of the rule.
    assert [spreadsheet_safe(t) for t in ("\tx", "\rx", "x\t", "", None)] == ["'\tx", "'\rx", "x\t", "", None]


def test_the_analysis_loader_reads_every_exported_column_and_the_text_unchanged(app, client, load, tmp_path):
    """The platform writes Contract 2, the analysis reads it: same columns, same values, typed text included."""
    from culturelab.analysis.load import load_package

    slug = load()
    formula = '=HYPERLINK("https://example.org","click")'
    bot = Bot(client, slug)
    bot.consent(), bot.background(gender=formula)
    nxt = bot.next()
    while not nxt["done"]:
        trial = nxt["trial"]
        body = {"trial_id": trial["id"], "response_id": str(uuid.uuid4()), "value": Bot.good_value(trial),
                "rt_ms": 900, "hidden_ms": 25 * trial["index"]}
        nxt = client.post(f"{bot.base}/responses", json=body).get_json()["next"]
    Bot(client, slug).consent(False)
    for fmt in ("csv", "parquet"):
        out = tmp_path / fmt
        with session_scope(app) as session:
            export_study(session, slug, out, fmt)
        package = load_package(out)
        exported = json.loads((out / "datapackage.json").read_text(encoding="utf-8"))
        for resource in exported["resources"]:
            columns = [f["name"] for f in resource["schema"]["fields"]]
            frame = getattr(package, resource["name"])
            assert [c for c in frame.columns if c in columns] == columns, (fmt, resource["name"])
        people = package.participants.set_index("status")
        assert people.loc["completed", "gender"] == formula, fmt
        assert people.loc["completed", "languages"] == "ja;en", fmt
        hidden = package.responses.sort_values("trial_index")["hidden_ms"].astype(int).tolist()
        assert hidden == [25 * i for i in range(14)], fmt


def test_a_line_break_typed_into_text_stays_inside_its_cell(app, collected, tmp_path, client):
    import csv

    from bot import Bot

    bot = Bot(client, collected)
    bot.consent()
    assert bot.background(gender="non\rbinary").status_code == 200
    with session_scope(app) as session:
        export_study(session, collected, tmp_path / "export")
    with (tmp_path / "export" / "participants.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert "non\rbinary" in {row["gender"] for row in rows}
    assert all(len(row) == len(rows[0]) for row in rows)


def test_attention_checks_are_counted_for_each_participant(app, client, load, tmp_path):
    slug = load()  # two attention checks among 14 trials
    careful, careless, early = Bot(client, slug), Bot(client, slug), Bot(client, slug)
    careful.complete()
    careless.consent(), careless.background()
    nxt, failed = careless.next(), False
    while not nxt["done"]:  # fails the first check only
        trial, value = nxt["trial"], None
        if trial["kind"] == "attention" and not failed:
            scale, failed = trial["question"]["scale"], True
            value = scale["min"] if Bot.good_value(trial) != scale["min"] else scale["max"]
        nxt = careless.answer(trial, value=value).get_json()["next"]
    early.consent(), early.background()  # assigned trials, answered none
    out = tmp_path / "export"
    with session_scope(app) as session:
        export_study(session, slug, out)
        pseudonyms = dict(session.execute(select(Participant.token, Participant.pseudonym)).all())
    people = read_csv(out / "participants.csv")
    counts = {p["participant_id"]: (p["attention_passed"], p["attention_total"]) for p in people}
    assert counts == {pseudonyms[careful.token]: ("2", "2"), pseudonyms[careless.token]: ("1", "2"),
                      pseudonyms[early.token]: ("0", "0")}
