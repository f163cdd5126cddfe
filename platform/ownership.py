"""Who may see a study: its owners and collaborators (docs/contracts.md, "Researchers and studies").

Every researcher page, download and report looks its study up through ``study_for``, which answers None
for a study the researcher is not a member of, exactly as for a study that does not exist, so that a
guessed URL tells a stranger nothing.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from culturelab.platform import audit
from culturelab.platform.models import Researcher, Study, StudyMember

OWNER, COLLABORATOR = "owner", "collaborator"
ROLES = (OWNER, COLLABORATOR)


class MembershipError(ValueError):
    """A share that cannot be made (unknown study or researcher, bad role); the message says which."""


def study_for(session: Session, slug: str, researcher_id: int, role: str | None = None) -> Study | None:
    """The study if the researcher is a member (with ``role``, when given), else None."""
    query = (
        select(Study)
        .join(StudyMember, StudyMember.study_id == Study.id)
        .where(Study.slug == slug, StudyMember.researcher_id == researcher_id)
    )
    if role is not None:
        query = query.where(StudyMember.role == role)
    return session.scalar(query)


def studies_of(session: Session, researcher_id: int) -> list[tuple[Study, str]]:
    """The researcher's studies with their role in each, by slug."""
    query = (
        select(Study, StudyMember.role)
        .join(StudyMember, StudyMember.study_id == Study.id)
        .where(StudyMember.researcher_id == researcher_id)
        .order_by(Study.slug)
    )
    return [(study, role) for study, role in session.execute(query)]


def members(session: Session, study_id: int) -> list[tuple[str, str]]:
    """(email, role) of a study's members, owners first."""
    query = (
        select(Researcher.email, StudyMember.role)
        .join(StudyMember, StudyMember.researcher_id == Researcher.id)
        .where(StudyMember.study_id == study_id)
        .order_by(StudyMember.role.desc(), Researcher.email)
    )
    return [(email, role) for email, role in session.execute(query)]


def add_member(session: Session, slug: str, email: str, role: str) -> StudyMember:
    """Makes the researcher a member of the study with ``role``. An owner stays an owner when shared with
    again as a collaborator (sharing never takes rights away)."""
    if role not in ROLES:
        raise MembershipError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    study = session.scalar(select(Study).where(Study.slug == slug))
    if study is None:
        raise MembershipError(f"there is no study {slug!r}")
    researcher = session.scalar(select(Researcher).where(Researcher.email == normal_email(email)))
    if researcher is None:
        raise MembershipError(
            f"there is no researcher {email!r} (create the account first: culturelab researcher create EMAIL)"
        )
    member = session.get(StudyMember, (study.id, researcher.id))
    if member is None:
        member = StudyMember(study_id=study.id, researcher_id=researcher.id, role=role)
        session.add(member)
    elif role == OWNER:
        member.role = OWNER
    session.flush()
    return member


def share(session: Session, slug: str, email: str, role: str, actor: str) -> StudyMember:
    """``add_member`` by a researcher or a command, recorded in the audit log in the same transaction."""
    member = add_member(session, slug, email, role)
    audit.record(session, "study.share", actor, member.study_id, email=normal_email(email), role=member.role)
    return member


def normal_email(email: str) -> str:
    return email.strip().lower()
