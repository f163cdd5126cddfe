"""Contract 2 reader: an export data package (datapackage.json + participants, stimuli, responses).

Every problem is a `DataPackageError` whose message names the file, the row and the column, so the CLI can
print it as its one line. Rows are counted the way a spreadsheet shows them: the header is row 1 of a CSV
file, the first data row is row 2 (Parquet: the first data row is row 1).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

# Contract 2 columns, in order, with the type each must parse as and whether it may be empty.
PARTICIPANT_COLUMNS: list[tuple[str, str, bool]] = [
    ("participant_id", "string", False), ("study", "string", True), ("culture_group", "string", True),
    ("country_of_birth", "string", True), ("country_of_residence", "string", True), ("language", "string", True),
    ("age", "integer", True), ("gender", "string", True), ("art_training", "integer", True),
    ("source", "string", True), ("status", "string", False), ("started_at", "datetime", True),
    ("completed_at", "datetime", True), ("attention_passed", "integer", False),
    ("attention_total", "integer", False),
]
STIMULUS_COLUMNS: list[tuple[str, str, bool]] = [
    ("stimulus_id", "string", False), ("stimulus_set", "string", True), ("culture", "string", False),
    ("mix", "string", True), ("method", "string", True), ("seed", "integer", True), ("sha256", "string", True),
]
RESPONSE_COLUMNS: list[tuple[str, str, bool]] = [
    ("response_id", "string", False), ("participant_id", "string", False), ("trial_index", "integer", False),
    ("trial_kind", "string", False), ("question_id", "string", True), ("stimulus_id", "string", True),
    ("stimulus_id_b", "string", True), ("value", "string", True), ("correct", "boolean", True),
    ("rt_ms", "integer", True), ("created_at", "datetime", True),
]
TABLES = {"participants": PARTICIPANT_COLUMNS, "stimuli": STIMULUS_COLUMNS, "responses": RESPONSE_COLUMNS}
# Contract 2 columns that follow the required ones in newer exports; a package without them still loads
# (older exports, a lab's own data) and gets them empty, so later code need not ask.
OPTIONAL_COLUMNS: dict[str, list[tuple[str, str, bool]]] = {
    "participants": [("languages", "string", True)], "responses": [("hidden_ms", "integer", True)]}
# Text a participant typed, exported OWASP-safe: a value starting with one of these got one extra leading '
FREE_TEXT = {"participants": ("gender",)}
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")
TRIAL_KINDS = ("likert", "slider", "choice", "attention")
STATUSES = ("started", "completed", "withdrawn", "screened_out")
RATING_KINDS = ("likert", "slider")


class DataPackageError(ValueError):
    """The export package does not follow Contract 2; the message names file, row and column."""


@dataclass
class Design:
    """The study design carried under datapackage.json's `culturelab` key (or inferred from the tables)."""

    match: dict[str, list[str]]
    questions: dict[str, dict]
    culture_groups: list[dict]
    study: dict
    inferred: list[str] = field(default_factory=list)  # which parts were inferred, said in the report

    def group_label(self, group_id: str) -> str:
        """All languages' labels joined, so an English and a Chinese reader both find theirs."""
        for g in self.culture_groups:
            if g["id"] == group_id:
                labels = list(dict.fromkeys(str(v) for v in (g.get("label") or {}).values() if v))
                return " / ".join(labels) if labels else group_id
        return group_id

    @property
    def title(self) -> str:
        titles = list(dict.fromkeys(str(v) for v in (self.study.get("title") or {}).values() if v))
        return " / ".join(titles) if titles else str(self.study.get("slug") or "CultureLab study")

    def owns(self, group: str, culture: str) -> bool:
        return culture in self.match.get(group, [])


@dataclass
class Package:
    participants: pd.DataFrame
    stimuli: pd.DataFrame
    responses: pd.DataFrame
    design: Design
    path: Path
    dropped: dict[str, int] = field(default_factory=dict)  # responses set aside before analysis, by reason


