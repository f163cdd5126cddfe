"""A study's validated spec as the participant side reads it: parsed once per worker and spec version, and
the rules derived from it that several modules need (the attention checks' scale).

The participant API reads a study as a `StudyRef` (its id and spec version, one plain row); the spec
document itself is read from the database only when this worker has not parsed that version yet.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from culturelab.platform.models import Study
from culturelab.platform.study import StudySpec

_specs: dict[str, StudySpec] = {}


class StudyRef:
    """What the participant API needs of a study: its id, spec version and whether it takes new participants."""

    def __init__(self, session: Session, study_id: int, spec_sha256: str, recruiting: bool):
        self.session, self.id, self.spec_sha256, self.recruiting = session, study_id, spec_sha256, recruiting

    @cached_property
    def spec(self) -> dict[str, Any]:
        return self.session.scalar(select(Study.spec).where(Study.id == self.id))


def spec_of(study: Study | StudyRef) -> StudySpec:
    """The study's validated spec; parsed once per worker and spec version (keyed by its sha256)."""
    spec = _specs.get(study.spec_sha256)
    if spec is None:
        document = {k: v for k, v in study.spec.items() if k != "stimulus_set_ids"}
        spec = _specs[study.spec_sha256] = StudySpec.model_validate(document)
    return spec


def attention_scale(spec: StudySpec) -> tuple[int, int]:
    """The scale an attention check is answered on: the study's first Likert question's, else 1-5."""
    likert = next((q for q in spec.questions if q.kind == "likert"), None)
    return likert.bounds if likert else (1, 5)
