"""The audit log: who loaded, shared, exported, analysed or deleted what, and when.

An event is written in the same transaction as the change it records, so the log never claims something
that was rolled back, nor misses something that was committed. Owners read a study's log on the dashboard.
"""

from __future__ import annotations

import getpass
import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from culturelab.platform.models import AuditEvent

log = logging.getLogger(__name__)

# What the log records (the action column); anything else is a programming error.
ACTIONS = frozenset({
    "study.load", "study.share", "study.export", "study.analyse", "study.close", "study.reopen",
    "participant.delete", "participant.withdraw",
})


def record(session: Session, action: str, actor: str, study_id: int | None, **detail: Any) -> AuditEvent:
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    event = AuditEvent(action=action, actor=actor, study_id=study_id, detail=detail)
    session.add(event)
    log.info("audit: %s by %s on study %s %s", action, actor, study_id, detail)
    return event


def cli_actor() -> str:
    """The actor of a command-line action: the operating-system user who ran it."""
    try:
        return f"cli:{getpass.getuser()}"
    except OSError:  # no user name for this uid (some containers)
        return "cli"


def events(session: Session, study_id: int, limit: int = 100) -> list[AuditEvent]:
    """A study's most recent events, newest first."""
    query = (
        select(AuditEvent)
        .where(AuditEvent.study_id == study_id)
        .order_by(AuditEvent.id.desc())
        .limit(limit)
    )
    return list(session.scalars(query))
