"""Quota squatting: places held by participants who stopped answering go back to the pool, and so do those of
participants who withdraw or are deleted before completing; one place to one participant however many
processes race for it (places.py)."""

from __future__ import annotations

import re
import threading
import time
from datetime import timedelta

from click.testing import CliRunner
from sqlalchemy import select, update
from test_researcher import account, signed_in

from culturelab.platform import places
from culturelab.platform.app import create_app
from culturelab.platform.cli import main
from culturelab.platform.config import TestConfig
from culturelab.platform.db import session_scope
from culturelab.platform.models import Participant, Study, utcnow
from culturelab.platform.withdrawal import delete_participant

from bot import Bot


def later():
    """When places untouched since now will have been idle for 30 minutes."""
    return utcnow() + timedelta(minutes=31)


def squatters(app, client, slug, n=2):
    bots = [Bot(client, slug) for _ in range(n)]
    for bot in bots:
        assert bot.consent().status_code == 200 and bot.background("east_asian").status_code == 200
    return bots


def take(app, now=None, idle_minutes=30):
    with session_scope(app) as session:
        study_id = session.scalar(select(Study.id))
        return places.take_place(session.connection(), study_id, "east_asian", idle_minutes, now or later())


def state(app, bot):
    with session_scope(app) as session:
        p = session.scalar(select(Participant).where(Participant.token == bot.token))
        return p.status, p.status_reason, p.ordinal


def test_an_idle_place_goes_to_the_next_participant_and_an_active_one_stays(app, client, load):
    slug = load(recruitment={"quotas": {"east_asian": 2}})
    idle, active = squatters(app, client, slug)
    assert take(app, now=utcnow()) is None  # full, and nobody idle yet
    with session_scope(app) as session:  # both took their places 40 minutes ago
        session.execute(update(Participant).values(started_at=utcnow() - timedelta(minutes=40)))
    assert active.answer(active.next()["trial"]).status_code == 201  # and one of them is still answering
    assert take(app, now=utcnow()) == 0  # the idle participant's place, with its ordinal
    assert state(app, idle) == ("screened_out", "timed_out", None)  # the place passed on
    assert state(app, active) == ("started", None, 1)
    assert take(app, now=utcnow()) is None  # one place, one participant
    # The timed-out participant's participation has ended: a late answer is refused.
    assert client.get(f"/api/v1/participants/{idle.token}/next").status_code == 409


def test_places_come_back_lowest_ordinal_first(app, client, load):
    slug = load(recruitment={"quotas": {"east_asian": 3}})
    bots = squatters(app, client, slug, 3)
    assert [state(app, b)[2] for b in bots] == [0, 1, 2]
    assert [take(app) for _ in range(4)] == [0, 1, 2, None]


def test_racing_processes_share_out_each_freed_place_once(app, client, load, database_url, tmp_path):
    slug = load(recruitment={"quotas": {"east_asian": 2}})
    squatters(app, client, slug)
    config = {k: getattr(TestConfig, k) for k in dir(TestConfig) if k.isupper()}
    other = create_app({**config, "DATABASE_URL": database_url, "DATA_DIR": str(tmp_path / "other")})
    results, barrier = [], threading.Barrier(8)

    def claim(i):
        barrier.wait()
        results.append(take((app, other)[i % 2]))

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    other.extensions["culturelab.engine"].dispose()
    assert sorted(r for r in results if r is not None) == [0, 1] and results.count(None) == 6


def test_release_idle_on_the_command_line_and_the_dashboard(app, client, load, database_url, tmp_path, monkeypatch):
    slug = load(recruitment={"quotas": {"east_asian": 2}})
    squatters(app, client, slug)
    account(app, "ada@example.org", slug)
    monkeypatch.setenv("CULTURELAB_DATABASE_URL", database_url)
    monkeypatch.setenv("CULTURELAB_DATA_DIR", str(tmp_path / "data"))
    run = CliRunner()
    result = run.invoke(main, ["study", "release-idle", slug], catch_exceptions=False)
    assert result.output.strip() == f"gave back 0 place(s) of study '{slug}' (idle for 30 minutes or more)"
    result = run.invoke(main, ["study", "release-idle", "nope"])
    assert result.exit_code == 2 and "there is no study 'nope'" in result.output
    with session_scope(app) as session:
        study_id = session.scalar(select(Study.id))
        assert places.release_idle(session.connection(), study_id, "east_asian", 30, later()) == 2
    html = signed_in(app, "ada@example.org").get("/researcher/").get_data(as_text=True)
    assert re.search(r'data-group="east_asian"><td>East Asian</td><td>0</td><td data-held>0</td><td data-free>2</td>',
                     html)
    assert take(app) == 0
    html = signed_in(app, "ada@example.org").get("/researcher/").get_data(as_text=True)
    assert re.search(r'<td>1</td><td data-held>0</td><td data-free>1</td><td>2</td>', html)


