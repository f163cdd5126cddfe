"""Quotas and answers under real concurrency: threads racing through separate connections.

On PostgreSQL the guarantee comes from the single guarded UPDATE; on SQLite from the writer lock taken at
BEGIN IMMEDIATE. Either way, exactly `quota` participants may get in, however many race for the places.
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select

from culturelab.platform.db import session_scope
from culturelab.platform.models import CultureGroup, Participant, Response, Trial

from bot import Bot

BACKGROUND = {"culture_group": "east_asian"}


def post(app, url: str, body: dict) -> int:
    """One request on its own client (and so its own database connection)."""
    return app.test_client().post(url, json=body).status_code


def race(n: int, fn):
    barrier = threading.Barrier(n)

    def run(i):
        barrier.wait()
        return fn(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n)))


def test_racing_for_the_last_place_exactly_one_wins(app, load):
    slug = load(recruitment={"quotas": {"east_asian": 3}})
    setup = app.test_client()
    bots = [Bot(setup, slug) for _ in range(3)]
    for bot in bots:
        bot.consent()
    assert bots[0].background().status_code == 200  # two places left … then one
    assert bots[1].background().status_code == 200

    racers = bots[2:] + [Bot(setup, slug) for _ in range(7)]
    for bot in racers[1:]:
        bot.consent()
    statuses = race(len(racers), lambda i: post(app, f"{racers[i].base}/background", BACKGROUND))
    assert sorted(statuses) == [200] + [409] * (len(racers) - 1)
    with session_scope(app) as session:
        group = session.scalar(select(CultureGroup).where(CultureGroup.key == "east_asian"))
        assert (group.filled, group.quota) == (3, 3)
        assert (
            session.scalar(
                select(func.count())
                .select_from(Participant)
                .where(Participant.culture_group == "east_asian", Participant.status == "started")
            )
            == 3
        )


def test_many_racing_for_a_few_places(app, load):
    slug = load(recruitment={"quotas": {"east_asian": 4, "west_african": 100}})
    setup = app.test_client()
    bots = [Bot(setup, slug) for _ in range(12)]
    for bot in bots:
        bot.consent()
    statuses = race(len(bots), lambda i: post(app, f"{bots[i].base}/background", BACKGROUND))
    assert statuses.count(200) == 4 and statuses.count(409) == 8
    with session_scope(app) as session:
        ordinals = session.scalars(select(Participant.ordinal).where(Participant.ordinal.is_not(None))).all()
        assert sorted(ordinals) == [0, 1, 2, 3]  # each assigned participant got its own Latin-square row


def test_ordinals_count_within_each_culture_group_under_a_race(app, load):
    """The Latin-square row comes from the place taken in the group's quota: every group's participants
    get 0, 1, 2, ... of their own (orders counterbalanced within each group), however they race."""
    slug = load()
    setup = app.test_client()
    groups = ["east_asian", "west_african"] * 4
    bots = [Bot(setup, slug) for _ in groups]
    for bot in bots:
        bot.consent()
    statuses = race(len(bots), lambda i: post(app, f"{bots[i].base}/background", {"culture_group": groups[i]}))
    assert statuses == [200] * len(bots)
    with session_scope(app) as session:
        rows = session.execute(select(Participant.culture_group, Participant.ordinal)).all()
    for group in ("east_asian", "west_african"):
        assert sorted(o for g, o in rows if g == group) == [0, 1, 2, 3]


def test_a_questionnaire_sent_twice_at_once_takes_one_place(app, load):
    slug = load()
    bot = Bot(app.test_client(), slug)
    bot.consent()
    statuses = race(6, lambda i: post(app, f"{bot.base}/background", BACKGROUND))
    assert sorted(statuses) == [200] + [409] * 5
    total = bot.next()["trial"]["total"]
    with session_scope(app) as session:
        group = session.scalar(select(CultureGroup).where(CultureGroup.key == "east_asian"))
        assert group.filled == 1
        assert session.scalar(select(func.count()).select_from(Trial)) == total


def test_a_double_submitted_answer_is_stored_once(app, load):
    slug = load()
    bot = Bot(app.test_client(), slug)
    bot.consent(), bot.background()
    trial = bot.next()["trial"]
    rid = str(uuid.uuid4())
    answer = {"trial_id": trial["id"], "response_id": rid, "value": Bot.good_value(trial), "rt_ms": 10}
    statuses = race(6, lambda i: post(app, f"{bot.base}/responses", answer))
    assert sorted(statuses) == [200] * 5 + [201]
    # Different response ids for the same trial at once: one stored, the rest 409.
    trial = bot.next()["trial"]
    statuses = race(
        6,
        lambda i: post(
            app,
            f"{bot.base}/responses",
            {
                "trial_id": trial["id"],
                "response_id": str(uuid.uuid4()),
                "value": Bot.good_value(trial),
                "rt_ms": 10,
            },
        ),
    )
    assert sorted(statuses) == [201] + [409] * 5
    with session_scope(app) as session:
        assert session.scalar(select(func.count()).select_from(Response)) == 2
        assert session.scalar(select(Participant.n_answered)) == 2
