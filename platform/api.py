"""The participant API, /api/v1 (docs/contracts.md): JSON in, JSON out, errors as {"error": {code, message}}
(plus ``field`` where a participant can correct that field).

A participant is identified by the unguessable token in the path, so there is no cookie and no CSRF.
Each request is one transaction: a 201 means the answer is committed. Nothing sent names a stimulus's
culture, set or method: images go by opaque ids (opaque_ids).
"""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

from flask import Blueprint, current_app, jsonify, request, url_for
from flask_babel import LazyString, force_locale, gettext
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException

from culturelab.platform import journey, openapi, security
from culturelab.platform.completion import completion
from culturelab.platform.db import get_session
from culturelab.platform.extensions import LOCALES
from culturelab.platform.opaque_ids import opaque_id
from culturelab.platform.study_specs import attention_scale, spec_of
from culturelab.platform.validation import (
    Answer,
    Background,
    Consent,
    CreateParticipant,
    Language,
    background_problems,
    describe,
)

bp = Blueprint("api", __name__, url_prefix="/api/v1")
M = TypeVar("M", bound=BaseModel)


def ui_locale(language: str) -> str:
    """The translation catalogue for a participant's language: its base language's ("pt-BR" → "pt"), else
    English. (Flask-Babel takes no BCP 47 region or script, so a tag is never passed to it as it is.)"""
    base = language.split("-")[0]
    return base if base in LOCALES else "en"


def error(status: int, code: str, message: str | LazyString, field: str | None = None):
    """The API's error reply; the message is worded in the request's locale (the participant's page sends
    its participant's language as Accept-Language)."""
    payload = {"code": code, "message": str(message)}
    if field is not None:
        payload["field"] = field
    return jsonify({"error": payload}), status


@bp.errorhandler(journey.JourneyError)
def _journey_error(exc: journey.JourneyError):
    get_session().rollback()
    return error(exc.status, exc.code, exc.message, exc.field)


def http_error(exc: HTTPException):
    """HTTP errors under /api/ in the API's shape; registered on the app, since routing errors (404, 405)
    happen before any blueprint is chosen."""
    codes = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}
    return error(exc.code or 400, codes.get(exc.code or 400, "bad_request"), exc.description or exc.name)


@bp.errorhandler(Exception)
def _unexpected(exc: Exception):
    if isinstance(exc, HTTPException):  # raised inside a view, e.g. 413 while reading the body
        return http_error(exc)
    get_session().rollback()
    if database_unavailable(exc):
        current_app.logger.warning("database unavailable: %s", exc)
        reply, status = error(503, "unavailable", "the study is briefly unavailable; nothing was stored, please retry")
        reply.headers["Retry-After"] = RETRY_AFTER_S
        return reply, status
    # Never a stack trace to the client; the log has it.
    current_app.logger.exception("unhandled error in the participant API")
    return error(500, "internal", "the server could not handle this request; nothing was stored")


RETRY_AFTER_S = "5"


def database_unavailable(exc: BaseException) -> bool:
    """The database could not be reached or dropped the connection (a restart, an outage), as opposed to an
    error in what was asked of it."""
    return isinstance(exc, OperationalError | InterfaceError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    )


# A NUL character can be written in JSON (\u0000) but stored in no PostgreSQL text column.
_NUL = re.compile(rb"\\u0000", re.IGNORECASE)


def json_object() -> dict[str, Any]:
    raw = request.get_data(cache=False)
    try:
        document = json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError):
        raise journey.JourneyError(400, "malformed_json", gettext("the request body is not valid JSON")) from None
    except RecursionError:  # nesting deeper than the parser's limit; no request of ours nests more than 3
        raise journey.JourneyError(400, "malformed_json", gettext("the request body is nested too deeply")) from None
    if _NUL.search(raw):
        raise journey.JourneyError(400, "invalid", gettext("text may not contain NUL characters"))
    if not isinstance(document, dict):
        raise journey.JourneyError(400, "malformed_json", gettext("the request body must be a JSON object"))
    return document


def body(model: type[M]) -> M:
    try:
        return model.model_validate(json_object())
    except ValidationError as exc:
        raise journey.JourneyError(400, "invalid", describe(exc)) from None


@bp.get("/openapi.json")
def openapi_description():
    """This API described as OpenAPI 3.1 (openapi.py)."""
    return jsonify(openapi.document())


@bp.post("/studies/<slug>/participants")
def create_participant(slug: str):
    session = get_session()
    try:
        # Against quota squatting from one address: counted in the database, like sign-in attempts, so that
        # the limit holds across every server process and machine.
        limit = current_app.config["PARTICIPANT_CREATE_LIMIT"]
        security.count_by_address(session, "enrol", request.remote_addr, limit)
    except security.Throttled as exc:
        message = gettext("too many new participants from this address (at most %(limit)s)", limit=limit)
        reply, status = error(429, "rate_limited", message)
        reply.headers["Retry-After"] = str(exc.retry_after)
        return reply, status
    data = body(CreateParticipant)
    study = journey.get_study(session, slug)
    created = journey.create_participant(
        session, study, external_id=data.external_id, source=data.source or "link", language=data.language,
        recruitment=data.recruitment,
    )
    session.commit()
    payload = {"token": created.token, "resume": created.resume}
    return jsonify(payload), 200 if created.resume else 201