def test_a_full_group_takes_the_place_of_an_idle_participant_through_the_api(app, client, load):
    slug = load(recruitment={"quotas": {"east_asian": 1}})
    idle = Bot(client, slug)
    idle.consent()
    assert idle.background("east_asian").status_code == 200
    trial = idle.next()["trial"]
    late = Bot(client, slug)
    late.consent()
    assert late.background("east_asian").status_code == 409  # full, and nobody idle yet

    app.config["PLACE_IDLE_MINUTES"] = 0.001  # 60 ms
    time.sleep(0.2)
    newcomer = Bot(client, slug)
    newcomer.consent()
    assert newcomer.background("east_asian").status_code == 200
    refused = idle.answer(trial)
    assert refused.status_code == 409 and refused.get_json()["error"]["code"] == "screened_out"
    assert not newcomer.next()["done"]


def pseudonym_of(app, bot) -> str:
    with session_scope(app) as session:
        return session.scalar(select(Participant.pseudonym).where(Participant.token == bot.token))


def gets_in(client, slug) -> bool:
    """Whether a new participant of the group gets a place."""
    newcomer = Bot(client, slug)
    assert newcomer.consent().status_code == 200
    status = newcomer.background("east_asian").status_code
    assert status in (200, 409)
    return status == 200


def test_withdrawing_before_completing_gives_the_place_back_at_once(app, client, load):
    slug = load(recruitment={"quotas": {"east_asian": 1}})
    (holder,) = squatters(app, client, slug, 1)
    assert holder.answer(holder.next()["trial"]).status_code == 201  # answering: not idle
    assert not gets_in(client, slug)
    assert client.post("/withdraw", data={"code": holder.token}).status_code == 200
    assert state(app, holder) == ("withdrawn", "withdrew", None)
    newcomer = Bot(client, slug)
    newcomer.consent()
    assert newcomer.background("east_asian").status_code == 200
    assert state(app, newcomer) == ("started", None, 0)  # the withdrawn participant's place and ordinal
    assert not gets_in(client, slug)  # one place, one participant


def test_a_participant_deleted_from_the_dashboard_gives_the_place_back(app, client, load):
    slug = load(recruitment={"quotas": {"east_asian": 1}})
    (holder,) = squatters(app, client, slug, 1)
    account(app, "ada@example.org", slug)
    ada = signed_in(app, "ada@example.org")
    r = ada.post(f"/researcher/studies/{slug}/participants/delete", data={"participant_id": pseudonym_of(app, holder)})
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/researcher/#study-{slug}")
    html = ada.get("/researcher/").get_data(as_text=True)
    assert re.search(r'data-group="east_asian"><td>East Asian</td><td>0</td><td data-held>0</td><td data-free>1</td>',
                     html)
    assert gets_in(client, slug) and not gets_in(client, slug)


def test_completed_participants_keep_their_places_when_they_withdraw_or_are_deleted(app, client, load):
    slug = load(recruitment={"quotas": {"east_asian": 2}})
    first, second = Bot(client, slug), Bot(client, slug)
    first.complete(), second.complete()
    assert client.post("/withdraw", data={"code": first.token}).status_code == 200
    code = pseudonym_of(app, second)
    with session_scope(app) as session:
        assert delete_participant(session, session.scalar(select(Study.id)), code, "test")
    assert not gets_in(client, slug)


def test_a_place_let_go_by_a_time_out_a_withdrawal_and_a_deletion_at_once_comes_back_once(
    app, client, load, database_url, tmp_path
):
    slug = load(recruitment={"quotas": {"east_asian": 1}})
    (holder,) = squatters(app, client, slug, 1)
    code = pseudonym_of(app, holder)
    config = {k: getattr(TestConfig, k) for k in dir(TestConfig) if k.isupper()}
    other = create_app({**config, "DATABASE_URL": database_url, "DATA_DIR": str(tmp_path / "other")})
    with session_scope(app) as session:
        study_id = session.scalar(select(Study.id))
    barrier, failures = threading.Barrier(3), []

    def time_out():
        with session_scope(app) as session:
            places.release_idle(session.connection(), study_id, "east_asian", 30, later())

    def withdraw():  # 404 when the deletion came first
        assert other.test_client().post("/withdraw", data={"code": holder.token}).status_code in (200, 404)

    def delete():
        with session_scope(other) as session:
            assert delete_participant(session, study_id, code, "test")

    def run(action):
        barrier.wait()
        try:
            action()
        except BaseException as exc:  # a place given back twice fails on the pool's primary key
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(a,)) for a in (time_out, withdraw, delete)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    other.extensions["culturelab.engine"].dispose()
    assert failures == []
    with session_scope(app) as session:
        assert places.free_places(session.connection(), study_id) == {"east_asian": 1}
    assert gets_in(client, slug) and not gets_in(client, slug)
