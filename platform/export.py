"""The export data package (docs/contracts.md, Contract 2): a Frictionless Data Package of three tables.

Rows are streamed from the database in batches straight to the files, so memory stays flat however
large the study grows. The package is written to a temporary folder and renamed into place: a reader
never sees half a package. Text a participant typed is written so that a spreadsheet cannot run it as a
formula (`spreadsheet_safe`); the analysis loader undoes that.
"""

from __future__ import annotations

import csv
import json
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import and_, func, join, select
from sqlalchemy.orm import Session, aliased

from culturelab.platform.models import (
    Participant,
    Response,
    Stimulus,
    StimulusSet,
    Study,
    Trial,
    study_stimulus_sets,
)
from culturelab.platform.study_specs import attention_scale, spec_of

BATCH = 5000


@dataclass(frozen=True)
class Field:
    name: str
    type: str  # Frictionless Table Schema type
    description: str


PARTICIPANTS = [
    Field("participant_id", "string", "Pseudonym of the participant (never the recruitment id)"),
    Field("study", "string", "Study slug"),
    Field(
        "culture_group",
        "string",
        "Culture group the participant chose (a study culture_groups id); empty if not answered",
    ),
    Field("country_of_birth", "string", "ISO 3166-1 alpha-2 code, or empty"),
    Field("country_of_residence", "string", "ISO 3166-1 alpha-2 code, or empty"),
    Field("language", "string", "BCP 47 tag of the interface language used"),
    Field("age", "integer", "Age in years (18-120), or empty"),
    Field(
        "gender",
        "string",
        "Gender as the participant described it, or empty; a value starting with = + - @ tab, carriage return "
        "or ' has one more ' in front (spreadsheet formula protection)",
    ),
    Field(
        "art_training",
        "integer",
        "Art or design training: 0 none, 1 some courses, 2 degree, 3 professional; or empty",
    ),
    Field("source", "string", "Recruitment source: prolific, mturk or link"),
    Field("status", "string", "started, completed, withdrawn or screened_out"),
    Field("started_at", "datetime", "When the participant opened the study (UTC)"),
    Field("completed_at", "datetime", "When the last answer was stored (UTC), or empty"),
    Field("attention_passed", "integer", "Attention checks answered as instructed"),
    Field("attention_total", "integer", "Attention checks answered"),
    Field("languages", "string", "Languages the participant speaks fluently: BCP 47 tags joined by ';', or empty"),
]
STIMULI = [
    Field("stimulus_id", "string", "Stimulus id from the stimulus set manifest"),
    Field("stimulus_set", "string", "Name of the stimulus set"),
    Field("culture", "string", "Culture condition of the image (largest mix weight)"),
    Field("mix", "string", "Culture weights as JSON text, summing to 1"),
    Field("method", "string", "How the image was made: cgan, nst, translation or human"),
    Field("seed", "integer", "Generator seed, or empty"),
    Field("sha256", "string", "SHA-256 of the image file"),
]
RESPONSES = [
    Field("response_id", "string", "UUID chosen by the client for this answer"),
    Field("participant_id", "string", "Pseudonym of the participant"),
    Field("trial_index", "integer", "0-based position of the trial in the order shown"),
    Field("trial_kind", "string", "likert, slider, choice or attention"),
    Field("question_id", "string", "Question id from the study file ('attention' for attention checks)"),
    Field("stimulus_id", "string", "The image rated; for choice, the left-hand image"),
    Field("stimulus_id_b", "string", "Choice: the right-hand image; else empty"),
    Field(
        "value",
        "number",
        "likert: the point; slider: 0-100; choice: 0 = stimulus_id, 1 = stimulus_id_b; attention: the answer",
    ),
    Field("correct", "boolean", "Attention checks: whether the instructed answer was given; else empty"),
    Field("rt_ms", "integer", "Response time measured in the browser (ms)"),
    Field("created_at", "datetime", "When the server stored the answer (UTC)"),
    Field(
        "hidden_ms",
        "integer",
        "Of rt_ms, how long the page was hidden or out of focus (browser-measured); empty if not measured",
    ),
]

# OWASP's CSV injection rule: a cell starting with one of these is a formula (or becomes one) in Excel,
# LibreOffice or Google Sheets; one leading apostrophe makes it text. A value that already starts with an
# apostrophe gets one too, so that removing exactly one leading apostrophe always restores the value.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")


def spreadsheet_safe(text: str | None) -> str | None:
    """Participant-typed text as exported (Contract 2): one extra leading ' where a spreadsheet would see a
    formula."""
    return "'" + text if text and text.startswith(FORMULA_STARTS) else text


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is not None:  # PostgreSQL's are aware; SQLite returns naive ones, stored in UTC
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat() + "Z"


