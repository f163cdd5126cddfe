"""Quota squatting: places held by participants who stopped answering go back to the pool, one place to one
participant however many processes race for it (places.py)."""

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
