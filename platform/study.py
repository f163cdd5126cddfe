"""The study file a researcher writes (docs/contracts.md, "The study"), validated with pydantic.

Every error names the field's path (``questions[1].scale.max``) and what was expected; the whole file is
checked before anything is stored.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]
Key = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]
LangTag = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")]
Text = dict[LangTag, Annotated[str, StringConstraints(min_length=1)]]


class StudyError(ValueError):
    """A study file that cannot be used, with one line per problem (each naming the field's path)."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CultureGroupSpec(Strict):
    id: Key
    label: Text


class Scale(Strict):
    min: int
    max: int
    # Optional anchors per language: [label at min, label at max].
    labels: dict[LangTag, Annotated[list[str], Field(min_length=2, max_length=2)]] | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Scale:
        if self.max <= self.min:
            raise ValueError(f"max ({self.max}) must be greater than min ({self.min})")
        if self.max - self.min > 100:
            raise ValueError("a scale may have at most 101 points")
        return self


class Question(Strict):
    id: Key
    kind: Literal["likert", "slider", "choice"]
    text: Text
    scale: Scale | None = None
    # choice: two cultures' images (any content), or two cultures' versions of one content image (style
    # transfer and translation sets), so that only the style differs between the two
    pairs: Literal["cultures", "same_content"] = "cultures"

    @model_validator(mode="after")
    def _scale_and_pairs_fit_the_kind(self) -> Question:
        if self.kind == "likert" and self.scale is None:
            raise ValueError("a likert question needs a scale, e.g. {min: 1, max: 7}")
        if self.kind == "slider" and self.scale is not None and (self.scale.min, self.scale.max) != (0, 100):
            raise ValueError("a slider question is always 0-100 (scale: {min: 0, max: 100})")
        if self.kind == "choice" and self.scale is not None:
            raise ValueError("a choice question has no scale")
        if self.kind != "choice" and self.pairs != "cultures":
            raise ValueError("only a choice question has pairs")
        return self

    @property
    def bounds(self) -> tuple[int, int]:
        if self.kind == "choice":
            return (0, 1)
        if self.kind == "slider":
            return (0, 100)
        assert self.scale is not None
        return (self.scale.min, self.scale.max)


class Design(Strict):
    trials_per_participant: Annotated[int, Field(ge=1, le=1000)]
    order: Literal["latin_square", "random"] = "random"
    balance: list[Literal["stimulus_culture"]] = []
    attention_checks: Annotated[int, Field(ge=0, le=50)] = 0
    practice: bool = True


class Recruitment(Strict):
    quotas: dict[Key, Annotated[int, Field(ge=0)]] = {}
    completion_url: str | None = None
    # A fixed code (Prolific gives one per study); without it every participant gets a unique code.
    completion_code: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")] | None = None

    @model_validator(mode="after")
    def _url(self) -> Recruitment:
        if self.completion_url is not None and not re.match(r"^https?://", self.completion_url):
            raise ValueError("completion_url must start with http:// or https://")
        return self


class StudySpec(Strict):
    slug: Slug
    title: Text
    languages: Annotated[list[LangTag], Field(min_length=1)]
    culture_groups: Annotated[list[CultureGroupSpec], Field(min_length=1)]
    stimulus_sets: Annotated[list[str], Field(min_length=1)]
    match: dict[Key, list[Key]] = {}
    questions: Annotated[list[Question], Field(min_length=1)]
    design: Design
    recruitment: Recruitment = Recruitment()
    consent: Text
    instructions: Text | None = None

    @model_validator(mode="after")
    def _consistent(self) -> StudySpec:
        problems: list[str] = []
        langs = set(self.languages)
        if len(langs) != len(self.languages):
            problems.append("languages: a language is listed twice")
        texts: list[tuple[str, dict[str, str] | None]] = [
            ("title", self.title),
            ("consent", self.consent),
            ("instructions", self.instructions),
            *((f"culture_groups[{i}].label", g.label) for i, g in enumerate(self.culture_groups)),
            *((f"questions[{i}].text", q.text) for i, q in enumerate(self.questions)),
        ]
        for i, q in enumerate(self.questions):
            if q.scale is not None and q.scale.labels is not None:
                texts.append((f"questions[{i}].scale.labels", q.scale.labels))
        for path, text in texts:
            if text is not None and (missing := sorted(langs - set(text))):
                problems.append(f"{path}: missing text for language(s) {', '.join(missing)}")
        group_ids = [g.id for g in self.culture_groups]
        if len(set(group_ids)) != len(group_ids):
            problems.append("culture_groups: two groups share an id")
        question_ids = [q.id for q in self.questions]
        if len(set(question_ids)) != len(question_ids):
            problems.append("questions: two questions share an id")
        for key in self.match:
            if key not in group_ids:
                problems.append(
                    f"match.{key}: not a culture group id (expected one of {', '.join(group_ids)})"
                )
        for key in self.recruitment.quotas:
            if key not in group_ids:
                problems.append(
                    f"recruitment.quotas.{key}: not a culture group id (expected one of {', '.join(group_ids)})"
                )
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _format_errors(exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors():
        path = ""
        for part in err["loc"]:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "string_pattern_mismatch":
            message = f"{err['input']!r} does not match the pattern {err['ctx']['pattern']}"
        problems.append(f"{path}: {message}" if path else message)
    return problems


def parse_study(document: object) -> StudySpec:
    try:
        return StudySpec.model_validate(document)
    except ValidationError as exc:
        raise StudyError(_format_errors(exc)) from None


def read_study(path: Path) -> StudySpec:
    """Reads and validates a study YAML file; raises StudyError naming every problem."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise StudyError([f"cannot read ({exc.strerror})"]) from None
    except yaml.YAMLError as exc:
        raise StudyError([f"not valid YAML ({exc})".replace("\n", " ")]) from None
    if not isinstance(document, dict):
        raise StudyError(["expected a mapping of study fields at the top level"])
    return parse_study(document)