@bp.get("/participants/<token>")
def participant_state(token: str):
    participant = journey.get_participant(get_session(), token)
    return jsonify(
        {
            "stage": journey.stage(participant),
            "language": participant.language,
            "study": participant.study.slug,
            "answered": participant.n_answered,
            "total": participant.n_trials,
        }
    )


@bp.post("/participants/<token>/language")
def set_language(token: str):
    data = body(Language)
    session = get_session()
    participant = journey.get_participant(session, token)
    journey.set_language(participant, data.language)
    session.commit()
    return jsonify({"language": participant.language})


@bp.post("/participants/<token>/consent")
def consent(token: str):
    data = body(Consent)
    session = get_session()
    participant = journey.participant_state(session, token, trials=False)
    journey.record_consent(session, participant, data.consent)
    session.commit()
    return jsonify({"stage": journey.stage(participant)})


@bp.post("/participants/<token>/background")
def background(token: str):
    session = get_session()
    participant = journey.participant_state(session, token, trials=False)
    # What the participant typed wrong comes back in their language and plain words, naming the field
    # (the first in the questionnaire's order), so that the page shows it there.
    with force_locale(ui_locale(participant.language)):
        try:
            data = Background.model_validate(json_object())
        except ValidationError as exc:
            problem = background_problems(exc)[0]
            raise journey.JourneyError(400, "invalid", problem.message, problem.field) from None
        placed = journey.record_background(session, participant, data.model_dump(),
                                           current_app.config["PLACE_IDLE_MINUTES"])
    session.commit()
    if not placed:
        return error(409, "quota_full", gettext("this group of participants is already full"))
    return jsonify({"stage": journey.stage(participant), "total": participant.n_trials})


@bp.get("/participants/<token>/next")
def next_trial(token: str):
    session = get_session()
    participant = journey.participant_state(session, token)
    return jsonify(_next_payload(session, participant, participant.ahead))


@bp.post("/participants/<token>/responses")
def respond(token: str):
    data = body(Answer)
    session = get_session()
    participant = journey.participant_state(session, token)
    stored = journey.record_response(
        session, participant, data.trial_id, data.response_id, data.value, data.rt_ms, data.hidden_ms
    )
    # The reply carries the next trial, so a participant's page needs one round trip per answer. It is
    # read inside the answer's transaction (one BEGIN/COMMIT per request) and sent only once committed.
    payload = {"stored": stored.created, "response_id": stored.response_id,
               "next": _next_payload(session, participant, stored.trials)}
    session.commit()
    return jsonify(payload), 201 if stored.created else 200


def _next_payload(
    session, participant: journey.ParticipantState, known: dict[int, journey.TrialRow] | None = None
) -> dict[str, Any]:
    trial, following = journey.upcoming(session, participant, known)
    if trial is None:
        return completion(participant)
    preload = [] if following is None else [image["url"] for image in _images(participant, following)]
    return {"done": False, "trial": trial_payload(participant, trial), "preload": preload}


def _images(participant: journey.ParticipantState, trial: journey.TrialRow) -> list[dict[str, str]]:
    """The trial's image, and the right-hand one of a choice, as the participant may see them: an opaque id
    and a URL by that id."""
    shown = [(trial.stimulus_key, trial.stimulus_sha256)]
    if trial.stimulus_b_key is not None:
        shown.append((trial.stimulus_b_key, trial.stimulus_b_sha256))
    study = participant.study.id
    images = []
    for key, sha256 in shown:
        opaque = opaque_id(study, key, sha256)
        images.append({"id": opaque, "url": url_for("pages.media", study=study, opaque=opaque)})
    return images


def trial_payload(participant: journey.ParticipantState, trial: journey.TrialRow) -> dict[str, Any]:
    """The trial as the page shows it; ``trial`` is a row of journey.upcoming."""
    spec = spec_of(participant.study)
    lang = participant.language
    if trial.kind == "attention":
        low, high = attention_scale(spec)
        with force_locale(ui_locale(lang)):
            text = gettext("To show that you are reading carefully, please answer %(n)s for this image.",
                           n=trial.expected)
        question = {"id": trial.question_id, "text": text, "scale": {"min": low, "max": high, "labels": None}}
    else:
        q = next(q for q in spec.questions if q.id == trial.question_id)
        low, high = q.bounds
        labels = q.scale.labels.get(lang) if q.scale and q.scale.labels else None
        question = {"id": q.id, "text": q.text[lang], "scale": {"min": low, "max": high, "labels": labels}}
    return {
        "id": trial.id,
        "index": trial.position,
        "total": participant.n_trials,
        "kind": trial.kind,
        "question": question,
        "stimuli": _images(participant, trial),
    }
