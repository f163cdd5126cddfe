"""/api/v1/openapi.json describes the participant API truly: a valid OpenAPI 3.1 document naming every route
with its methods, whose schemas accept every request a participant sends and every reply the API gives,
errors included (replies are closed: an undeclared field fails)."""

from __future__ import annotations

import re
import uuid

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from culturelab.platform.bots import Participant

from bot import FlaskTransport


class Recording(FlaskTransport):
    """The bot's transport, keeping (method, path, body, status, reply) of every API call."""

    def __init__(self, client):
        super().__init__(client)
        self.calls = []

    def request(self, method, path, body=None):
        reply = super().request(method, path, body)
        if path.startswith("/api/"):
            self.calls.append((method, path, body, reply.status_code, reply.get_json()))
        return reply


@pytest.fixture
def described(client):
    r = client.get("/api/v1/openapi.json")
    assert r.status_code == 200 and r.mimetype == "application/json"
    return r.get_json()


def operation_of(document, method: str, path: str) -> dict:
    for template, item in document["paths"].items():
        if re.fullmatch(re.sub(r"\{\w+\}", "[^/]+", template), path):
            return item[method.lower()]
    raise AssertionError(f"{method} {path} is not described")


def check(document, schema: dict, instance) -> None:
    validator = Draft202012Validator({**schema, "components": document["components"]})
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(instance)]
    assert not errors, errors


def test_the_description_is_valid_openapi_and_names_every_route(app, described):
    validate(described)
    routes = {}
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1"):
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
            routes.setdefault(path, set()).update(m.lower() for m in rule.methods - {"HEAD", "OPTIONS"})
    described_routes = {path: set(item) - {"parameters"} for path, item in described["paths"].items()}
    assert described_routes == routes


def test_every_request_and_reply_of_a_journey_fits_the_description(client, load, described):
    slug = load()
    transport = Recording(client)
    bot = Participant(transport, slug, language="zh", external_id="PID-1", source="prolific",
                      recruitment={"STUDY_ID": "s1", "SESSION_ID": "se1"})
    bot.create()
    bot.create()  # resumed: 200
    transport.request("GET", bot.base)
    transport.request("POST", f"{bot.base}/language", {"language": "en"})
    transport.request("GET", f"{bot.base}/next")  # 409: consent first
    bot.consent()
    bot.background(languages=["en"] * 21)  # 400 with a field
    bot.background()
    nxt = bot.next()
    while not nxt["done"]:
        trial = nxt["trial"]
        body = {"trial_id": trial["id"], "response_id": str(uuid.uuid4()), "value": bot.good_value(trial),
                "rt_ms": 700, "hidden_ms": 0}
        reply = transport.request("POST", f"{bot.base}/responses", body)
        transport.request("POST", f"{bot.base}/responses", body)  # the same again: 200
        nxt = reply.get_json()["next"]
    bot.next()
    transport.request("POST", "/api/v1/studies/no-such-study/participants", {})  # 404
    transport.request("POST", f"{bot.base}/responses", {"trial_id": "x"})  # 400
    statuses = set()
    for method, path, body, status, reply in transport.calls:
        operation = operation_of(described, method, path)
        if body is not None and "requestBody" in operation and status < 400:
            check(described, operation["requestBody"]["content"]["application/json"]["schema"], body)
        assert str(status) in operation["responses"], (method, path, status)
        check(described, operation["responses"][str(status)]["content"]["application/json"]["schema"], reply)
        statuses.add(status)
    assert statuses >= {200, 201, 400, 404, 409}
