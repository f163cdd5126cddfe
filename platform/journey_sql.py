"""The participant API's SQL statements, built once (journey.py runs them).

The API is most of what a running study serves, and there building a statement (and its cache key) costs
more than running it. Participants, trials and stimuli are read and written as plain rows (SQLAlchemy Core):
nothing there needs the ORM's bookkeeping. The ORM object (PARTICIPANT) serves the pages, which render much
of it.
"""

from __future__ import annotations

from sqlalchemy import and_, bindparam, insert, or_, select, update
from sqlalchemy.orm import joinedload

from culturelab.platform.models import (
    CultureGroup,
    Participant,
    Response,
    Stimulus,
    Study,
    Trial,
    study_stimulus_sets,
)

_trials, _stimuli = Trial.__table__, Stimulus.__table__
_stimuli_b = _stimuli.alias("stimuli_b")
PARTICIPANT = (
    select(Participant)
    .where(Participant.token == bindparam("token"))
    # The study comes in the same query (every participant request needs it); its spec document only
    # when spec_of has not parsed this version yet.
    .options(joinedload(Participant.study).defer(Study.spec))
)
_participants, _studies = Participant.__table__, Study.__table__
TRIAL = select(_trials).where(_trials.c.id == bindparam("trial_id"))
UPCOMING = (
    select(
        _trials.c.id, _trials.c.participant_id, _trials.c.position, _trials.c.kind, _trials.c.question_id,
        _trials.c.expected, _stimuli.c.key.label("stimulus_key"), _stimuli.c.sha256.label("stimulus_sha256"),
        _stimuli_b.c.key.label("stimulus_b_key"), _stimuli_b.c.sha256.label("stimulus_b_sha256"),
    )
    .join(_stimuli, _stimuli.c.id == _trials.c.stimulus_id)
    .outerjoin(_stimuli_b, _stimuli_b.c.id == _trials.c.stimulus_b_id)
    .where(_trials.c.participant_id == bindparam("participant_id"))
    .where(_trials.c.position.between(bindparam("first"), bindparam("last")))
)
# The participant as a plain row with its study (StudyRef's columns): what every participant request reads
# (ParticipantState), in one statement.
_STATE_COLUMNS = (
    _participants.c.id, _participants.c.status, _participants.c.consent, _participants.c.culture_group,
    _participants.c.language, _participants.c.seed, _participants.c.n_trials, _participants.c.n_answered,
    _participants.c.completion_code, _participants.c.source, _studies.c.id.label("study_id"),
    _studies.c.spec_sha256, _studies.c.recruiting,
)
PARTICIPANT_ONLY = (
    select(*_STATE_COLUMNS)
    .join(_studies, _studies.c.id == _participants.c.study_id)
    .where(_participants.c.token == bindparam("token"))
)
# The same plus (outer-joined, up to three rows) the current trial and the two after it: everything an
# answer or GET next reads.
PARTICIPANT_STATE = (
    PARTICIPANT_ONLY.add_columns(*[column.label(f"trial_{column.name}") for column in UPCOMING.selected_columns])
    .outerjoin(_trials, and_(
        _trials.c.participant_id == _participants.c.id,
        _trials.c.position.between(_participants.c.n_answered, _participants.c.n_answered + 2),
    ))
    .outerjoin(_stimuli, _stimuli.c.id == _trials.c.stimulus_id)
    .outerjoin(_stimuli_b, _stimuli_b.c.id == _trials.c.stimulus_b_id)
)
STUDY_BY_SLUG = select(_studies.c.id, _studies.c.spec_sha256, _studies.c.recruiting).where(
    _studies.c.slug == bindparam("slug")
)
TOKEN_BY_EXTERNAL_ID = select(_participants.c.token, _participants.c.source, _participants.c.recruitment).where(
    _participants.c.study_id == bindparam("study_id"), _participants.c.external_id == bindparam("external_id")
)
INSERT_PARTICIPANT = insert(_participants)
INSERT_RESPONSE = insert(Response.__table__)
# SET takes the columns named in the parameters (n_answered; status etc. when the last answer completes).
UPDATE_PARTICIPANT = update(_participants).where(_participants.c.id == bindparam("participant_id"))
# The same, only while a field is still unset: of two requests racing to set it, one changes nothing.
SET_CONSENT = UPDATE_PARTICIPANT.where(_participants.c.consent.is_(None))
SET_BACKGROUND = UPDATE_PARTICIPANT.where(_participants.c.culture_group.is_(None))
ANSWER_PROGRESS = UPDATE_PARTICIPANT.where(_participants.c.status == "started")
CONSENT = select(_participants.c.consent, _participants.c.status).where(
    _participants.c.id == bindparam("participant_id")
)
_groups = CultureGroup.__table__
# The quota check and the increment are one statement, so two participants racing for the last place
# cannot both get it (PostgreSQL re-checks the WHERE after the row lock; SQLite's writer lock serialises
# the whole transaction). It returns the places now taken.
CLAIM_PLACE = (
    update(_groups)
    .where(
        _groups.c.study_id == bindparam("group_study_id"),
        _groups.c.key == bindparam("group"),
        or_(_groups.c.quota.is_(None), _groups.c.filled < _groups.c.quota),
    )
    .values(filled=_groups.c.filled + 1)
    .returning(_groups.c.filled)
)
STUDY_STIMULI = (
    select(_stimuli.c.id, _stimuli.c.culture, _stimuli.c.content)
    .join(study_stimulus_sets, study_stimulus_sets.c.set_id == _stimuli.c.set_id)
    .where(study_stimulus_sets.c.study_id == bindparam("study_id"))
    .order_by(_stimuli.c.id)
)
PROGRESS = select(_participants.c.status, _participants.c.n_answered, _participants.c.completion_code).where(
    _participants.c.id == bindparam("participant_id")
)
RESPONSE_BY_ID = select(Response.__table__).where(Response.__table__.c.response_id == bindparam("response_id"))
INSERT_TRIALS = insert(_trials)