def _row(i: int, fmt: str) -> int:
    return i + 2 if fmt == "csv" else i + 1


def _first(mask: pd.Series) -> int:
    """Position of the first True in ``mask``: the row that a refusal names."""
    return int(np.flatnonzero(mask.to_numpy())[0])


def _read_table(path: Path, fmt: str) -> pd.DataFrame:
    if not path.is_file():
        raise DataPackageError(f"{path.name}: file not found (named in datapackage.json)")
    try:
        if fmt == "parquet":
            df = pd.read_parquet(path)
            return df.astype(object).where(df.notna(), "")
        # Rows end at "\n" only: the platform's csv writer does not quote a lone carriage return inside typed
        # text, which the default reader would take for a line break. A CRLF file's "\r" is stripped below.
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8",
                         lineterminator="\n")
        df.columns = [str(c).rstrip("\r") for c in df.columns]
        if len(df.columns):
            df[df.columns[-1]] = df[df.columns[-1]].str.rstrip("\r")
        return df
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise DataPackageError(f"{path.name}: cannot be read as {fmt}: {exc}") from exc


def unescape_text(value: str) -> str:
    """Undo the platform's spreadsheet protection (Contract 2): exactly one leading ' comes off a value that
    starts with ' followed by = + - @ tab, CR or ', so the text reads back as the participant typed it."""
    return value[1:] if len(value) > 1 and value[0] == "'" and value[1] in FORMULA_STARTS else value


def _parse_column(values: pd.Series, kind: str, nullable: bool, where, free_text: bool = False) -> pd.Series:
    """Parse one column to its Contract 2 type; `where(i)` names the row of the first bad value. Free text
    keeps its spaces and loses the spreadsheet-protection apostrophe."""
    if free_text:
        return values.map(lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) else
                          unescape_text(str(v)))
    text = values.map(lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v).strip())
    empty = text == ""
    if not nullable and empty.any():
        raise DataPackageError(f"{where(_first(empty))}: value is missing")
    if kind == "string":
        return text
    if kind == "integer":
        num = pd.to_numeric(text.where(~empty), errors="coerce")
        bad = ~empty & (num.isna() | (num.fillna(0) % 1 != 0))
        if bad.any():
            i = _first(bad)
            raise DataPackageError(f"{where(i)}: {text.iloc[i]!r} is not an integer")
        return num.astype("Int64")
    if kind == "boolean":
        lowered = text.str.lower()
        ok = {"true": True, "false": False, "1": True, "0": False}
        bad = ~empty & ~lowered.isin(list(ok))
        if bad.any():
            i = _first(bad)
            raise DataPackageError(f"{where(i)}: {text.iloc[i]!r} is not true/false")
        return lowered.map(ok).astype("boolean")
    if kind == "datetime":
        parsed = pd.to_datetime(text.where(~empty), errors="coerce", utc=True, format="ISO8601")
        bad = ~empty & parsed.isna()
        if bad.any():
            i = _first(bad)
            raise DataPackageError(f"{where(i)}: {text.iloc[i]!r} is not an ISO 8601 date-time")
        return parsed
    raise AssertionError(kind)


