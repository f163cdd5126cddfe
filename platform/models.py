"""The platform's schema (SQLAlchemy 2.0 typed models). Every change goes with an Alembic migration:
tests/platform/test_migrations.py fails when the two disagree."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Primary keys are INTEGER columns: a larger number in a URL names no row, and the database would refuse to
# compare it (a 500 instead of a 404), so routes cap their <int:…> parts here.
MAX_ROW_ID = 2**31 - 1


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    # Named constraints, so that migrations can refer to them on every backend.
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: DateTime(timezone=True)}


class Study(Base):
    __tablename__ = "studies"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    # The validated study document (culturelab.platform.study.StudySpec), as loaded.
    spec: Mapped[dict[str, Any]]
    spec_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Whether new participants may join. Closing (a pilot done, a problem found) lets those who started
    # finish; loading a new version of the study leaves it as the researcher set it.
    recruiting: Mapped[bool] = mapped_column(default=True, server_default=true())

    groups: Mapped[list[CultureGroup]] = relationship(
        back_populates="study", order_by="CultureGroup.position"
    )
    stimulus_sets: Mapped[list[StimulusSet]] = relationship(secondary="study_stimulus_sets")


class CultureGroup(Base):
    """A participant culture group of a study, with its quota and the atomically counted places taken."""

    __tablename__ = "culture_groups"
    __table_args__ = (UniqueConstraint("study_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(64))
    position: Mapped[int]
    quota: Mapped[int | None]
    filled: Mapped[int] = mapped_column(default=0)

    study: Mapped[Study] = relationship(back_populates="groups")


class FreePlace(Base):
    """A place in a culture group's quota given back (by a participant who went idle, withdrew or was deleted
    before completing) and not taken again yet: its ordinal goes to the group's next participant (places.py)."""

    __tablename__ = "free_places"

    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), primary_key=True)
    culture_group: Mapped[str] = mapped_column(String(64), primary_key=True)
    ordinal: Mapped[int] = mapped_column(primary_key=True)


class StimulusSet(Base):
    __tablename__ = "stimulus_sets"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    manifest_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    cultures: Mapped[list[Any]]
    generator: Mapped[dict[str, Any] | None]
    imported_at: Mapped[datetime] = mapped_column(default=utcnow)

    stimuli: Mapped[list[Stimulus]] = relationship(back_populates="stimulus_set", order_by="Stimulus.id")


study_stimulus_sets = Table(
    "study_stimulus_sets",
    Base.metadata,
    Column("study_id", ForeignKey("studies.id", ondelete="CASCADE"), primary_key=True),
    Column("set_id", ForeignKey("stimulus_sets.id"), primary_key=True),
)


