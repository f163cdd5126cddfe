"""Request bodies of the participant API (docs/contracts.md), validated strictly with pydantic.

Strict types: "25" is not an age and 1.0 is not a Likert point; unknown fields are refused, so a typo in
a client never silently drops data. What a participant typed wrong is also said in plain words, in their
language, naming the field (`Problem`), so that the page can show it next to that field.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Literal

from babel import Locale, UnknownLocaleError
from flask_babel import gettext
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

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


# CLDR names these, but they are not languages a person speaks: several, none, undetermined, uncoded.
_NOT_LANGUAGES = {"mul", "zxx", "und", "mis"}


@cache
def language_codes() -> frozenset[str]:
    """ISO 639 codes that CLDR has a name for (through Babel): every language the background form offers,
    including the many (Min Nan, Hakka, Wu, Aymara…) for which CLDR has names but no locale data."""
    return frozenset(k for k in Locale("en").languages if "_" not in k and len(k) in (2, 3)) - _NOT_LANGUAGES


def _language_tag(tag: str) -> str:
    if tag in language_codes():
        return tag
    try:
        Locale.parse(tag, sep="-")  # a tag with script or region subtags ("zh-Hant-TW")
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


MAX_LANGUAGES = 20
MAX_GENDER = 64


class Background(Body):
    culture_group: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    country_of_birth: Country | None = None
    country_of_residence: Country | None = None
    languages: Annotated[list[LanguageTag], Field(max_length=MAX_LANGUAGES)] | None = None
    age: Annotated[int, Field(ge=18, le=120)] | None = None
    gender: Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_GENDER)] | None = None
    art_training: Annotated[int, Field(ge=0, le=3)] | None = None


class Answer(Body):
    trial_id: Annotated[int, Field(ge=1, le=2**31 - 1)]  # the database's integer key
    response_id: Annotated[str, AfterValidator(_uuid), WithJsonSchema({"type": "string", "format": "uuid"})]
    value: int
    # Browser-measured, from stimulus onset to the answer; an hour bounds any honest trial.
    rt_ms: Annotated[int, Field(ge=0, le=3_600_000)]
    # Of that time, how long the page was hidden or out of focus; absent when the client does not measure it.
    hidden_ms: Annotated[int, Field(ge=0, le=3_600_000)] | None = None

    @model_validator(mode="after")
    def _hidden_within_rt(self) -> Answer:
        if self.hidden_ms is not None and self.hidden_ms > self.rt_ms:
            raise ValueError(f"hidden_ms ({self.hidden_ms}) cannot exceed rt_ms ({self.rt_ms}): it is part of it")
        return self


class Language(Body):
    language: LanguageTag


@dataclass
class Problem:
    """One refused answer of the background questionnaire: the field, and what to do, in plain words."""

    field: str
    message: str


def background_problem(field: str, error_type: str = "", max_length: int | None = None) -> Problem:
    """The participant's words for a refused answer, in the current locale (force_locale around it)."""
    if field == "culture_group":
        message = gettext("Please choose the cultural background you identify with most.")
    elif field in ("country_of_birth", "country_of_residence"):
        message = gettext("Please choose a country from the list, or “Prefer not to say”.")
    elif field == "languages" and error_type == "too_long":
        message = gettext("Choose at most %(n)s languages.", n=max_length or MAX_LANGUAGES)
    elif field == "languages":
        message = gettext("Please choose languages from the list.")
    elif field == "age":
        message = gettext("Please enter your age in years (18 to 120), or leave it empty.")
    elif field == "gender":
        message = gettext("Please describe your gender in at most %(n)s characters.", n=MAX_GENDER)
    elif field == "art_training":
        message = gettext("Please choose one of the answers about training in art or design.")
    else:
        message = gettext("This questionnaire has no question “%(name)s”. Please reload the page.", name=field)
    return Problem(field, message)


def background_problems(exc: ValidationError) -> list[Problem]:
    """Each refused field once, in the questionnaire's order, in the participant's words."""
    order = list(Background.model_fields)
    found: dict[str, Problem] = {}
    for err in exc.errors():
        field = str(err["loc"][0]) if err["loc"] else "culture_group"
        if field not in found:
            found[field] = background_problem(field, err["type"], (err.get("ctx") or {}).get("max_length"))
    return sorted(found.values(), key=lambda p: order.index(p.field) if p.field in order else len(order))


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
