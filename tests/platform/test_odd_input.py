"""Input that used to be a 500: NUL characters (PostgreSQL stores none), ids beyond the database's integers,
JSON nested a thousand deep, and a database that cannot be reached (503 with Retry-After, and a page that
tries again by itself)."""

from __future__ import annotations

import uuid

import pytest

from culturelab.platform.app import create_app
from culturelab.platform.config import TestConfig

from bot import Bot


def assert_error(r, status: int, code: str):
    assert r.status_code == status, r.get_data(as_text=True)
    assert r.get_json()["error"]["code"] == code


def test_nul_characters_anywhere_are_refused_not_stored(client, load):
    slug = load()
    assert_error(client.get("/api/v1/participants/ab%00cd/next"), 404, "not_found")
    assert_error(client.post(f"/api/v1/studies/{slug}%00/participants", json={}), 404, "not_found")
    assert client.get(f"/s/{slug}?PROLIFIC_PID=a%00b").status_code == 404
    assert_error(client.post(f"/api/v1/studies/{slug}/participants", json={"recruitment": {"STUDY_ID": "a\x00"}}),
                 400, "invalid")
    bot = Bot(client, slug)
    bot.consent()
    r = bot.background(gender="x\x00y")
    assert_error(r, 400, "invalid")
    assert "NUL" in r.get_json()["error"]["message"]
    assert bot.background().status_code == 200  # nothing half-stored: the questionnaire can still be answered


def test_ids_beyond_the_databases_integers_and_deep_json_are_400(client, load):
    bot = Bot(client, load())
    bot.consent(), bot.background()
    for trial_id in (2**31, 2**63):
        body = {"trial_id": trial_id, "response_id": str(uuid.uuid4()), "value": 1, "rt_ms": 900}
        assert_error(client.post(f"{bot.base}/responses", json=body), 400, "invalid")
    for deep in ("[" * 1000 + "]" * 1000, '{"a":' * 1000 + "1" + "}" * 1000):
        r = client.post(f"{bot.base}/responses", data=deep, content_type="application/json")
        assert_error(r, 400, "malformed_json")
    assert not bot.next()["done"]


@pytest.fixture(params=["sqlite", "postgresql"])
def unreachable(request, tmp_path):
    """An app whose database cannot be reached: a file in a folder that does not exist, or a closed port."""
    url = (f"sqlite:///{tmp_path / 'gone' / 'db.sqlite3'}" if request.param == "sqlite"
           else "postgresql+psycopg://postgres@127.0.0.1:9/none?connect_timeout=2")
    app = create_app({**{k: getattr(TestConfig, k) for k in dir(TestConfig) if k.isupper()},
                      "DATABASE_URL": url, "DATA_DIR": str(tmp_path / "data")})
    yield app.test_client()
    app.extensions["culturelab.engine"].dispose()


def test_a_database_outage_is_503_with_retry_after(unreachable):
    r = unreachable.post("/api/v1/studies/any/participants", json={"language": "en"})
    assert_error(r, 503, "unavailable")
    assert r.headers["Retry-After"] == "5"
    page = unreachable.get("/s/any")
    assert page.status_code == 503 and page.headers["Retry-After"] == "5"
    html = page.get_data(as_text=True)
    assert '<meta http-equiv="refresh" content="5">' in html and "Any answers you gave are saved" in html