class Stimulus(Base):
    __tablename__ = "stimuli"
    __table_args__ = (UniqueConstraint("set_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    set_id: Mapped[int] = mapped_column(ForeignKey("stimulus_sets.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(64))  # the manifest's `id`
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    width: Mapped[int]
    height: Mapped[int]
    culture: Mapped[str] = mapped_column(String(64))
    mix: Mapped[dict[str, Any]]
    method: Mapped[str] = mapped_column(String(16))
    seed: Mapped[int | None]
    content: Mapped[str | None] = mapped_column(String(64))

    stimulus_set: Mapped[StimulusSet] = relationship(back_populates="stimuli")


class Participant(Base):
    __tablename__ = "participants"
    __table_args__ = (UniqueConstraint("study_id", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    pseudonym: Mapped[str] = mapped_column(String(32), unique=True)  # `participant_id` in exports
    external_id: Mapped[str | None] = mapped_column(String(128))  # Prolific PID / MTurk worker id
    source: Mapped[str] = mapped_column(String(16))
    recruitment: Mapped[dict[str, Any]]  # STUDY_ID, SESSION_ID, assignmentId… as received
    language: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="started")
    status_reason: Mapped[str | None] = mapped_column(String(32))
    consent: Mapped[bool | None]
    culture_group: Mapped[str | None] = mapped_column(String(64))
    country_of_birth: Mapped[str | None] = mapped_column(String(2))
    country_of_residence: Mapped[str | None] = mapped_column(String(2))
    languages: Mapped[list[Any] | None]
    age: Mapped[int | None]
    gender: Mapped[str | None] = mapped_column(String(64))
    art_training: Mapped[int | None]
    seed: Mapped[int]
    ordinal: Mapped[int | None]  # 0-based place taken in the culture group's quota (Latin-square row)
    n_trials: Mapped[int] = mapped_column(default=0)
    n_answered: Mapped[int] = mapped_column(default=0)
    completion_code: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None]

    study: Mapped[Study] = relationship()


class Trial(Base):
    __tablename__ = "trials"
    __table_args__ = (UniqueConstraint("participant_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id", ondelete="CASCADE"))
    position: Mapped[int]  # trial_index: 0-based, the order shown
    kind: Mapped[str] = mapped_column(String(16))  # likert | slider | choice | attention
    question_id: Mapped[str] = mapped_column(String(64))
    stimulus_id: Mapped[int] = mapped_column(ForeignKey("stimuli.id"))
    stimulus_b_id: Mapped[int | None] = mapped_column(ForeignKey("stimuli.id"))  # choice: right-hand image
    expected: Mapped[int | None]  # attention: the instructed response

    stimulus: Mapped[Stimulus] = relationship(foreign_keys=[stimulus_id])
    stimulus_b: Mapped[Stimulus | None] = relationship(foreign_keys=[stimulus_b_id])


class Response(Base):
    __tablename__ = "responses"

    id: Mapped[int] = mapped_column(primary_key=True)
    response_id: Mapped[str] = mapped_column(String(36), unique=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id", ondelete="CASCADE"), index=True)
    # One answer per trial: the unique constraint is what turns a racing second answer into a 409.
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"), unique=True)
    value: Mapped[float] = mapped_column(Float)
    correct: Mapped[bool | None] = mapped_column(Boolean)
    rt_ms: Mapped[int] = mapped_column(Integer)
    # Of the trial's time, how long the page was hidden or out of focus (browser-measured); None when the
    # client did not measure it.
    hidden_ms: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Researcher(Base):
    __tablename__ = "researchers"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    # Flask-Login's user protocol.
    is_active = True
    is_authenticated = True
    is_anonymous = False

    def get_id(self) -> str:
        return str(self.id)


class StudyMember(Base):
    """A researcher's place in a study: its owner (shares it, sees its audit log, deletes participants) or a
    collaborator (sees, exports and analyses it). A researcher who is neither is told the study does not exist."""

    __tablename__ = "study_members"

    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), primary_key=True)
    researcher_id: Mapped[int] = mapped_column(
        ForeignKey("researchers.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[str] = mapped_column(String(16))  # owner | collaborator
    added_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEvent(Base):
    """Who loaded, shared, exported, analysed or deleted what, and when. Kept when a researcher account goes
    (the actor is stored as text) and readable only by the study's owners."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(254))  # a researcher's email, "cli:<user>" or "participant"
    action: Mapped[str] = mapped_column(String(32))
    study_id: Mapped[int | None] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    detail: Mapped[dict[str, Any]]


class ResearcherSession(Base):
    """A signed-in browser. The cookie carries a random id whose hash is stored here; signing out deletes the
    row, so a copy of the cookie stops working at once."""

    __tablename__ = "researcher_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    researcher_id: Mapped[int] = mapped_column(ForeignKey("researchers.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[float]  # Unix time: compared as a number on every backend


class SignInThrottle(Base):
    """Requests per client address and scope (a fixed window: sign-in, new participants, withdrawal codes) and
    sign-in attempts per account or trusted device (exponential back-off), kept in the database so that every
    server process sees the same counts (security.py)."""

    __tablename__ = "sign_in_throttle"

    key: Mapped[str] = mapped_column(String(96), primary_key=True)
    attempts: Mapped[int] = mapped_column(default=0)
    window_start: Mapped[float]  # Unix time
    next_at: Mapped[float]  # Unix time before which the next attempt is refused
