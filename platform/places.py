"""Places in a culture group's quota that come back: against quota squatting, and after a withdrawal or a
deletion.

A group's places are numbered from 0 (the ordinal, which also picks the participant's Latin-square row);
``culture_groups.filled`` counts the numbers handed out. A place comes back to the group's pool (the
``free_places`` table) when its holder has not completed and

- has not answered for ``idle_minutes`` (the study's PLACE_IDLE_MINUTES, default 30): their participation
  ends (screened out, reason ``timed_out``; an answer sent later is refused like any after the end);
- withdraws (withdrawal.py), or a researcher deletes them.

A completed participant keeps their place. A new place under the quota is always taken first, so the pool
costs nothing until the group is full; then the pool's lowest ordinal goes to the next participant.

One place, one participant, with any number of server processes: every step is a guarded UPDATE or DELETE
that only one transaction can win (PostgreSQL re-checks the WHERE after the row lock; SQLite's writer lock
serialises whole transactions), and a loser moves on to the next candidate. The pool's primary key is the
last line: a place given back twice would fail its transaction rather than go to two participants.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, and_, bindparam, delete, func, insert, select, update

from culturelab.platform import journey_sql as sql
from culturelab.platform.models import FreePlace, Participant, Response, utcnow

IDLE_MINUTES = 30
TIMED_OUT = "timed_out"
# Attempts at the pool's lowest ordinal before giving up: each lost race means another transaction took a
# place, so more attempts than racing transactions are never needed in practice.
ATTEMPTS = 32

_p, _r, _pool = Participant.__table__, Response.__table__, FreePlace.__table__
_last_active = func.coalesce(
    select(func.max(_r.c.created_at)).where(_r.c.participant_id == _p.c.id).scalar_subquery(), _p.c.started_at
)
_HOLDING = and_(
    _p.c.study_id == bindparam("study_id"),
    _p.c.culture_group == bindparam("group"),
    _p.c.status == "started",
    _p.c.ordinal.is_not(None),
)
_IDLE = select(_p.c.id, _p.c.n_answered, _p.c.ordinal).where(_HOLDING, _last_active < bindparam("cutoff"))
_HELD = select(_p.c.study_id, _p.c.culture_group, _p.c.ordinal).where(
    _p.c.id == bindparam("pid"), _p.c.status == "started", _p.c.ordinal.is_not(None)
)
# The holder lets go of the place: their ordinal is cleared by exactly one transaction (a participant's ordinal
# is set once and cleared at most once), which then puts it in the pool.
_LET_GO = (
    update(_p)
    .where(_p.c.id == bindparam("pid"), _p.c.status == "started", _p.c.ordinal == bindparam("held"))
    .values(ordinal=None)
)
# Guarded by the state read too: a participant who answered meanwhile keeps their place.
_TIME_OUT = _LET_GO.where(_p.c.n_answered == bindparam("n")).values(status="screened_out", status_reason=TIMED_OUT)
_GIVE_BACK = insert(_pool)
_IN_POOL = and_(_pool.c.study_id == bindparam("study_id"), _pool.c.culture_group == bindparam("group"))
_LOWEST = select(_pool.c.ordinal).where(_IN_POOL).order_by(_pool.c.ordinal).limit(1)
_TAKE = delete(_pool).where(_IN_POOL, _pool.c.ordinal == bindparam("ordinal"))


def take_place(connection: Connection, study_id: int, group: str, idle_minutes: float = IDLE_MINUTES,
               now: datetime | None = None) -> int | None:
    """The ordinal (0-based) of the place taken in the group, or None when the group is full and no place is
    free or idle. The caller's transaction stores the ordinal on its participant."""
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
    released = 0
    for pid, n, ordinal in idle:
        if connection.execute(_TIME_OUT, {"pid": pid, "n": n, "held": ordinal}).rowcount:
            connection.execute(_GIVE_BACK, {"study_id": study_id, "culture_group": group, "ordinal": ordinal})
            released += 1
    return released


def give_back(connection: Connection, participant_id: int) -> bool:
    """Puts the participant's place in the pool if they hold one and have not completed (before a withdrawal
    or a deletion, in its transaction); False when there is none to give back."""
    held = connection.execute(_HELD, {"pid": participant_id}).first()
    if held is None or not connection.execute(_LET_GO, {"pid": participant_id, "held": held.ordinal}).rowcount:
        return False
    connection.execute(_GIVE_BACK, {"study_id": held.study_id, "culture_group": held.culture_group,
                                    "ordinal": held.ordinal})
    return True


def free_places(connection: Connection, study_id: int) -> dict[str, int]:
    """Places given back and not taken again yet, per group."""
    query = (
        select(_pool.c.culture_group, func.count())
        .where(_pool.c.study_id == study_id)
        .group_by(_pool.c.culture_group)
    )
    return dict(connection.execute(query).all())


def _reuse(connection: Connection, study_id: int, group: str) -> int | None:
    where = {"study_id": study_id, "group": group}
    for _ in range(ATTEMPTS):
        ordinal = connection.execute(_LOWEST, where).scalar()
        if ordinal is None:
            return None
        if connection.execute(_TAKE, {**where, "ordinal": ordinal}).rowcount:
            return ordinal
    return None
