"""The participant API's OpenAPI 3.1 description, served at /api/v1/openapi.json (docs/contracts.md).

Request bodies are the JSON Schemas of the pydantic models that validate them (validation.py), so they cannot
drift from what the API accepts. Replies are described here, closed (no undeclared fields), and
tests/platform/test_api_openapi.py checks every reply of a whole journey, errors included, against them.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from culturelab.platform.validation import Answer, Background, Consent, CreateParticipant, Language

REQUESTS: list[type[BaseModel]] = [CreateParticipant, Language, Consent, Background, Answer]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _closed(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties, "additionalProperties": False}


_NULLABLE_TEXT = {"type": ["string", "null"]}
STAGES = ["consent", "background", "trials", "done", "screened_out", "withdrawn"]

REPLIES: dict[str, dict[str, Any]] = {
    "Error": _closed(["error"], error=_closed(
        ["code", "message"],
        code={"type": "string", "description": "Stable, e.g. invalid, not_found, already_answered"},
        message={"type": "string", "description": "What is wrong, in the request's Accept-Language where the "
                                                  "platform has it (the participant's language where `field` is set)"},
        field={"type": "string", "description": "The request field a participant can correct"},
    )),
    "Created": _closed(["token", "resume"], token={"type": "string"}, resume={"type": "boolean"}),
    "State": _closed(
        ["stage", "language", "study", "answered", "total"],
        stage={"enum": STAGES}, language={"type": "string"}, study={"type": "string"},
        answered={"type": "integer", "minimum": 0}, total={"type": "integer", "minimum": 0},
    ),
    "LanguageSet": _closed(["language"], language={"type": "string"}),
    "Stage": _closed(["stage"], stage={"enum": STAGES}),
    "Placed": _closed(["stage", "total"], stage={"enum": STAGES}, total={"type": "integer", "minimum": 1}),
    "Stimulus": _closed(
        ["id", "url"],
        id={"type": "string", "pattern": "^[0-9a-f]{24}$",
            "description": "Opaque: names no culture, set or method (docs/contracts.md)"},
        url={"type": "string", "pattern": "^/media/[0-9]+/[0-9a-f]{24}[.]png$"},
    ),
    "Trial": _closed(
        ["id", "index", "total", "kind", "question", "stimuli"],
        id={"type": "integer"}, index={"type": "integer", "minimum": 0}, total={"type": "integer", "minimum": 1},
        kind={"enum": ["likert", "slider", "choice", "attention"]},
        question=_closed(
            ["id", "text", "scale"], id={"type": "string"}, text={"type": "string"},
            scale=_closed(
                ["min", "max", "labels"], min={"type": "integer"}, max={"type": "integer"},
                labels={"anyOf": [{"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 2},
                                  {"type": "null"}]},
            ),
        ),
        stimuli={"type": "array", "items": _ref("Stimulus"), "minItems": 1, "maxItems": 2},
    ),
    "Next": {"oneOf": [
        _closed(["done", "trial", "preload"], done={"const": False}, trial=_ref("Trial"),
                preload={"type": "array", "items": {"type": "string"},
                         "description": "The next trial's image URLs, to fetch while this one is shown"}),
        _closed(["done", "completion_code", "redirect_url"], done={"const": True},
                completion_code=_NULLABLE_TEXT, redirect_url=_NULLABLE_TEXT),
    ]},
    "Stored": _closed(
        ["stored", "response_id", "next"],
        stored={"type": "boolean", "description": "false: this response_id was stored before; nothing new"},
        response_id={"type": "string", "format": "uuid"}, next=_ref("Next"),
    ),
}


def _json(schema: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


def _operation(summary: str, replies: dict[int, tuple[str, str]], body: str | None = None) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "responses": {str(code): _json(schema, text) for code, (schema, text) in replies.items()},
    }
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(body)}}}
    return operation


_BAD = (400, ("Error", "A malformed body or a bad value"))
_NO_PARTICIPANT = (404, ("Error", "Unknown token"))
_TOKEN = [{"name": "token", "in": "path", "required": True, "schema": {"type": "string"},
           "description": "The participant's unguessable token (no cookie, so no CSRF)"}]


@cache
def document() -> dict[str, Any]:
    _, definitions = models_json_schema(
        [(model, "validation") for model in REQUESTS], ref_template="#/components/schemas/{model}"
    )
    participant = "/api/v1/participants/{token}"
    paths = {
        "/api/v1/studies/{slug}/participants": {
            "parameters": [{"name": "slug", "in": "path", "required": True, "schema": {"type": "string"}}],
            "post": _operation("Become a participant (or resume, with the same external_id and platform session)", {
                201: ("Created", "A new participant"),
                200: ("Created", "The same external_id and recruitment session (Prolific SESSION_ID, MTurk "
                                 "assignmentId) again: resumed"),
                409: ("Error", "already_enrolled: the external_id started elsewhere, without that session; or "
                               "study_closed: the study takes no new participants"),
                _BAD[0]: _BAD[1], 404: ("Error", "Unknown study"), 429: ("Error", "Too many from this address"),
            }, "CreateParticipant"),
        },
        participant: {
            "parameters": _TOKEN,
            "get": _operation("Where the participant is", {200: ("State", "The stage"), 404: _NO_PARTICIPANT[1]}),
        },
        f"{participant}/language": {
            "parameters": _TOKEN,
            "post": _operation("Switch the interface language", {
                200: ("LanguageSet", "Switched"), _BAD[0]: _BAD[1], 404: _NO_PARTICIPANT[1],
            }, "Language"),
        },
        f"{participant}/consent": {
            "parameters": _TOKEN,
            "post": _operation("Give or decline consent (declining ends the participation)", {
                200: ("Stage", "Recorded"), _BAD[0]: _BAD[1], 404: _NO_PARTICIPANT[1],
                409: ("Error", "Consent already recorded otherwise, or the participation ended"),
            }, "Consent"),
        },
        f"{participant}/background": {
            "parameters": _TOKEN,
            "post": _operation("Answer the background questionnaire; assigns the trials", {
                200: ("Placed", "Stored; the trials are assigned"),
                400: ("Error", "A refused answer, with `field` and a message in the participant's language"),
                404: _NO_PARTICIPANT[1], 409: ("Error", "quota_full, or already answered, or consent missing"),
            }, "Background"),
        },
        f"{participant}/next": {
            "parameters": _TOKEN,
            "get": _operation("The current trial, or the completion", {
                200: ("Next", "A trial, or the end"), 404: _NO_PARTICIPANT[1],
                409: ("Error", "Not at the trials stage"),
            }),
        },
        f"{participant}/responses": {
            "parameters": _TOKEN,
            "post": _operation("Answer the current trial; the reply carries the next", {
                201: ("Stored", "Stored"), 200: ("Stored", "This response_id was stored before: nothing new"),
                _BAD[0]: _BAD[1], 404: ("Error", "Unknown token or trial"),
                409: ("Error", "already_answered, not_current_trial, response_id_reused, consent_required, "
                               "background_required, or the participation ended (screened_out, withdrawn)"),
            }, "Answer"),
        },
        "/api/v1/openapi.json": {
            "get": {"summary": "This description", "responses": {"200": {
                "description": "OpenAPI 3.1", "content": {"application/json": {"schema": {"type": "object"}}},
            }}},
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "CultureLab participant API",
            "version": "1",
            "description": "What a participant's page, the bots and the load tests use; docs/contracts.md says "
                           "the rest (opaque stimulus ids, the error shape).",
        },
        "paths": paths,
        "components": {"schemas": {**definitions["$defs"], **REPLIES}},
    }
