"""Request bodies of the participant API (DESIGN.md), validated strictly with pydantic.

Strict types: "25" is not an age and 1.0 is not a Likert point; unknown fields are refused, so a typo in
a client never silently drops data.
"""

from __future__ import annotations

import uuid
from functools import cache
from typing import Annotated, Literal

from babel import Locale, UnknownLocaleError
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, ValidationError

# CLDR territory codes that are not ISO 3166-1 countries (groupings, private use, exceptional
# reservations). XK (Kosovo, user-assigned) stays: participants from there need a code too.
_NOT_COUNTRIES = {"EU", "EZ", "UN", "QO", "ZZ", "XA", "XB", "AC", "CP", "CQ", "DG", "EA", "IC", "TA"}


@cache
def country_codes() -> frozenset[str]:
    """ISO 3166-1 alpha-2 codes, as known to CLDR (through Babel)."""
    return frozenset(k for k in Locale("en").territories if len(k) == 2 and k.isalpha()) - _NOT_COUNTRIES


def _country(code: str) -> str:
    if code not in country_codes():
        raise ValueError(f"{code!r} is not an ISO 3166-1 alpha-2 country code")
    return code


def _language_tag(tag: str) -> str:
    try:
        Locale.parse(tag, sep="-")
    except (ValueError, UnknownLocaleError):
        raise ValueError(f"{tag!r} is not a known BCP 47 language tag") from None
    return tag


def _uuid(text: str) -> str:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise ValueError(f"{text!r} is not a UUID") from None


Country = Annotated[str, StringConstraints(min_length=2, max_length=2), AfterValidator(_country)]
LanguageTag = Annotated[str, StringConstraints(min_length=2, max_length=35), AfterValidator(_language_tag)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class CreateParticipant(Body):
    external_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:@-]{1,128}$")] | None = None
    source: Literal["prolific", "mturk", "link"] | None = None
    language: LanguageTag | None = None
    # What the recruitment platform passed besides the participant id (Prolific STUDY_ID, SESSION_ID;
    # MTurk assignmentId, hitId), kept for reconciliation with the platform's records.
    recruitment: Annotated[
        dict[
            Annotated[str, StringConstraints(pattern=r"^[A-Za-z_]{1,32}$")],
            Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:@-]{0,128}$")],
        ],
        Field(max_length=8),
    ] = {}


class Consent(Body):
    consent: bool


class Background(Body):
    culture_group: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    country_of_birth: Country | None = None
    country_of_residence: Country | None = None
    languages: Annotated[list[LanguageTag], Field(max_length=20)] | None = None
    age: Annotated[int, Field(ge=18, le=120)] | None = None
    gender: Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)] | None = None
    art_training: Annotated[int, Field(ge=0, le=3)] | None = None


class Answer(Body):
    trial_id: Annotated[int, Field(ge=1)]
    response_id: Annotated[str, AfterValidator(_uuid)]
    value: int
    # Browser-measured, from stimulus onset to the answer; an hour bounds any honest trial.
    rt_ms: Annotated[int, Field(ge=0, le=3_600_000)]


class Language(Body):
    language: LanguageTag


def describe(exc: ValidationError) -> str:
    """One line naming each bad field and what was expected."""
    parts = []
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"]) or "body"
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown field"
        parts.append(f"{path}: {message}")
    return "; ".join(parts)
