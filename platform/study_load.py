"""Loading a study file into the database (`culturelab study load`).

Loading is all or nothing: the file and every stimulus set are checked first, and the database changes
in one transaction. Loading an unchanged file changes nothing. Once participants have started, only what
cannot change their trials may change (texts, quotas, completion settings, the match table, new
languages); anything else is refused with the reason.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from culturelab.platform.models import CultureGroup, Participant, Study
from culturelab.platform.stimuli import StimulusSetError, file_problems, import_set, read_manifest
from culturelab.platform.study import StudyError, StudySpec, read_study


@dataclass
class LoadResult:
    study: Study
    action: str  # created | updated | unchanged


def _spec_document(spec: StudySpec, set_ids: list[int]) -> dict:
    document = spec.model_dump(mode="json")
    document["stimulus_set_ids"] = set_ids  # the imported sets the paths resolved to
    return document


def _structure(document: dict) -> dict:
    """The parts of a study that decide participants' trials, which must not change once they started."""
    return {
        "design": document["design"],
        "stimulus_set_ids": document["stimulus_set_ids"],
        # `pairs` joined the study file later: a study stored before it has choices between cultures
        "questions": [
            [
                q["id"],
                q["kind"],
                (q["scale"] or {}).get("min"),
                (q["scale"] or {}).get("max"),
                q.get("pairs", "cultures"),
            ]
            for q in document["questions"]
        ],
        "culture_groups": [g["id"] for g in document["culture_groups"]],
    }


def set_problems(spec: StudySpec, sets: list[tuple[str, list[str], list[tuple[str, str, str | None]]]]) -> list[str]:
    """What is wrong between a study and its stimulus sets, given as (name, cultures, [(stimulus id, culture,
    content)]) each: `match` naming a culture no set has, a stimulus id in two sets (exports name stimuli by
    id), and a same-content choice with no content image in two cultures to pair."""
    cultures = list(dict.fromkeys(c for _, set_cultures, _ in sets for c in set_cultures))
    problems = [
        f"match.{group}: {culture!r} is not a culture of the stimulus sets ({', '.join(cultures)})"
        for group, owned in spec.match.items()
        for culture in owned
        if culture not in cultures
    ]
    owner: dict[str, str] = {}
    for name, _, stimuli in sets:
        for stimulus_id, _, _ in stimuli:
            if (other := owner.setdefault(stimulus_id, name)) != name:
                problems.append(f"stimulus_sets: stimulus id {stimulus_id!r} is in both {other!r} and {name!r}")
                break
    versions: dict[str, set[str]] = {}
    for _, _, stimuli in sets:
        for _, culture, content in stimuli:
            if content is not None:
                versions.setdefault(content, set()).add(culture)
    if not any(len(c) > 1 for c in versions.values()):
        problems += [
            f"questions.{q.id}: pairs: same_content needs a content image in at least two cultures (a style "
            "transfer or translation set); the stimulus sets have none"
            for q in spec.questions
            if q.pairs == "same_content"
        ]
    return problems


def check_study_file(path: Path) -> tuple[StudySpec | None, list[str]]:
    """Every check `load_study` makes, without a database: the file, each set's manifest and images, and the
    study against its sets. Returns the study (None if the file itself is invalid) and all problems."""
    try:
        spec = read_study(path)
    except StudyError as exc:
        return None, exc.problems
    problems, sets = [], []
    for folder in spec.stimulus_sets:
        where = (path.parent / folder).resolve()
        try:
            manifest, _ = read_manifest(where)
        except StimulusSetError as exc:
            problems.append(f"stimulus_sets: {folder}: {exc}")
            continue
        problems += [f"stimulus_sets: {folder}: {p}" for p in file_problems(where, manifest)]
        sets.append((manifest.name, manifest.cultures, [(e.id, e.culture, e.content) for e in manifest.stimuli]))
    return spec, problems + set_problems(spec, sets)


def load_study(session: Session, spec: StudySpec, base_dir: Path, media_dir: Path) -> LoadResult:
    sets = [import_set(session, (base_dir / p).resolve(), media_dir) for p in spec.stimulus_sets]
    stimuli = [(s.name, s.cultures, [(x.key, x.culture, x.content) for x in s.stimuli]) for s in sets]
    if problems := set_problems(spec, stimuli):
        raise StudyError(problems)
    document = _spec_document(spec, [s.id for s in sets])
    digest = hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()

    study = session.scalar(select(Study).where(Study.slug == spec.slug))
    if study is None:
        study = Study(slug=spec.slug, spec=document, spec_sha256=digest)
        study.groups = [
            CultureGroup(key=g.id, position=i, quota=spec.recruitment.quotas.get(g.id))
            for i, g in enumerate(spec.culture_groups)
        ]
        study.stimulus_sets = sets
        session.add(study)
        session.flush()
        return LoadResult(study, "created")
    if study.spec_sha256 == digest:
        return LoadResult(study, "unchanged")

    started = session.scalar(
        select(func.count()).select_from(Participant).where(Participant.study_id == study.id)
    )
    if started:
        old, new = _structure(study.spec), _structure(document)
        changed = [key for key in new if old[key] != new[key]]
        dropped = sorted(set(study.spec["languages"]) - set(spec.languages))
        if dropped:
            changed.append(f"languages (removes {', '.join(dropped)})")
        if changed:
            raise StudyError(
                [
                    f"study {spec.slug!r} has {started} participant(s); refusing to change {', '.join(changed)} "
                    "(only texts, quotas, completion settings, match and new languages may change now; "
                    "use a new slug for a new design)"
                ]
            )
    study.spec, study.spec_sha256 = document, digest
    study.updated_at = func.now()
    by_key = {g.key: g for g in study.groups}
    for i, g in enumerate(spec.culture_groups):
        group = by_key.get(g.id) or CultureGroup(key=g.id, position=i, study=study)
        group.position, group.quota = i, spec.recruitment.quotas.get(g.id)
    for key, group in by_key.items():
        if key not in {g.id for g in spec.culture_groups}:
            session.delete(group)  # only reachable before anyone started (culture_groups is structural)
    study.stimulus_sets = sets
    session.flush()
    return LoadResult(study, "updated")
