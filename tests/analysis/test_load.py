"""Contract 2 reader: valid packages load from CSV and Parquet; every bad file is named with row and column."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from culturelab.analysis.load import DataPackageError, load_package, long_table
from culturelab.platform.cli import main


def test_csv_and_parquet_packages_load_to_the_same_tables(tmp_path, make_pkg, small_opts):
    csv = load_package(make_pkg(tmp_path / "csv", small_opts, "csv"))
    parquet = load_package(make_pkg(tmp_path / "pq", small_opts, "parquet"))
    for name in ("participants", "stimuli", "responses"):
        a, b = getattr(csv, name), getattr(parquet, name)
        assert list(a.columns) == list(b.columns)
        assert a.astype(str).equals(b.astype(str)), name
    assert csv.design.match == small_opts.match
    assert set(csv.design.questions) == {"liking", "beauty", "preference"}
    assert csv.design.group_label("east_asian") == "East Asian / 东亚"


def test_long_table_marks_in_group_pairs_from_the_match_table(small_package, small_opts):
    pkg = load_package(small_package)
    d = long_table(pkg, "liking")
    own = d[d["match"] == 1]
    assert not own.empty
    assert all(c in small_opts.match[g] for g, c in zip(own["culture_group"], own["stimulus_culture"]))
    assert d["value"].between(1, 7).all()


CASES = [
    ("missing column", "responses", lambda d: d.drop(columns=["rt_ms"]), "responses.csv: column 'rt_ms' is missing"),
    ("bad integer", "responses", lambda d: d.assign(trial_index=d["trial_index"].where(d.index != 4, "four")),
     "responses.csv row 6, column trial_index: 'four' is not an integer"),
    ("duplicate id", "responses",
     lambda d: d.assign(response_id=d["response_id"].where(d.index != 7, d["response_id"][2])),
     "responses.csv row 9, column response_id: duplicate response_id"),
    ("foreign key", "responses", lambda d: d.assign(participant_id=d["participant_id"].where(d.index != 0, "ghost")),
     "responses.csv row 2, column participant_id: 'ghost' is not a participant_id in participants.csv"),
    ("unknown culture", "participants",
     lambda d: d.assign(culture_group=d["culture_group"].where(d.index != 1, "martian")),
     "participants.csv row 3, column culture_group: unknown culture group 'martian'"),
    ("out of scale", "responses",
     lambda d: d.assign(value=d["value"].where(d.index != d.index[d.trial_kind == "likert"][0], "9")),
     "column value: '9' is outside question 'liking' scale 1..7"),
    ("bad kind", "responses", lambda d: d.assign(trial_kind=d["trial_kind"].where(d.index != 3, "essay")),
     "responses.csv row 5, column trial_kind: 'essay' is not one of"),
]


@pytest.mark.parametrize("label,table,edit,message", CASES, ids=[c[0] for c in CASES])
def test_bad_package_names_file_row_and_column(package_copy, edit_csv, label, table, edit, message):
    edit_csv(package_copy / f"{table}.csv", edit)
    with pytest.raises(DataPackageError) as err:
        load_package(package_copy)
    assert message in str(err.value)


@pytest.mark.parametrize("label,table,edit,message", CASES[:3], ids=[c[0] for c in CASES[:3]])
def test_cli_bad_package_is_one_line_and_exit_2(package_copy, edit_csv, tmp_path, label, table, edit, message):
    edit_csv(package_copy / f"{table}.csv", edit)
    result = CliRunner().invoke(main, ["analyze", str(package_copy), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0 and message in result.stderr
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_schema_header_mismatch_is_reported(package_copy):
    desc = json.loads((package_copy / "datapackage.json").read_text())
    desc["resources"][1]["schema"]["fields"][0]["name"] = "id"
    (package_copy / "datapackage.json").write_text(json.dumps(desc))
    with pytest.raises(DataPackageError, match="stimuli.csv: the header .* differs from datapackage.json's schema"):
        load_package(package_copy)


def test_missing_values_are_set_aside_and_counted(package_copy, edit_csv):
    rows = []

    def blank(d):
        idx = d.index[d["trial_kind"] == "slider"][:3]
        rows.extend(idx)
        d.loc[idx, "value"] = ""
        return d

    edit_csv(package_copy / "responses.csv", blank)
    pkg = load_package(package_copy)
    assert pkg.dropped == {"missing_value": 3}
    assert len(long_table(pkg, "beauty")) == (pkg.responses["question_id"] == "beauty").sum() - 3


def test_package_without_design_key_is_inferred_and_says_so(package_copy):
    desc = json.loads((package_copy / "datapackage.json").read_text())
    del desc["culturelab"]
    (package_copy / "datapackage.json").write_text(json.dumps(desc))
    pkg = load_package(package_copy)
    assert pkg.design.questions["liking"] == {"kind": "likert", "scale": {"min": 1, "max": 7}}
    assert any("match" in what for what in pkg.design.inferred)
    assert pkg.design.match == {}  # group ids are not culture names here: no ownership can be inferred


def test_platform_style_attention_question_in_the_design_is_accepted(package_copy):
    """The platform's export lists attention checks as a question of kind `attention`: they feed the
    exclusion rules, not the models."""
    desc = json.loads((package_copy / "datapackage.json").read_text())
    desc["culturelab"]["questions"]["attention"] = {"kind": "attention", "scale": {"min": 1, "max": 7}}
    (package_copy / "datapackage.json").write_text(json.dumps(desc))
    pkg = load_package(package_copy)
    assert set(pkg.design.questions) == {"liking", "beauty", "preference"}
    desc["culturelab"]["questions"]["attention"]["kind"] = "essay"
    (package_copy / "datapackage.json").write_text(json.dumps(desc))
    with pytest.raises(DataPackageError, match="questions.attention.kind must be"):
        load_package(package_copy)


def test_packages_with_and_without_the_optional_columns_load(package_copy, edit_csv):
    with_columns = load_package(package_copy)
    assert with_columns.participants["languages"].str.len().gt(0).all()
    assert with_columns.responses["hidden_ms"].notna().all()
    edit_csv(package_copy / "participants.csv", lambda d: d.drop(columns=["languages"]))
    edit_csv(package_copy / "responses.csv", lambda d: d.drop(columns=["hidden_ms"]))
    desc = json.loads((package_copy / "datapackage.json").read_text())
    for res in desc["resources"]:
        res["schema"]["fields"] = [f for f in res["schema"]["fields"] if f["name"] not in ("languages", "hidden_ms")]
    (package_copy / "datapackage.json").write_text(json.dumps(desc))
    older = load_package(package_copy)
    assert (older.participants["languages"] == "").all() and older.responses["hidden_ms"].isna().all()


def test_spreadsheet_protected_free_text_reads_back_unchanged(package_copy, edit_csv):
    typed = ["=1+1", "+49 x", "-", "@home", "\tTab", "\rCR", "'quoted", "''", "plain", " spaced "]

    def escape(d):  # the platform's export rule (Contract 2, OWASP CSV injection)
        n = len(typed)
        d.loc[d.index[:n], "gender"] = ["'" + t if t.startswith(("=", "+", "-", "@", "\t", "\r", "'")) else t
                                        for t in typed]
        return d

    edit_csv(package_copy / "participants.csv", escape)
    pkg = load_package(package_copy)
    assert list(pkg.participants["gender"][: len(typed)]) == typed
