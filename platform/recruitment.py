"""Opening and closing a study to new participants (Study.recruiting), from the dashboard or the CLI.

Closing stops new participants only: whoever started may finish, and a recruitment id that started comes
back to its participation. Each change is recorded in the audit log, in the same transaction.
"""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from culturelab.platform import audit
from culturelab.platform.models import Study


def set_recruiting(session: Session, study_id: int, recruiting: bool, actor: str) -> bool:
    """Opens (``recruiting``) or closes a study to new participants; False when it already was so, which
    records nothing."""
    # One conditional UPDATE: of two owners (or the dashboard and the CLI) closing at once, one changes the
    # row and logs it, the other finds nothing to change.
    changed = session.execute(
        update(Study).where(Study.id == study_id, Study.recruiting != recruiting).values(recruiting=recruiting)
    ).rowcount
    if changed:
        audit.record(session, "study.reopen" if recruiting else "study.close", actor, study_id)
    return bool(changed)