def _load_resource(root: Path, resource: dict, name: str) -> pd.DataFrame:
    rel = resource.get("path")
    if not isinstance(rel, str) or not rel:
        raise DataPackageError(f"datapackage.json: resource {name!r} has no path")
    path = (root / rel).resolve()
    if root.resolve() not in path.parents:
        raise DataPackageError(f"datapackage.json: resource {name!r} path {rel!r} leaves the package folder")
    fmt = str(resource.get("format") or path.suffix.lstrip(".")).lower()
    if fmt not in ("csv", "parquet"):
        raise DataPackageError(f"datapackage.json: resource {name!r} has format {fmt!r} (csv or parquet)")
    df = _read_table(path, fmt)
    columns = list(TABLES[name])
    header = list(df.columns)
    for col in OPTIONAL_COLUMNS.get(name, []):
        if col[0] in header:
            columns.append(col)
    expected = [c for c, _, _ in columns]
    for pos, col in enumerate(expected):
        if col not in header:
            raise DataPackageError(f"{path.name}: column {col!r} is missing (row 1, Contract 2 column {pos + 1})")
        if header.index(col) != pos:
            raise DataPackageError(
                f"{path.name}: column {col!r} is at position {header.index(col) + 1}, Contract 2 puts it at {pos + 1}"
            )
    declared = [f.get("name") for f in (resource.get("schema") or {}).get("fields", [])]
    if declared and declared != header:
        raise DataPackageError(f"{path.name}: the header {header} differs from datapackage.json's schema {declared}")
    out = pd.DataFrame(index=df.index)
    for col, kind, nullable in columns:
        out[col] = _parse_column(df[col], kind, nullable,
                                 lambda i, c=col: f"{path.name} row {_row(i, fmt)}, column {c}",
                                 free_text=col in FREE_TEXT.get(name, ()))
    for col, kind, _ in OPTIONAL_COLUMNS.get(name, []):
        if col not in out:
            out[col] = pd.Series(pd.NA, index=df.index, dtype="Int64") if kind == "integer" else ""
    for col in header[len(expected):]:  # extra columns may follow; kept as they are
        if col not in out:
            out[col] = df[col]
    out.attrs["file"], out.attrs["format"] = path.name, fmt
    return out


def _where(df: pd.DataFrame, i: int, col: str) -> str:
    return f"{df.attrs['file']} row {_row(i, df.attrs['format'])}, column {col}"


def _check_unique(df: pd.DataFrame, col: str) -> None:
    dup = df[col].duplicated(keep="first")
    if dup.any():
        i = _first(dup)
        first = _first(df[col] == df[col].iloc[i])
        raise DataPackageError(
            f"{_where(df, i, col)}: duplicate {col} {df[col].iloc[i]!r} "
            f"(first at row {_row(first, df.attrs['format'])})"
        )


def _check_foreign_key(df: pd.DataFrame, col: str, ref: pd.DataFrame, ref_col: str) -> None:
    bad = (df[col] != "") & ~df[col].isin(set(ref[ref_col]))
    if bad.any():
        i = _first(bad)
        raise DataPackageError(f"{_where(df, i, col)}: {df[col].iloc[i]!r} is not a {ref_col} in {ref.attrs['file']}")


def _design(meta: dict | None, participants: pd.DataFrame, stimuli: pd.DataFrame, responses: pd.DataFrame) -> Design:
    meta = dict(meta or {})
    inferred = []
    groups = meta.get("culture_groups")
    if not groups:
        ids = sorted(g for g in participants["culture_group"].unique() if g)
        groups = [{"id": g, "label": {"en": g}} for g in ids]
        inferred.append("culture_groups (from participants.culture_group)")
    if not all(isinstance(g, dict) and isinstance(g.get("id"), str) for g in groups):
        raise DataPackageError("datapackage.json: culturelab.culture_groups must be a list of {id, label}")
    group_ids = [g["id"] for g in groups]
    match = meta.get("match")
    if match is None:
        cultures = set(stimuli["culture"])
        match = {g: [g] for g in group_ids if g in cultures}
        inferred.append("match (a group owns the stimulus culture of the same name)" if match else
                        "match (no group id equals a stimulus culture: in-group tests cannot run)")
    if not isinstance(match, dict) or not all(isinstance(v, list) for v in match.values()):
        raise DataPackageError("datapackage.json: culturelab.match must map a group id to a list of cultures")
    for g in match:
        if g not in group_ids:
            raise DataPackageError(f"datapackage.json: culturelab.match names unknown culture group {g!r}")
    questions = meta.get("questions")
    if not questions:
        questions = {}
        rated = responses[responses["trial_kind"] != "attention"]
        for (qid, kind), rows in rated.groupby(["question_id", "trial_kind"]):
            values = pd.to_numeric(rows["value"], errors="coerce")
            scale = ({"min": 0, "max": 1} if kind == "choice" else
                     {"min": 0, "max": 100} if kind == "slider" else
                     {"min": int(values.min()), "max": int(values.max())})
            questions[qid] = {"kind": kind, "scale": scale}
        inferred.append("questions (kinds and Likert scales from the observed responses)")
    for qid, q in questions.items():
        if not isinstance(q, dict) or q.get("kind") not in ("likert", "slider", "choice", "attention"):
            raise DataPackageError(
                f"datapackage.json: culturelab.questions.{qid}.kind must be likert, slider, choice or attention")
        q.setdefault("scale", {"min": 0, "max": 100} if q["kind"] == "slider" else {"min": 0, "max": 1})
    # attention checks feed the exclusion rules (participants.attention_passed), not the models
    questions = {qid: q for qid, q in questions.items() if q["kind"] != "attention"}
    study = meta.get("study") or {}
    return Design(match={k: list(v) for k, v in match.items()}, questions=questions,
                  culture_groups=groups, study=study, inferred=inferred)