def _batches(rows: Iterable[tuple]) -> Iterator[list[tuple]]:
    batch: list[tuple] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _participant_rows(session: Session, study: Study) -> Iterator[tuple]:
    # The attention checks each participant answered, counted in one grouped join rather than a subquery per
    # participant, so the plan does not hang on the database's statistics: an outer join (participants who
    # answered none count 0) to their attention trials and those trials' answers.
    answered = join(Trial, Response, Response.trial_id == Trial.id)
    checks = and_(Trial.participant_id == Participant.id, Trial.kind == "attention")
    query = (
        select(
            Participant,
            func.count(Response.id),
            func.count(Response.id).filter(Response.correct.is_(True)),
        )
        .outerjoin(answered, checks)
        .where(Participant.study_id == study.id, Participant.status != "withdrawn")
        .group_by(Participant.id)
        .order_by(Participant.id)
        .execution_options(yield_per=BATCH)
    )
    for p, total, passed in session.execute(query):
        row = {
            "participant_id": p.pseudonym,
            "study": study.slug,
            "culture_group": p.culture_group,
            "country_of_birth": p.country_of_birth,
            "country_of_residence": p.country_of_residence,
            "language": p.language,
            "age": p.age,
            "gender": spreadsheet_safe(p.gender),
            "art_training": p.art_training,
            "source": p.source,
            "status": p.status,
            "started_at": _iso(p.started_at),
            "completed_at": _iso(p.completed_at),
            "attention_passed": passed,
            "attention_total": total,
            "languages": ";".join(p.languages) if p.languages else None,
        }
        yield tuple(row[f.name] for f in PARTICIPANTS)


def _stimulus_rows(session: Session, study: Study) -> Iterator[tuple]:
    query = (
        select(Stimulus, StimulusSet.name)
        .join(StimulusSet, StimulusSet.id == Stimulus.set_id)
        .join(study_stimulus_sets, study_stimulus_sets.c.set_id == Stimulus.set_id)
        .where(study_stimulus_sets.c.study_id == study.id)
        .order_by(Stimulus.id)
        .execution_options(yield_per=BATCH)
    )
    for s, set_name in session.execute(query):
        row = {
            "stimulus_id": s.key,
            "stimulus_set": set_name,
            "culture": s.culture,
            "mix": json.dumps(s.mix, sort_keys=True),
            "method": s.method,
            "seed": s.seed,
            "sha256": s.sha256,
        }
        yield tuple(row[f.name] for f in STIMULI)


def _response_rows(session: Session, study: Study) -> Iterator[list[tuple]]:
    """The responses in batches of plain tuples: a million rows are most of an export's time, so they skip
    the ORM's row objects and per-row dictionaries (the columns are checked against RESPONSES once)."""
    stim_a, stim_b = aliased(Stimulus), aliased(Stimulus)
    query = (
        select(
            Response.response_id,
            Participant.pseudonym.label("participant_id"),
            Trial.position.label("trial_index"),
            Trial.kind.label("trial_kind"),
            Trial.question_id,
            stim_a.key.label("stimulus_id"),
            stim_b.key.label("stimulus_id_b"),
            Response.value,
            Response.correct,
            Response.rt_ms,
            Response.created_at,
            Response.hidden_ms,
        )
        .join(Trial, Trial.id == Response.trial_id)
        .join(Participant, Participant.id == Response.participant_id)
        .join(stim_a, stim_a.id == Trial.stimulus_id)
        .outerjoin(stim_b, stim_b.id == Trial.stimulus_b_id)
        .where(and_(Participant.study_id == study.id, Participant.status != "withdrawn"))
        .order_by(Response.participant_id, Trial.position)
        .execution_options(stream_results=True, yield_per=BATCH)
    )
    result = session.connection().execute(query)
    if list(result.keys()) != [f.name for f in RESPONSES]:
        raise AssertionError("the responses query and Contract 2's columns disagree")
    for rows in result.partitions():
        yield [
            (*row[:7], int(row[7]) if row[7].is_integer() else row[7], row[8], row[9], _iso(row[10]), row[11])
            for row in rows
        ]


