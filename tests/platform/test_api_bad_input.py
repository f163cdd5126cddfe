"""Every bad request gets a 4xx in the API's error shape (docs/contracts.md), stores nothing, and leaves earlier
answers alone; what a participant typed wrong is said in plain words, in their language, naming the field."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from culturelab.platform.db import session_scope
from culturelab.platform.models import Participant, Response

from bot import Bot


def snapshot(app):
    with session_scope(app) as session:
        responses = session.execute(select(Response.response_id, Response.value).order_by(Response.id)).all()
        participants = session.scalar(select(func.count()).select_from(Participant))
        return responses, participants


def assert_error(r, status, code=None, field=None):
    assert r.status_code == status, r.data
    body = r.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"} | ({"field"} if field else set())
    if field:
        assert body["error"]["field"] == field, body
    assert "Traceback" not in body["error"]["message"]
    if code:
        assert body["error"]["code"] == code, body


@pytest.fixture
def midway(app, client, load):
    """A participant with two answers stored."""
    bot = Bot(client, load())
    bot.consent(), bot.background()
    for _ in range(2):
        assert bot.answer(bot.next()["trial"]).status_code == 201
    return bot


ANSWER_CASES = [
    ("value as string", {"value": "3"}, "invalid"),
    ("value as float", {"value": 3.5}, "invalid"),
    ("value missing", {"value": None}, "invalid"),
    ("rt negative", {"rt_ms": -1}, "invalid"),
    ("rt absurd", {"rt_ms": 10**9}, "invalid"),
    ("rt as bool", {"rt_ms": True}, "invalid"),
    ("response id not a uuid", {"response_id": "abc"}, "invalid"),
    ("trial id as string", {"trial_id": "1"}, "invalid"),
    ("unknown field", {"extra": 1}, "invalid"),
    ("hidden negative", {"hidden_ms": -1}, "invalid"),
    ("hidden longer than the trial", {"hidden_ms": 501}, "invalid"),
    ("hidden as float", {"hidden_ms": 1.5}, "invalid"),
]


@pytest.mark.parametrize("name,change,code", ANSWER_CASES, ids=[c[0] for c in ANSWER_CASES])
def test_bad_answers_are_400_and_store_nothing(app, client, midway, name, change, code):
    before = snapshot(app)
    trial = midway.next()["trial"]
    body = {
        "trial_id": trial["id"],
        "response_id": str(uuid.uuid4()),
        "value": Bot.good_value(trial),
        "rt_ms": 500,
    }
    body.update(change)
    body = {k: v for k, v in body.items() if v is not None}
    assert_error(client.post(f"{midway.base}/responses", json=body), 400, code)
    assert snapshot(app) == before
    assert midway.next()["trial"]["index"] == 2


def test_out_of_range_values_for_each_kind(app, client, midway):
    before = snapshot(app)
    nxt = midway.next()
    seen: set[str] = set()
    answered = 0
    while not nxt["done"] and len(seen) < 4:
        trial = nxt["trial"]
        scale = trial["question"]["scale"]
        for bad in (scale["min"] - 1, scale["max"] + 1):
            assert_error(midway.answer(trial, value=bad), 400, "invalid")
        seen.add(trial["kind"])
        r = midway.answer(trial)
        assert r.status_code == 201
        answered += 1
        nxt = r.get_json()["next"]
    assert seen == {"likert", "slider", "choice", "attention"}
    assert len(snapshot(app)[0]) == len(before[0]) + answered


def test_unknown_and_foreign_trials(app, client, load, midway):
    other = Bot(client, "motif-test")
    other.consent(), other.background()
    before = snapshot(app)
    foreign = other.next()["trial"]
    assert_error(midway.answer(foreign, value=Bot.good_value(foreign)), 404, "unknown_trial")
    assert_error(midway.answer(dict(foreign, id=10**6), value=1), 404, "unknown_trial")
    assert snapshot(app) == before


@pytest.mark.parametrize(
    "data,content_type,code",
    [
        (b"{not json", "application/json", "malformed_json"),
        (b"[1, 2]", "application/json", "malformed_json"),
        (b"", "application/json", "malformed_json"),
        ("\udcff".encode("utf-8", "surrogatepass"), "application/json", "malformed_json"),
    ],
)
def test_malformed_bodies(app, client, midway, data, content_type, code):
    before = snapshot(app)
    assert_error(client.post(f"{midway.base}/responses", data=data, content_type=content_type), 400, code)
    assert snapshot(app) == before


def test_oversized_body_is_413(app, client, midway):
    before = snapshot(app)
    body = b'{"trial_id": 1, "pad": "' + b"x" * 100_000 + b'"}'
    assert_error(
        client.post(f"{midway.base}/responses", data=body, content_type="application/json"),
        413,
        "body_too_large",
    )
    assert snapshot(app) == before


def test_unknown_study_token_and_endpoint(client, load):
    load()
    assert_error(client.post("/api/v1/studies/nope/participants", json={}), 404, "unknown_study")
    assert_error(client.get("/api/v1/participants/not-a-token/next"), 404, "unknown_participant")
    assert_error(client.post("/api/v1/participants/not-a-token/consent", json={"consent": True}), 404)
    assert_error(client.get("/api/v1/nothing-here"), 404, "not_found")
    assert_error(client.delete("/api/v1/studies/motif-test/participants"), 405, "method_not_allowed")


@pytest.mark.parametrize(
    "body,code",
    [
        ({"language": "fr"}, "bad_language"),
        ({"language": "not a tag"}, "invalid"),
        ({"source": "facebook"}, "invalid"),
        ({"external_id": "a b c"}, "invalid"),
        ({"external_id": 12}, "invalid"),
        ({"surprise": True}, "invalid"),
    ],
)
def test_bad_participant_creation(app, client, load, body, code):
    load()
    before = snapshot(app)
    assert_error(client.post("/api/v1/studies/motif-test/participants", json=body), 400, code)
    assert snapshot(app) == before


@pytest.mark.parametrize(
    "change,path,en,zh",
    [
        ({"culture_group": "martian"}, "culture_group", "Please choose the cultural background", "请选择"),
        ({"culture_group": ""}, "culture_group", "Please choose the cultural background", "请选择"),
        ({"country_of_birth": "XX"}, "country_of_birth", "Please choose a country from the list", "国家"),
        ({"country_of_residence": "gb"}, "country_of_residence", "Please choose a country from the list", "国家"),
        ({"languages": ["en", "klingon!"]}, "languages", "Please choose languages from the list.", "语言"),
        ({"languages": "en"}, "languages", "Please choose languages from the list.", "语言"),
        ({"languages": ["en"] * 21}, "languages", "Choose at most 20 languages.", "最多选择 20 种语言"),
        ({"age": 17}, "age", "Please enter your age in years (18 to 120)", "18"),
        ({"age": 121}, "age", "Please enter your age in years (18 to 120)", "120"),
        ({"age": "30"}, "age", "Please enter your age in years (18 to 120)", "年龄"),
        ({"gender": "x" * 65}, "gender", "Please describe your gender in at most 64 characters.", "64"),
        ({"art_training": 4}, "art_training", "Please choose one of the answers about training in art", "艺术"),
        ({"favourite_colour": "blue"}, "favourite_colour", "no question “favourite_colour”", "favourite_colour"),
    ],
)
@pytest.mark.parametrize("language", ["en", "zh"])
def test_bad_background_is_400_in_plain_words_naming_the_field(app, client, load, change, path, en, zh, language):
    bot = Bot(client, load(), language=language)
    bot.consent()
    r = bot.background(**change)
    assert_error(r, 400, "invalid", field=path)
    message = r.get_json()["error"]["message"]
    assert (en if language == "en" else zh) in message
    # Never pydantic's wording ("Input should be…", "List should have at most 20 items after validation")
    # nor the developer's "field: problem" form.
    assert "validation" not in message and "should" not in message.lower() and f"{path}:" not in message
    # Nothing was taken: the participant can still answer correctly, and no quota place was used.
    assert bot.background().status_code == 200


def test_consent_must_be_a_boolean(client, load):
    bot = Bot(client, load())
    assert_error(client.post(f"{bot.base}/consent", json={"consent": "yes"}), 400, "invalid")
    assert_error(client.post(f"{bot.base}/consent", json={}), 400, "invalid")
    assert bot.consent().status_code == 200


def test_a_language_with_a_region_gets_the_base_catalogue_or_english(client, load):
    texts = {"en": "x", "pt-BR": "y", "zh-Hant": "z"}
    slug = load(languages=["en", "pt-BR", "zh-Hant"], title=texts, consent=texts, culture_groups=[
        {"id": "east_asian", "label": texts}, {"id": "west_african", "label": texts},
    ], questions=[{"id": "liking", "kind": "likert", "scale": {"min": 1, "max": 7}, "text": texts}])
    for language, words in (("pt-BR", "Please enter your age"), ("zh-Hant", "请输入您的年龄")):
        bot = Bot(client, slug, language=language)
        bot.consent()
        r = bot.background(age=12)
        assert_error(r, 400, "invalid", field="age")
        assert words in r.get_json()["error"]["message"]
        assert bot.background().status_code == 200
        assert client.get(f"/p/{bot.token}").status_code == 200
        nxt = bot.next()  # the attention checks' wording comes from the catalogue too
        while not nxt["done"]:
            nxt = bot.answer(nxt["trial"]).get_json()["next"]