def _check_responses(pkg_responses: pd.DataFrame, design: Design, participants: pd.DataFrame) -> dict[str, int]:
    """Validate kinds, question ids and values; parse `value` to `value_num`. Returns counts of set-aside rows."""
    r = pkg_responses
    bad_kind = ~r["trial_kind"].isin(TRIAL_KINDS)
    if bad_kind.any():
        i = _first(bad_kind)
        raise DataPackageError(f"{_where(r, i, 'trial_kind')}: {r['trial_kind'].iloc[i]!r} is not one of {TRIAL_KINDS}")
    rated = r["trial_kind"] != "attention"
    for col in ("question_id", "stimulus_id"):
        missing = rated & (r[col] == "")
        if missing.any():
            raise DataPackageError(f"{_where(r, _first(missing), col)}: value is missing")
    missing_b = (r["trial_kind"] == "choice") & (r["stimulus_id_b"] == "")
    if missing_b.any():
        raise DataPackageError(f"{_where(r, _first(missing_b), 'stimulus_id_b')}: "
                               "a choice trial needs the right-hand image")
    unknown = rated & ~r["question_id"].isin(list(design.questions))
    if unknown.any():
        i = _first(unknown)
        raise DataPackageError(f"{_where(r, i, 'question_id')}: {r['question_id'].iloc[i]!r} is not a question of "
                               "the study (datapackage.json culturelab.questions)")
    kinds = r["question_id"].map(lambda q: design.questions.get(q, {}).get("kind", ""))
    mismatch = rated & (kinds != r["trial_kind"])
    if mismatch.any():
        i = _first(mismatch)
        raise DataPackageError(f"{_where(r, i, 'trial_kind')}: {r['trial_kind'].iloc[i]!r} but question "
                               f"{r['question_id'].iloc[i]!r} is {kinds.iloc[i]!r}")
    num = pd.to_numeric(r["value"].where(rated & (r["value"] != "")), errors="coerce")
    not_number = rated & (r["value"] != "") & num.isna()
    if not_number.any():
        i = _first(not_number)
        raise DataPackageError(f"{_where(r, i, 'value')}: {r['value'].iloc[i]!r} is not a number")
    lo = r["question_id"].map(lambda q: design.questions.get(q, {}).get("scale", {}).get("min", np.nan))
    hi = r["question_id"].map(lambda q: design.questions.get(q, {}).get("scale", {}).get("max", np.nan))
    out_of_range = rated & num.notna() & ((num < lo) | (num > hi))
    out_of_range |= rated & num.notna() & r["trial_kind"].isin(["likert", "choice"]) & (num % 1 != 0)
    if out_of_range.any():
        i = _first(out_of_range)
        raise DataPackageError(f"{_where(r, i, 'value')}: {r['value'].iloc[i]!r} is outside question "
                               f"{r['question_id'].iloc[i]!r} scale {lo.iloc[i]:g}..{hi.iloc[i]:g}")
    r["value_num"] = num.astype(float)
    missing_value = rated & num.isna()
    dropped = {"missing_value": int(missing_value.sum())} if missing_value.any() else {}
    if missing_value.any():
        log.warning("%d responses have no value and are set aside (counted in the report)", int(missing_value.sum()))
    return dropped