def _write_csv(path: Path, fields: list[Field], batches: Iterable[list[tuple]]) -> int:
    flags = [i for i, fld in enumerate(fields) if fld.type == "boolean"]  # written true/false
    n = 0
    with path.open("w", newline="", encoding="utf-8") as f:
        # RFC 4180's CRLF rows: the csv module quotes a field holding any character of the line terminator, so
        # a carriage return typed into a text field is quoted too (with "\n" rows it would break the row).
        # None is written as an empty cell.
        writer = csv.writer(f, lineterminator="\r\n")
        writer.writerow([fld.name for fld in fields])
        for batch in batches:
            if flags:
                batch = [_flags_as_text(row, flags) for row in batch]
            writer.writerows(batch)
            n += len(batch)
    return n


def _flags_as_text(row: tuple, flags: list[int]) -> list:
    cells = list(row)
    for i in flags:
        if cells[i] is not None:
            cells[i] = "true" if cells[i] else "false"
    return cells


def _write_parquet(path: Path, fields: list[Field], batches: Iterable[list[tuple]]) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {
        "string": pa.string(),
        "integer": pa.int64(),
        "number": pa.float64(),
        "boolean": pa.bool_(),
        "datetime": pa.string(),
    }
    schema = pa.schema([pa.field(fld.name, types[fld.type]) for fld in fields])
    n = 0
    with pq.ParquetWriter(path, schema) as writer:
        for batch in batches:
            columns = zip(*batch)
            writer.write_table(pa.Table.from_arrays(
                [pa.array(column, type=f.type) for column, f in zip(columns, schema)], schema=schema
            ))
            n += len(batch)
        if n == 0:
            writer.write_table(schema.empty_table())
    return n


def _design(study: Study) -> dict[str, Any]:
    spec = spec_of(study)
    # `text` (per language) is more than Contract 2 asks: the report shows a question by its words.
    questions: dict[str, Any] = {
        q.id: {"kind": q.kind, "scale": {"min": q.bounds[0], "max": q.bounds[1]}, "text": dict(q.text)}
        for q in spec.questions
    }
    if spec.design.attention_checks:
        low, high = attention_scale(spec)
        questions["attention"] = {"kind": "attention", "scale": {"min": low, "max": high}}
    return {
        "match": spec.match,
        "questions": questions,
        "culture_groups": [{"id": g.id, "label": g.label} for g in spec.culture_groups],
        "study": {"slug": spec.slug, "title": spec.title},
    }


def export_study(session: Session, slug: str, out: Path, fmt: str = "csv") -> dict[str, int]:
    """Writes the study's data package to ``out`` (replacing it); returns the row count of each table."""
    study = session.scalar(select(Study).where(Study.slug == slug))
    if study is None:
        raise LookupError(f"there is no study {slug!r}")
    write = {"csv": _write_csv, "parquet": _write_parquet}[fmt]
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        tables = [
            ("participants", PARTICIPANTS, _participant_rows, "participant_id", []),
            ("stimuli", STIMULI, _stimulus_rows, "stimulus_id", []),
            (
                "responses",
                RESPONSES,
                _response_rows,
                "response_id",
                [
                    {
                        "fields": "participant_id",
                        "reference": {"resource": "participants", "fields": "participant_id"},
                    },
                    {"fields": "stimulus_id", "reference": {"resource": "stimuli", "fields": "stimulus_id"}},
                    {
                        "fields": "stimulus_id_b",
                        "reference": {"resource": "stimuli", "fields": "stimulus_id"},
                    },
                ],
            ),
        ]
        counts, resources = {}, []
        for name, fields, rows, key, foreign_keys in tables:
            path = f"{name}.{fmt}"
            batches = rows(session, study) if name == "responses" else _batches(rows(session, study))
            counts[name] = write(tmp / path, fields, batches)
            schema: dict[str, Any] = {
                "fields": [{"name": f.name, "type": f.type, "description": f.description} for f in fields],
                "primaryKey": key,
                "missingValues": [""],
            }
            if foreign_keys:
                schema["foreignKeys"] = foreign_keys
            resources.append(
                {
                    "name": name,
                    "path": path,
                    "profile": "tabular-data-resource",
                    "format": fmt,
                    "mediatype": "text/csv" if fmt == "csv" else "application/vnd.apache.parquet",
                    "encoding": "utf-8",
                    "schema": schema,
                }
            )
        package = {
            "profile": "tabular-data-package",
            "name": slug,
            "title": spec_of(study).title.get("en") or next(iter(spec_of(study).title.values())),
            "created": _iso(datetime.now(UTC)),
            "resources": resources,
            "culturelab": _design(study),
        }
        (tmp / "datapackage.json").write_text(
            json.dumps(package, indent=2, ensure_ascii=False), encoding="utf-8"
        )
        if out.exists():
            shutil.rmtree(out)
        tmp.replace(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return counts
