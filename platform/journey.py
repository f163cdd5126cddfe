"""The participant's journey as operations on the database, shared by the JSON API and the pages.

Each function runs inside the caller's session and commits nothing itself; the API commits once per
request, so an answer is stored the moment its request returns 201. Errors are raised as JourneyError
with an HTTP status and a stable code (docs/contracts.md, the participant API's error shape).
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from functools import cached_property
from typing import Any, NamedTuple

from sqlalchemy import Row, and_, bindparam, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from culturelab.platform.assignment import plan_trials
from culturelab.platform.models import (
    CultureGroup,
    Participant,
    Response,
    Stimulus,
    Study,
    Trial,
    study_stimulus_sets,
    utcnow,
)
from culturelab.platform.study import StudySpec
from culturelab.platform.validation import background_problem


class JourneyError(Exception):
    """``field``: the request field the error is about, when a participant can correct it there."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


_specs: dict[str, StudySpec] = {}

# The participant API's statements, built once: the API is most of what a running study serves, and
# there building a statement (and its cache key) costs more than running it. Participants, trials and
# stimuli are read and written as plain rows (SQLAlchemy Core): nothing there needs the ORM's
# bookkeeping. The ORM object (get_participant) serves the pages, which render much of it.
_trials, _stimuli = Trial.__table__, Stimulus.__table__
_stimuli_b = _stimuli.alias("stimuli_b")
_PARTICIPANT = (
    select(Participant)
    .where(Participant.token == bindparam("token"))
    # The study comes in the same query (every participant request needs it); its spec document only
    # when spec_of has not parsed this version yet.
    .options(joinedload(Participant.study).defer(Study.spec))
)
_participants, _studies = Participant.__table__, Study.__table__
_TRIAL = select(_trials).where(_trials.c.id == bindparam("trial_id"))
_UPCOMING = (
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
# The participant as a plain row with its study's id and spec version: what every participant request
# reads (ParticipantState), in one statement.
_STATE_COLUMNS = (
    _participants.c.id, _participants.c.status, _participants.c.consent, _participants.c.culture_group,
    _participants.c.language, _participants.c.seed, _participants.c.n_trials, _participants.c.n_answered,
    _participants.c.completion_code, _participants.c.source, _studies.c.id.label("study_id"),
    _studies.c.spec_sha256,
)
_PARTICIPANT_ONLY = (
    select(*_STATE_COLUMNS)
    .join(_studies, _studies.c.id == _participants.c.study_id)
    .where(_participants.c.token == bindparam("token"))
)
# The same plus (outer-joined, up to three rows) the current trial and the two after it: everything an
# answer or GET next reads.
_PARTICIPANT_STATE = (
    _PARTICIPANT_ONLY.add_columns(*[column.label(f"trial_{column.name}") for column in _UPCOMING.selected_columns])
    .outerjoin(_trials, and_(
        _trials.c.participant_id == _participants.c.id,
        _trials.c.position.between(_participants.c.n_answered, _participants.c.n_answered + 2),
    ))
    .outerjoin(_stimuli, _stimuli.c.id == _trials.c.stimulus_id)
    .outerjoin(_stimuli_b, _stimuli_b.c.id == _trials.c.stimulus_b_id)
)
_STUDY_BY_SLUG = select(_studies.c.id, _studies.c.spec_sha256).where(_studies.c.slug == bindparam("slug"))
_TOKEN_BY_EXTERNAL_ID = select(_participants.c.token).where(
    _participants.c.study_id == bindparam("study_id"), _participants.c.external_id == bindparam("external_id")
)
_INSERT_PARTICIPANT = insert(_participants)
_INSERT_RESPONSE = insert(Response.__table__)
# SET takes the columns named in the parameters (n_answered; status etc. when the last answer completes).
_UPDATE_PARTICIPANT = update(_participants).where(_participants.c.id == bindparam("participant_id"))
# The same, only while a field is still unset: of two requests racing to set it, one changes nothing.
_SET_CONSENT = _UPDATE_PARTICIPANT.where(_participants.c.consent.is_(None))
_SET_BACKGROUND = _UPDATE_PARTICIPANT.where(_participants.c.culture_group.is_(None))
_CONSENT = select(_participants.c.consent, _participants.c.status).where(
    _participants.c.id == bindparam("participant_id")
)
_groups = CultureGroup.__table__
# The quota check and the increment are one statement, so two participants racing for the last place
# cannot both get it (PostgreSQL re-checks the WHERE after the row lock; SQLite's writer lock serialises
# the whole transaction). It returns the places now taken.
_CLAIM_PLACE = (
    update(_groups)
    .where(
        _groups.c.study_id == bindparam("group_study_id"),
        _groups.c.key == bindparam("group"),
        or_(_groups.c.quota.is_(None), _groups.c.filled < _groups.c.quota),
    )
    .values(filled=_groups.c.filled + 1)
    .returning(_groups.c.filled)
)
_STUDY_STIMULI = (
    select(_stimuli.c.id, _stimuli.c.culture)
    .join(study_stimulus_sets, study_stimulus_sets.c.set_id == _stimuli.c.set_id)
    .where(study_stimulus_sets.c.study_id == bindparam("study_id"))
    .order_by(_stimuli.c.id)
)
_PROGRESS = select(_participants.c.status, _participants.c.n_answered, _participants.c.completion_code).where(
    _participants.c.id == bindparam("participant_id")
)
_RESPONSE_BY_ID = select(Response.__table__).where(Response.__table__.c.response_id == bindparam("response_id"))


def spec_of(study: Study | StudyRef) -> StudySpec:
    """The study's validated spec; parsed once per worker and spec version (keyed by its sha256)."""
    spec = _specs.get(study.spec_sha256)
    if spec is None:
        document = {k: v for k, v in study.spec.items() if k != "stimulus_set_ids"}
        spec = _specs[study.spec_sha256] = StudySpec.model_validate(document)
    return spec


def get_study(session: Session, slug: str) -> StudyRef:
    row = session.connection().execute(_STUDY_BY_SLUG, {"slug": slug}).first()
    if row is None:
        raise JourneyError(404, "unknown_study", f"there is no study {slug!r}")
    return StudyRef(session, row.id, row.spec_sha256)


def get_participant(session: Session, token: str) -> Participant:
    participant = session.scalar(_PARTICIPANT, {"token": token})
    if participant is None:
        raise JourneyError(404, "unknown_participant", "this participation link is not valid")
    return participant


class StudyRef:
    """What the participant API needs of a study: its id and spec version; the spec document itself is
    read only if spec_of has not parsed this version yet."""

    def __init__(self, session: Session, study_id: int, spec_sha256: str):
        self.session, self.id, self.spec_sha256 = session, study_id, spec_sha256

    @cached_property
    def spec(self) -> dict[str, Any]:
        return self.session.scalar(select(Study.spec).where(Study.id == self.id))


@dataclass
class ParticipantState:
    """The participant as the API needs it, read as one plain row (no ORM object: the API is most of what
    a running study serves, above all at its launch). The journey's steps update it in place."""

    id: int
    status: str
    consent: bool | None
    culture_group: str | None
    language: str
    seed: int
    n_trials: int
    n_answered: int
    completion_code: str | None
    source: str
    study: StudyRef
    # The trials from the current one on (up to three, by position), read with the participant; the same
    # fields as upcoming's rows. Empty when read without trials.
    ahead: dict[int, TrialRow]


class TrialRow(NamedTuple):
    id: int
    participant_id: int
    position: int
    kind: str
    question_id: str
    expected: int | None
    stimulus_key: str
    stimulus_sha256: str
    stimulus_b_key: str | None
    stimulus_b_sha256: str | None


def participant_state(session: Session, token: str, *, trials: bool = True) -> ParticipantState:
    """The participant, with its current trial and the two after it unless ``trials`` is False."""
    rows = session.connection().execute(_PARTICIPANT_STATE if trials else _PARTICIPANT_ONLY, {"token": token}).all()
    if not rows:
        raise JourneyError(404, "unknown_participant", "this participation link is not valid")
    row = rows[0]
    ahead = {
        r["trial_position"]: TrialRow(*(r[f"trial_{name}"] for name in TrialRow._fields))
        for r in (r._mapping for r in rows)
        if trials and r["trial_id"] is not None
    }
    return ParticipantState(
        row.id, row.status, row.consent, row.culture_group, row.language, row.seed, row.n_trials, row.n_answered,
        row.completion_code, row.source, StudyRef(session, row.study_id, row.spec_sha256), ahead,
    )


@dataclass
class Created:
    token: str
    resume: bool


def create_participant(
    session: Session, study: StudyRef, *, external_id: str | None, source: str, language: str | None,
    recruitment: dict[str, Any],
) -> Created:
    spec = spec_of(study)
    if language is not None and language not in spec.languages:
        raise JourneyError(
            400,
            "bad_language",
            f"language {language!r} is not offered by this study (one of {', '.join(spec.languages)})",
        )
    connection = session.connection()
    known = {"study_id": study.id, "external_id": external_id}
    if external_id is not None:
        token = connection.scalar(_TOKEN_BY_EXTERNAL_ID, known)
        if token is not None:
            return Created(token, True)
    token = secrets.token_urlsafe(24)
    try:
        connection.execute(_INSERT_PARTICIPANT, {
            "study_id": study.id, "token": token, "pseudonym": "p-" + uuid.uuid4().hex[:16],
            "external_id": external_id, "source": source, "recruitment": recruitment,
            "language": language or spec.languages[0], "seed": secrets.randbits(31),
        })
    except IntegrityError:
        # The same recruitment id arrived twice at once: the other request created it; resume that one.
        session.rollback()
        token = session.connection().scalar(_TOKEN_BY_EXTERNAL_ID, known)
        if token is None:
            raise
        return Created(token, True)
    return Created(token, False)


def set_language(participant: Participant, language: str) -> None:
    spec = spec_of(participant.study)
    if language not in spec.languages:
        raise JourneyError(400, "bad_language", f"language {language!r} is not offered by this study")
    participant.language = language


def _require_active(participant: Participant | ParticipantState) -> None:
    if participant.status == "screened_out":
        raise JourneyError(409, "screened_out", "this participation has ended")
    if participant.status == "withdrawn":
        raise JourneyError(409, "withdrawn", "this participation was withdrawn")


def record_consent(session: Session, participant: ParticipantState, consent: bool) -> None:
    _require_active(participant)
    if participant.consent is None:
        values: dict[str, Any] = {"consent": consent}
        if not consent:
            values.update(status="screened_out", status_reason="declined_consent")
        connection = session.connection()
        if connection.execute(_SET_CONSENT, {"participant_id": participant.id, **values}).rowcount:
            participant.consent, participant.status = consent, values.get("status", participant.status)
            return
        # A request racing this one recorded consent first.
        participant.consent, participant.status = connection.execute(
            _CONSENT, {"participant_id": participant.id}
        ).one()
    if participant.consent != consent:
        raise JourneyError(409, "consent_already_given", "consent was already recorded")


def record_background(session: Session, participant: ParticipantState, background: dict[str, Any]) -> bool:
    """Stores the questionnaire, takes a place in the group's quota and assigns the trials, atomically.
    False when the group is full (the participant is then screened out)."""
    _require_active(participant)
    if not participant.consent:
        raise JourneyError(409, "consent_required", "consent must be given first")
    if participant.culture_group is not None:
        raise JourneyError(409, "background_already_given", "the background questionnaire was already answered")
    spec = spec_of(participant.study)
    group_key = background["culture_group"]
    if group_key not in [g.id for g in spec.culture_groups]:
        problem = background_problem("culture_group")
        raise JourneyError(400, "invalid", problem.message, problem.field)
    connection = session.connection()
    # Everything that needs no shared lock comes first: the questionnaire (this participant's row only; a
    # second questionnaire racing this one waits for it, then changes nothing) and the study's stimuli.
    # The quota claim below locks the group's row until commit, and every participant of the group who
    # finishes the questionnaire meanwhile waits for it (at a study's launch, hundreds at once).
    if not connection.execute(_SET_BACKGROUND, {"participant_id": participant.id, **background}).rowcount:
        raise JourneyError(409, "background_already_given", "the background questionnaire was already answered")
    participant.culture_group = group_key
    by_culture: dict[str, list[int]] = {}
    for stimulus_id, culture in connection.execute(_STUDY_STIMULI, {"study_id": participant.study.id}):
        by_culture.setdefault(culture, []).append(stimulus_id)
    filled = connection.execute(_CLAIM_PLACE, {"group_study_id": participant.study.id, "group": group_key}).scalar()
    if filled is None:
        connection.execute(_UPDATE_PARTICIPANT, {
            "participant_id": participant.id, "status": "screened_out", "status_reason": "quota_full",
        })
        participant.status = "screened_out"
        return False
    # The place taken is the participant's ordinal in the group, which picks the Latin-square row: orders
    # are counterbalanced within each culture group, the unit that cross-cultural comparisons contrast.
    ordinal = filled - 1
    planned = plan_trials(spec, by_culture, participant.seed, ordinal)
    connection.execute(insert(_trials), [
        {"participant_id": participant.id, "position": i, "kind": t.kind, "question_id": t.question_id,
         "stimulus_id": t.stimulus, "stimulus_b_id": t.stimulus_b, "expected": t.expected}
        for i, t in enumerate(planned)
    ])
    connection.execute(_UPDATE_PARTICIPANT, {
        "participant_id": participant.id, "ordinal": ordinal, "n_trials": len(planned),
    })
    participant.n_trials = len(planned)
    return True


def stage(participant: Participant | ParticipantState) -> str:
    """Where the participant is: consent, background, trials, done, or screened_out/withdrawn."""
    if participant.status in ("screened_out", "withdrawn", "completed"):
        return "done" if participant.status == "completed" else participant.status
    if participant.consent is None:
        return "consent"
    if participant.culture_group is None:
        return "background"
    return "trials"


def next_trial_position(participant: Participant | ParticipantState) -> int | None:
    """The position of the first unanswered trial (resume point), or None when all are answered."""
    current = stage(participant)
    if current in ("screened_out", "withdrawn"):
        _require_active(participant)
    if current == "consent":
        raise JourneyError(409, "consent_required", "consent must be given first")
    if current == "background":
        raise JourneyError(409, "background_required", "the background questionnaire must be answered first")
    if participant.n_answered >= participant.n_trials:
        return None
    # Answers are taken strictly in order, so the first unanswered trial is at position n_answered.
    return participant.n_answered


def upcoming(
    session: Session, participant: Participant | ParticipantState, known: dict[int, TrialRow] | None = None
) -> tuple[TrialRow | None, TrialRow | None]:
    """The current trial and the one after it (for preloading its images), in one query.

    TrialRows: the trial's columns and its images' keys and sha256 (the second image only for a choice).
    ``known``: trials by position already read in this transaction (ParticipantState.ahead, Stored.trials),
    used when they hold the current trial. Raises JourneyError when the participant is not at the trials
    stage.
    """
    current = next_trial_position(participant)
    if current is None:
        return None, None
    if not known or current not in known:
        known = _trials_from(session, participant, current, 2)
    return known.get(current), known.get(current + 1)


def _trials_from(
    session: Session, participant: Participant | ParticipantState, first: int, count: int
) -> dict[int, TrialRow]:
    # On the session's connection: no ORM objects are involved, so none of the session's machinery is.
    rows = session.connection().execute(
        _UPCOMING, {"participant_id": participant.id, "first": first, "last": first + count - 1}
    )
    return {row.position: TrialRow(*row) for row in rows}


# Where an MTurk HIT's answer goes: the worker's browser posts the assignment id there (ExternalQuestion).
MTURK_SUBMIT_HOSTS = ("www.mturk.com", "workersandbox.mturk.com")


def completion(participant: Participant | ParticipantState) -> dict[str, Any]:
    """The end of the journey: the completion code, and the study's completion URL to go back to.

    MTurk workers get no redirect: they finish by submitting the HIT (mturk_submit), which ends the
    assignment on MTurk's side; a redirect would leave it open.
    """
    url = spec_of(participant.study).recruitment.completion_url
    if participant.source == "mturk":
        url = None
    return {
        "done": True,
        "completion_code": participant.completion_code,
        "redirect_url": url.replace("{code}", participant.completion_code or "") if url else None,
    }


def mturk_submit(participant: Participant) -> dict[str, Any] | None:
    """The form that submits a finished MTurk assignment (its action and hidden fields), or None."""
    recruitment = participant.recruitment or {}
    if participant.source != "mturk" or "assignmentId" not in recruitment or participant.status != "completed":
        return None
    host = recruitment.get("turkSubmitTo")
    host = host if host in MTURK_SUBMIT_HOSTS else MTURK_SUBMIT_HOSTS[0]
    return {
        "action": f"https://{host}/mturk/externalSubmit",
        "fields": {"assignmentId": recruitment["assignmentId"], "completion_code": participant.completion_code},
    }


@dataclass
class Stored:
    created: bool
    response_id: str
    # The answered trial and the two after it, by position, as read while answering (for upcoming).
    trials: dict[int, TrialRow] | None = None


def record_response(
    session: Session, participant: ParticipantState, trial_id: int, response_id: str, value: int, rt_ms: int,
    hidden_ms: int | None = None,
) -> Stored:
    """Stores one answer to the participant's current trial.

    The same response_id again (a double click, a retry after a lost reply) stores nothing and is not an
    error; a different answer to an answered trial is 409, and so is an answer that skips ahead.
    """
    connection = session.connection()  # plain rows: no ORM objects involved (see upcoming)
    # The current trial and the two after it came with the participant (the reply shows the next and
    # preloads the one after); only an answer to another trial needs that trial looked up to say why not.
    trials = participant.ahead
    trial = trials.get(participant.n_answered)
    if trial is None or trial.id != trial_id:
        trial = connection.execute(_TRIAL, {"trial_id": trial_id}).first()
    try:
        _check_answer(participant, trial, trial_id, value)
    except JourneyError:
        # A replay (a retry whose first try was stored) can only land here, or on the unique response_id
        # below, so the response_id is looked up only then, not on every answer.
        previous = connection.execute(_RESPONSE_BY_ID, {"response_id": response_id}).first()
        if previous is not None:
            return _replayed(previous, participant, trial_id, value)
        raise
    try:
        # The unique trial_id turns a racing second answer into an IntegrityError, on every backend.
        # Nothing is written before this insert, so rolling back the whole transaction loses nothing
        # (and saves a savepoint's two round trips on every answer).
        connection.execute(_INSERT_RESPONSE, {
            "response_id": response_id, "participant_id": participant.id, "trial_id": trial.id, "value": value,
            "correct": (value == trial.expected) if trial.kind == "attention" else None, "rt_ms": rt_ms,
            "hidden_ms": hidden_ms,
        })
    except IntegrityError:
        session.rollback()
        # Another request stored an answer to this trial meanwhile: the reply shows the progress it made.
        fresh = session.connection().execute(_PROGRESS, {"participant_id": participant.id}).one()
        participant.status, participant.n_answered, participant.completion_code = fresh
        again = session.execute(_RESPONSE_BY_ID, {"response_id": response_id}).first()
        if again is not None:
            return _replayed(again, participant, trial_id, value)
        raise JourneyError(409, "already_answered", f"trial {trial_id} was already answered") from None
    progress: dict[str, Any] = {"n_answered": trial.position + 1}
    if progress["n_answered"] >= participant.n_trials:
        code = spec_of(participant.study).recruitment.completion_code
        progress.update(status="completed", completed_at=utcnow(), completion_code=code or secrets.token_hex(4).upper())
    connection.execute(_UPDATE_PARTICIPANT, {"participant_id": participant.id, **progress})
    participant.n_answered = progress["n_answered"]
    participant.status = progress.get("status", participant.status)
    participant.completion_code = progress.get("completion_code", participant.completion_code)
    return Stored(True, response_id, trials)


def _check_answer(participant: ParticipantState, trial: TrialRow | Row | None, trial_id: int, value: int) -> None:
    _require_active(participant)
    if trial is None or trial.participant_id != participant.id:
        raise JourneyError(404, "unknown_trial", f"trial {trial_id} is not one of this participant's trials")
    if trial.position < participant.n_answered:
        raise JourneyError(409, "already_answered", f"trial {trial_id} was already answered")
    if trial.position > participant.n_answered:
        raise JourneyError(409, "not_current_trial", f"trial {trial_id} comes later; answer the current trial first")
    low, high = _bounds(participant, trial)
    if not low <= value <= high:
        raise JourneyError(400, "invalid", f"value: expected an integer from {low} to {high}, got {value}")


def _replayed(previous: Row, participant: ParticipantState, trial_id: int, value: int) -> Stored:
    if previous.participant_id == participant.id and previous.trial_id == trial_id and previous.value == value:
        return Stored(False, previous.response_id)
    raise JourneyError(409, "response_id_reused", "this response_id was already used for a different answer")


def _bounds(participant: ParticipantState, trial: TrialRow | Row) -> tuple[int, int]:
    spec = spec_of(participant.study)
    if trial.kind == "attention":
        likert = next((q for q in spec.questions if q.kind == "likert"), None)
        return likert.bounds if likert else (1, 5)
    return next(q.bounds for q in spec.questions if q.id == trial.question_id)