def load_package(root: str | Path) -> Package:
    """Read and validate an export package folder (Contract 2); raises DataPackageError on any problem."""
    root = Path(root)
    desc_path = root / "datapackage.json"
    if not desc_path.is_file():
        raise DataPackageError(f"{root}: no datapackage.json (is this an export folder?)")
    try:
        desc = json.loads(desc_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataPackageError(f"datapackage.json: not valid JSON: {exc}") from exc
    resources = {res.get("name"): res for res in desc.get("resources", []) if isinstance(res, dict)}
    for name in TABLES:
        if name not in resources:
            raise DataPackageError(f"datapackage.json: resource {name!r} is missing")
    tables = {name: _load_resource(root, resources[name], name) for name in TABLES}
    participants, stimuli, responses = tables["participants"], tables["stimuli"], tables["responses"]
    _check_unique(participants, "participant_id")
    _check_unique(stimuli, "stimulus_id")
    _check_unique(responses, "response_id")
    _check_foreign_key(responses, "participant_id", participants, "participant_id")
    _check_foreign_key(responses, "stimulus_id", stimuli, "stimulus_id")
    _check_foreign_key(responses, "stimulus_id_b", stimuli, "stimulus_id")
    bad_status = ~participants["status"].isin(STATUSES)
    if bad_status.any():
        i = _first(bad_status)
        raise DataPackageError(f"{_where(participants, i, 'status')}: {participants['status'].iloc[i]!r} "
                               f"is not one of {STATUSES}")
    design = _design(desc.get("culturelab"), participants, stimuli, responses)
    group_ids = {g["id"] for g in design.culture_groups}
    unknown = (participants["culture_group"] != "") & ~participants["culture_group"].isin(group_ids)
    if unknown.any():
        i = _first(unknown)
        raise DataPackageError(f"{_where(participants, i, 'culture_group')}: unknown culture group "
                               f"{participants['culture_group'].iloc[i]!r} (study has {sorted(group_ids)})")
    no_group = (participants["culture_group"] == "") & (participants["status"] == "completed")
    if no_group.any():
        raise DataPackageError(f"{_where(participants, _first(no_group), 'culture_group')}: "
                               "a completed participant has no culture group")
    dropped = _check_responses(responses, design, participants)
    log.info("loaded %s: %d participants, %d stimuli, %d responses", root, len(participants), len(stimuli),
             len(responses))
    return Package(participants, stimuli, responses, design, root, dropped)


def long_table(pkg: Package, question_id: str) -> pd.DataFrame:
    """One row per analysable response to a rating question, with the culture columns the models need."""
    r = pkg.responses
    r = r[(r["question_id"] == question_id) & r["trial_kind"].isin(RATING_KINDS) & r["value_num"].notna()]
    groups = pkg.participants.set_index("participant_id")["culture_group"]
    cultures = pkg.stimuli.set_index("stimulus_id")["culture"]
    out = pd.DataFrame({
        "participant": r["participant_id"].to_numpy(),
        "culture_group": r["participant_id"].map(groups).to_numpy(),
        "stimulus": r["stimulus_id"].to_numpy(),
        "stimulus_culture": r["stimulus_id"].map(cultures).to_numpy(),
        "trial_index": r["trial_index"].astype(int).to_numpy(),
        "value": r["value_num"].to_numpy(),
    })
    out = out[out["culture_group"] != ""]
    out["match"] = [int(pkg.design.owns(g, c)) for g, c in zip(out["culture_group"], out["stimulus_culture"])]
    return out.reset_index(drop=True)
