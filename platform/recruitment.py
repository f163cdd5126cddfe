"""Opening and closing a study to new participants (Study.recruiting), from the dashboard or the CLI.

Closing stops new participants only: whoever started may finish, and a recruitment id that started comes
back to its participation. Each change is recorded in the audit log, in the same transaction.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from culturelab.platform import audit
from culturelab.platform.models import Study


def set_recruiting(session: Session, study: Study, recruiting: bool, actor: str) -> bool:
    """Opens (``recruiting``) or closes ``study`` to new participants; False when it already was so, which
    records nothing."""
    if study.recruiting == recruiting:
        return False
    study.recruiting = recruiting
    audit.record(session, "study.reopen" if recruiting else "study.close", actor, study.id)
    return True
