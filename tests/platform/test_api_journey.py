"""The participant API: a whole journey, resume, idempotency, completion — on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from culturelab.platform.db import session_scope
from culturelab.platform.models import Participant, Response, Trial

from bot import Bot


def count(app, model, *where):
    with session_scope(app) as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def test_whole_journey_stores_every_answer_and_ends_with_the_code(app, client, load):
    slug = load()
    bot = Bot(client, slug, language="zh", external_id="PID123", source="prolific")
    assert not bot.resume
    assert bot.consent().get_json() == {"stage": "background"}
    assert bot.background().get_json() == {"stage": "trials", "total": 14}
    first = bot.next()
    assert first["done"] is False
    trial = first["trial"]
    assert trial["index"] == 0 and trial["total"] == 14
    assert trial["question"]["text"] in {"你有多喜欢这张图片?", "它有多美?", "你更喜欢哪一张?"}
    assert all(s["url"].startswith("/media/") for s in trial["stimuli"])
    nxt = first
    kinds = []
    while not nxt["done"]:
        kinds.append(nxt["trial"]["kind"])
        r = bot.answer(nxt["trial"], rt_ms=1234)
        assert r.status_code == 201
        assert r.get_json()["stored"] is True
        nxt = r.get_json()["next"]
    assert sorted(set(kinds)) == ["attention", "choice", "likert", "slider"]
    assert kinds.count("attention") == 2
    assert nxt == {
        "done": True,
        "completion_code": "C1234ABC",
        "redirect_url": "https://app.prolific.com/submissions/complete?cc=C1234ABC",
    }
    assert count(app, Response) == 14
    with session_scope(app) as session:
        p = session.scalar(select(Participant))
        assert (p.status, p.completed_at is not None, p.source, p.language) == (
            "completed",
            True,
            "prolific",
            "zh",
        )
        assert {r.rt_ms for r in session.scalars(select(Response))} == {1234}
        assert all(
            r.correct for r in session.scalars(select(Response).join(Trial).where(Trial.kind == "attention"))
        )
    # Finished: /next keeps answering with the completion, and nothing more can be stored.
    assert bot.next()["done"] is True


def test_each_answer_is_committed_when_its_request_returns(app, client, load):
    bot = Bot(client, load())
    bot.consent(), bot.background()
    trial = bot.next()["trial"]
    assert bot.answer(trial).status_code == 201
    assert count(app, Response) == 1


def test_returning_with_the_same_prolific_id_resumes_at_the_first_unanswered_trial(client, load):
    slug = load()
    prolific = {"STUDY_ID": "st1", "SESSION_ID": "se1"}
    bot = Bot(client, slug, external_id="PID-9", source="prolific", recruitment=prolific)
    bot.consent(), bot.background()
    for _ in range(3):
        bot.answer(bot.next()["trial"])
    again = Bot(client, slug, external_id="PID-9", source="prolific", recruitment=prolific)
    assert again.resume is True and again.token == bot.token
    assert again.next()["trial"]["index"] == 3


@pytest.mark.parametrize(
    ("source", "first", "second"),
    [
        ("prolific", {"SESSION_ID": "se1"}, {"SESSION_ID": "se2"}),  # another Prolific session
        ("prolific", {"SESSION_ID": "se1"}, {}),  # the id alone, as anyone who learnt it could send
        ("prolific", {}, {}),  # no session to compare: nothing proves it is the same person
        ("mturk", {"assignmentId": "A1"}, {"assignmentId": "A2"}),
    ],
)
def test_a_recruitment_id_alone_hands_over_nothing(client, load, source, first, second):
    slug = load()
    owner = Bot(client, slug, external_id="PID-7", source=source, recruitment=first)
    owner.consent(), owner.background()
    r = client.post(f"/api/v1/studies/{slug}/participants", headers={"Accept-Language": "zh"},
                    json={"external_id": "PID-7", "source": source, "recruitment": second, "language": "zh"})
    assert r.status_code == 409
    body = r.get_data(as_text=True)
    assert r.get_json()["error"]["code"] == "already_enrolled" and owner.token not in body
    assert "浏览器" in r.get_json()["error"]["message"]  # in the language the page asked for
    # Nor under the other platform's name.
    other = "mturk" if source == "prolific" else "prolific"
    r = client.post(f"/api/v1/studies/{slug}/participants",
                    json={"external_id": "PID-7", "source": other, "recruitment": first})
    assert r.status_code == 409 and owner.token not in r.get_data(as_text=True)


def test_the_same_mturk_assignment_resumes(client, load):
    slug = load()
    hit = {"assignmentId": "3ASSIGN", "hitId": "3HIT"}
    bot = Bot(client, slug, external_id="A1B2", source="mturk", recruitment=hit)
    again = Bot(client, slug, external_id="A1B2", source="mturk", recruitment=hit)
    assert again.resume and again.token == bot.token


def test_a_repeated_response_id_stores_nothing_new_and_answers_200(app, client, load):
    bot = Bot(client, load())
    bot.consent(), bot.background()
    trial = bot.next()["trial"]
    rid = str(uuid.uuid4())
    first = bot.answer(trial, response_id=rid)
    second = bot.answer(trial, response_id=rid)
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.get_json()["stored"] is False
    assert second.get_json()["next"] == first.get_json()["next"]
    assert count(app, Response) == 1


def test_a_second_different_answer_to_a_trial_is_409_and_keeps_the_first(app, client, load):
    bot = Bot(client, load())
    bot.consent(), bot.background()
    trial = bot.next()["trial"]
    assert bot.answer(trial, value=bot.good_value(trial)).status_code == 201
    r = bot.answer(trial)
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "already_answered"
    # The same response_id with a different value is not a retry either.
    with session_scope(app) as session:
        stored = session.scalar(select(Response))
        rid, value = stored.response_id, stored.value
    r = bot.answer(trial, response_id=rid, value=1 if value != 1 else 0)
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "response_id_reused"
    assert count(app, Response) == 1


def test_answers_are_taken_in_order(client, load):
    bot = Bot(client, load())
    bot.consent(), bot.background()
    trial = bot.next()["trial"]
    later = dict(trial, id=trial["id"] + 1)
    r = bot.answer(later, value=1)
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "not_current_trial"


def test_declining_consent_screens_out(app, client, load):
    bot = Bot(client, load())
    assert bot.consent(False).get_json() == {"stage": "screened_out"}
    r = client.get(f"{bot.base}/next")
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "screened_out"
    with session_scope(app) as session:
        assert session.scalar(select(Participant.status)) == "screened_out"


def test_stages_are_enforced(client, load):
    bot = Bot(client, load())
    r = client.get(f"{bot.base}/next")
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "consent_required"
    assert bot.background().status_code == 409
    bot.consent()
    r = client.get(f"{bot.base}/next")
    assert r.get_json()["error"]["code"] == "background_required"
    assert bot.background().status_code == 200
    assert bot.background().get_json()["error"]["code"] == "background_already_given"


def test_an_answer_before_consent_or_background_says_which_stage_is_missing(client, load):
    bot = Bot(client, load())
    answer = {"trial_id": 1, "response_id": "0b7e1f3a-5d34-4c7e-9a53-2f1e0c6d8a11", "value": 1, "rt_ms": 900}
    r = client.post(f"{bot.base}/responses", json=answer)
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "consent_required"
    bot.consent()
    r = client.post(f"{bot.base}/responses", json=answer)
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "background_required"


def test_error_messages_are_worded_in_the_language_the_page_asks_for(client, load):
    bot = Bot(client, load(), language="zh")
    zh = {"Accept-Language": "zh"}
    r = client.get(f"{bot.base}/next", headers=zh)
    assert r.get_json()["error"] == {"code": "consent_required", "message": "请先表示同意"}
    assert client.get(f"{bot.base}/next").get_json()["error"]["message"] == "consent must be given first"
    bot.consent(), bot.background()
    trial = bot.next()["trial"]
    low, high = trial["question"]["scale"]["min"], trial["question"]["scale"]["max"]
    r = client.post(f"{bot.base}/responses", headers=zh, json={
        "trial_id": trial["id"], "response_id": "5c0f7a2e-1b8d-4e6f-a3c9-7d2b4e8f1a60", "value": high + 1,
        "rt_ms": 900})
    assert r.status_code == 400
    assert r.get_json()["error"]["message"] == f"value:应为 {low} 到 {high} 之间的整数,收到的是 {high + 1}"
    r = client.get("/api/v1/participants/not-a-token/next", headers=zh)
    assert r.status_code == 404 and r.get_json()["error"]["message"] == "此参与链接无效"


def test_full_quota_screens_out_politely(client, load):
    slug = load(recruitment={"quotas": {"east_asian": 1, "west_african": 0}})
    assert Bot(client, slug).complete("east_asian")["done"]
    late = Bot(client, slug)
    late.consent()
    r = late.background("east_asian")
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "quota_full"
    page = client.get(f"/p/{late.token}")
    assert b"This study is full" in page.data


def test_participant_state_and_language_switch(client, load):
    bot = Bot(client, load())
    state = client.get(bot.base).get_json()
    assert state == {"stage": "consent", "language": "en", "study": "motif-test", "answered": 0, "total": 0}
    assert client.post(f"{bot.base}/language", json={"language": "zh"}).get_json() == {"language": "zh"}
    r = client.post(f"{bot.base}/language", json={"language": "fr"})
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "bad_language"
