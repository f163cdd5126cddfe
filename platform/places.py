"""Places in a culture group's quota that come back: against quota squatting.

Anyone can take a place (create, consent, answer the questionnaire) and never answer a trial. A place held by
a participant with no answer for ``idle_minutes`` (the study's PLACE_IDLE_MINUTES, default 30) goes back to
the pool: that participant's participation ends (screened out, reason ``timed_out``; an answer sent later
is refused like any after the end) and their place, with its ordinal and so its Latin-square row, passes to
the next participant of the group. A new place under the quota is always taken first, so recycling costs
nothing until the group is full.

One place, one participant, with any number of server processes: every step is a guarded UPDATE that only
one transaction can win (PostgreSQL re-checks the WHERE after the row lock; SQLite's writer lock
serialises whole transactions), and a loser moves on to the next candidate.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, and_, bindparam, func, select, update

from culturelab.platform import journey_sql as sql
from culturelab.platform.models import Participant, Response, utcnow

IDLE_MINUTES = 30
TIMED_OUT = "timed_out"
# Attempts at the pool's lowest ordinal before giving up: each lost race means another transaction took a
# place, so more attempts than racing transactions are never needed in practice.
ATTEMPTS = 32

_p, _r = Participant.__table__, Response.__table__
_last_active = func.coalesce(
    select(func.max(_r.c.created_at)).where(_r.c.participant_id == _p.c.id).scalar_subquery(), _p.c.started_at
)
_HOLDING = and_(
    _p.c.study_id == bindparam("study_id"),
    _p.c.culture_group == bindparam("group"),
    _p.c.status == "started",
    _p.c.ordinal.is_not(None),
)
_IDLE = select(_p.c.id, _p.c.n_answered).where(_HOLDING, _last_active < bindparam("cutoff"))
# Guarded by the state read: a participant who answered meanwhile keeps their place.
_TIME_OUT = (
    update(_p)
    .where(_p.c.id == bindparam("pid"), _p.c.status == "started", _p.c.n_answered == bindparam("n"))
    .values(status="screened_out", status_reason=TIMED_OUT)
)
_FREE = (
    select(_p.c.id, _p.c.ordinal)
    .where(
        _p.c.study_id == bindparam("study_id"),
        _p.c.culture_group == bindparam("group"),
        _p.c.status_reason == TIMED_OUT,
        _p.c.ordinal.is_not(None),
    )
    .order_by(_p.c.ordinal)
    .limit(1)
)
# The place passes on: the timed-out participant's ordinal is cleared, by exactly one transaction.
_HAND_OVER = update(_p).where(_p.c.id == bindparam("pid"), _p.c.ordinal.is_not(None)).values(ordinal=None)


def take_place(connection: Connection, study_id: int, group: str, idle_minutes: float = IDLE_MINUTES,
               now: datetime | None = None) -> int | None:
    """The ordinal (0-based) of the place taken in the group, or None when the group is full and nobody's
    place has gone idle. The caller's transaction stores the ordinal on its participant."""
    filled = connection.execute(sql.CLAIM_PLACE, {"group_study_id": study_id, "group": group}).scalar()
    if filled is not None:
        return filled - 1
    ordinal = _reuse(connection, study_id, group)
    if ordinal is None:
        # Looked again even when this transaction released nothing: a racing one may have released the
        # places this one found idle (its UPDATEs waited for that one's commit, then changed nothing).
        release_idle(connection, study_id, group, idle_minutes, now)
        ordinal = _reuse(connection, study_id, group)
    return ordinal


def release_idle(connection: Connection, study_id: int, group: str, idle_minutes: float = IDLE_MINUTES,
                 now: datetime | None = None) -> int:
    """Ends the participations in the group idle for ``idle_minutes`` and puts their places in the pool;
    returns how many."""
    cutoff = (now or utcnow()) - timedelta(minutes=idle_minutes)
    idle = connection.execute(_IDLE, {"study_id": study_id, "group": group, "cutoff": cutoff}).all()
    return sum(connection.execute(_TIME_OUT, {"pid": pid, "n": n}).rowcount for pid, n in idle)


def free_places(connection: Connection, study_id: int) -> dict[str, int]:
    """Places given back and not taken again yet, per group."""
    query = (
        select(_p.c.culture_group, func.count())
        .where(_p.c.study_id == study_id, _p.c.status_reason == TIMED_OUT, _p.c.ordinal.is_not(None))
        .group_by(_p.c.culture_group)
    )
    return dict(connection.execute(query).all())


def _reuse(connection: Connection, study_id: int, group: str) -> int | None:
    for _ in range(ATTEMPTS):
        free = connection.execute(_FREE, {"study_id": study_id, "group": group}).first()
        if free is None:
            return None
        if connection.execute(_HAND_OVER, {"pid": free.id}).rowcount:
            return free.ordinal
    return None
