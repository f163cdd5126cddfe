"""The participant's journey as operations on the database, shared by the JSON API and the pages.

Each function runs inside the caller's session and commits nothing itself; the API commits once per
request, so an answer is stored the moment its request returns 201. Errors are raised as JourneyError
with an HTTP status and a stable code (docs/contracts.md, the participant API's error shape).

Beside it: journey_sql (the statements it runs), study_specs (a study's parsed spec) and completion (the end
of the journey: the code, the way back to the recruitment site).
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from typing import Any, NamedTuple

from flask_babel import LazyString
from flask_babel import lazy_gettext as _
from sqlalchemy import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from culturelab.platform import journey_sql as sql
from culturelab.platform import places
from culturelab.platform.assignment import plan_trials
from culturelab.platform.models import Participant, utcnow
from culturelab.platform.study_specs import StudyRef, attention_scale, spec_of
from culturelab.platform.validation import background_problem


class JourneyError(Exception):
    """``message``: lazily translated, so that it is worded in the language of the request that meets it
    (a participant's page asks in the participant's language). ``field``: the request field the error is
    about, when a participant can correct it there."""

    def __init__(self, status: int, code: str, message: str | LazyString, field: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


def get_study(session: Session, slug: str) -> StudyRef:
    row = session.connection().execute(sql.STUDY_BY_SLUG, {"slug": slug}).first()
    if row is None:
        raise JourneyError(404, "unknown_study", _("there is no study %(slug)r", slug=slug))
    return StudyRef(session, row.id, row.spec_sha256, row.recruiting)


def get_participant(session: Session, token: str) -> Participant:
    participant = session.scalar(sql.PARTICIPANT, {"token": token})
    if participant is None:
        raise JourneyError(404, "unknown_participant", _("this participation link is not valid"))
    return participant


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


# ParticipantState's fields read as they are from the participant's row.
_STATE_FIELDS = ("id", "status", "consent", "culture_group", "language", "seed", "n_trials", "n_answered",
                 "completion_code", "source")


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
    statement = sql.PARTICIPANT_STATE if trials else sql.PARTICIPANT_ONLY
    rows = session.connection().execute(statement, {"token": token}).all()
    if not rows:
        raise JourneyError(404, "unknown_participant", _("this participation link is not valid"))
    row = rows[0]
    ahead = {
        r["trial_position"]: TrialRow(*(r[f"trial_{name}"] for name in TrialRow._fields))
        for r in (r._mapping for r in rows)
        if trials and r["trial_id"] is not None
    }
    fields = row._mapping
    return ParticipantState(
        **{name: fields[name] for name in _STATE_FIELDS},
        study=StudyRef(session, fields["study_id"], fields["spec_sha256"], fields["recruiting"]),
        ahead=ahead,
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
        raise JourneyError(400, "bad_language", _(
            "language %(language)r is not offered by this study (one of %(languages)s)",
            language=language, languages=", ".join(spec.languages),
        ))
    connection = session.connection()
    known = {"study_id": study.id, "external_id": external_id}
    if external_id is not None:
        enrolled = connection.execute(sql.TOKEN_BY_EXTERNAL_ID, known).first()
        if enrolled is not None:
            return _resume(enrolled, source, recruitment)
    if not study.recruiting:  # those who started may go on; nobody new joins
        raise JourneyError(409, "study_closed", _("this study is not taking new participants at the moment"))
    token = secrets.token_urlsafe(24)
    try:
        connection.execute(sql.INSERT_PARTICIPANT, {
            "study_id": study.id, "token": token, "pseudonym": "p-" + uuid.uuid4().hex[:16],
            "external_id": external_id, "source": source, "recruitment": recruitment,
            "language": language or spec.languages[0], "seed": secrets.randbits(31),
        })
    except IntegrityError:
        # The same recruitment id arrived twice at once: the other request created it; resume that one.
        session.rollback()
        enrolled = session.connection().execute(sql.TOKEN_BY_EXTERNAL_ID, known).first()
        if enrolled is None:
            raise
        return _resume(enrolled, source, recruitment)
    return Created(token, False)


# The recruitment platform's own session of a participant: what shows that a second browser presenting the
# same participant id is the same person, not someone who learnt (or guessed) the id.
PLATFORM_SESSION = {"prolific": "SESSION_ID", "mturk": "assignmentId"}


def _resume(enrolled: Row, source: str, recruitment: dict[str, Any]) -> Created:
    """The participation of a recruitment id that already started, handed over only where the recruitment
    platform's session matches; the participant's own browser resumes with the token it holds instead."""
    key = PLATFORM_SESSION.get(enrolled.source)
    session_id = (enrolled.recruitment or {}).get(key) if key else None
    if source != enrolled.source or not session_id or recruitment.get(key) != session_id:
        # Shown as it is by the study link's page.
        raise JourneyError(409, "already_enrolled", _(
            "This participant id has already started the study in another browser. Please continue in that "
            "browser (the study link opens where you left off), or contact the researcher."
        ))
    return Created(enrolled.token, True)


def set_language(participant: Participant, language: str) -> None:
    spec = spec_of(participant.study)
    if language not in spec.languages:
        raise JourneyError(400, "bad_language",
                           _("language %(language)r is not offered by this study", language=language))
    participant.language = language


def _require_active(participant: Participant | ParticipantState) -> None:
    if participant.status == "screened_out":
        raise JourneyError(409, "screened_out", _("this participation has ended"))
    if participant.status == "withdrawn":
        raise JourneyError(409, "withdrawn", _("this participation was withdrawn"))


def record_consent(session: Session, participant: ParticipantState, consent: bool) -> None:
    _require_active(participant)
    if participant.consent is None:
        values: dict[str, Any] = {"consent": consent}
        if not consent:
            values.update(status="screened_out", status_reason="declined_consent")
        connection = session.connection()
        if connection.execute(sql.SET_CONSENT, {"participant_id": participant.id, **values}).rowcount:
            participant.consent, participant.status = consent, values.get("status", participant.status)
            return
        # A request racing this one recorded consent first.
        participant.consent, participant.status = connection.execute(
            sql.CONSENT, {"participant_id": participant.id}
        ).one()
    if participant.consent != consent:
        raise JourneyError(409, "consent_already_given", _("consent was already recorded"))


def record_background(session: Session, participant: ParticipantState, background: dict[str, Any],
                      idle_minutes: float = places.IDLE_MINUTES) -> bool:
    """Stores the questionnaire, takes a place in the group's quota and assigns the trials, atomically.
    False when the group is full and no place held has been idle for ``idle_minutes`` (the participant is
    then screened out)."""
    _require_active(participant)
    if not participant.consent:
        raise JourneyError(409, "consent_required", _("consent must be given first"))
    if participant.culture_group is not None:
        raise JourneyError(409, "background_already_given", _("the background questionnaire was already answered"))
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
    if not connection.execute(sql.SET_BACKGROUND, {"participant_id": participant.id, **background}).rowcount:
        raise JourneyError(409, "background_already_given", _("the background questionnaire was already answered"))
    participant.culture_group = group_key
    by_culture: dict[str, list[int]] = {}
    contents: dict[int, str | None] = {}
    for stimulus_id, culture, content in connection.execute(sql.STUDY_STIMULI, {"study_id": participant.study.id}):
        by_culture.setdefault(culture, []).append(stimulus_id)
        contents[stimulus_id] = content
    ordinal = places.take_place(connection, participant.study.id, group_key, idle_minutes)
    if ordinal is None:
        connection.execute(sql.UPDATE_PARTICIPANT, {
            "participant_id": participant.id, "status": "screened_out", "status_reason": "quota_full",
        })
        participant.status = "screened_out"
        return False
    # The place taken is the participant's ordinal in the group, which picks the Latin-square row: orders
    # are counterbalanced within each culture group, the unit that cross-cultural comparisons contrast.
    planned = plan_trials(spec, by_culture, participant.seed, ordinal, contents)
    connection.execute(sql.INSERT_TRIALS, [
        {"participant_id": participant.id, "position": i, "kind": t.kind, "question_id": t.question_id,
         "stimulus_id": t.stimulus, "stimulus_b_id": t.stimulus_b, "expected": t.expected}
        for i, t in enumerate(planned)
    ])
    connection.execute(sql.UPDATE_PARTICIPANT, {
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


def _require_trials(participant: Participant | ParticipantState) -> None:
    """Trials are shown and answered only once the participant has consented and said who they are."""
    _require_active(participant)
    current = stage(participant)
    if current == "consent":
        raise JourneyError(409, "consent_required", _("consent must be given first"))
    if current == "background":
        raise JourneyError(409, "background_required", _("the background questionnaire must be answered first"))


def next_trial_position(participant: Participant | ParticipantState) -> int | None:
    """The position of the first unanswered trial (resume point), or None when all are answered."""
    _require_trials(participant)
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
        sql.UPCOMING, {"participant_id": participant.id, "first": first, "last": first + count - 1}
    )
    return {row.position: TrialRow(*row) for row in rows}


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
        trial = connection.execute(sql.TRIAL, {"trial_id": trial_id}).first()
    try:
        _check_answer(participant, trial, trial_id, value)
    except JourneyError:
        # A replay (a retry whose first try was stored) can only land here, or on the unique response_id
        # below, so the response_id is looked up only then, not on every answer.
        previous = connection.execute(sql.RESPONSE_BY_ID, {"response_id": response_id}).first()
        if previous is not None:
            return _replayed(previous, participant, trial_id, value)
        raise
    try:
        # The unique trial_id turns a racing second answer into an IntegrityError, on every backend.
        # Nothing is written before this insert, so rolling back the whole transaction loses nothing
        # (and saves a savepoint's two round trips on every answer).
        connection.execute(sql.INSERT_RESPONSE, {
            "response_id": response_id, "participant_id": participant.id, "trial_id": trial.id, "value": value,
            "correct": (value == trial.expected) if trial.kind == "attention" else None, "rt_ms": rt_ms,
            "hidden_ms": hidden_ms,
        })
    except IntegrityError:
        session.rollback()
        # Another request stored an answer to this trial meanwhile: the reply shows the progress it made.
        fresh = session.connection().execute(sql.PROGRESS, {"participant_id": participant.id}).one()
        participant.status, participant.n_answered, participant.completion_code = fresh
        again = session.execute(sql.RESPONSE_BY_ID, {"response_id": response_id}).first()
        if again is not None:
            return _replayed(again, participant, trial_id, value)
        raise JourneyError(409, "already_answered", _("trial %(trial)s was already answered", trial=trial_id)) from None
    progress: dict[str, Any] = {"n_answered": trial.position + 1}
    if progress["n_answered"] >= participant.n_trials:
        code = spec_of(participant.study).recruitment.completion_code
        progress.update(status="completed", completed_at=utcnow(), completion_code=code or secrets.token_hex(4).upper())
    # Only while the participation goes on: a time-out (places.py) that committed after this answer's checks
    # ended it, and the answer, rolled back with this transaction, must not complete it.
    if not connection.execute(sql.ANSWER_PROGRESS, {"participant_id": participant.id, **progress}).rowcount:
        raise JourneyError(409, "screened_out", _("this participation has ended"))
    participant.n_answered = progress["n_answered"]
    participant.status = progress.get("status", participant.status)
    participant.completion_code = progress.get("completion_code", participant.completion_code)
    return Stored(True, response_id, trials)


def _check_answer(participant: ParticipantState, trial: TrialRow | Row | None, trial_id: int, value: int) -> None:
    _require_trials(participant)
    if trial is None or trial.participant_id != participant.id:
        raise JourneyError(404, "unknown_trial",
                           _("trial %(trial)s is not one of this participant's trials", trial=trial_id))
    if trial.position < participant.n_answered:
        raise JourneyError(409, "already_answered", _("trial %(trial)s was already answered", trial=trial_id))
    if trial.position > participant.n_answered:
        raise JourneyError(409, "not_current_trial",
                           _("trial %(trial)s comes later; answer the current trial first", trial=trial_id))
    low, high = _bounds(participant, trial)
    if not low <= value <= high:
        raise JourneyError(400, "invalid", _("value: expected an integer from %(low)s to %(high)s, got %(value)s",
                                            low=low, high=high, value=value))


def _replayed(previous: Row, participant: ParticipantState, trial_id: int, value: int) -> Stored:
    if previous.participant_id == participant.id and previous.trial_id == trial_id and previous.value == value:
        return Stored(False, previous.response_id)
    raise JourneyError(409, "response_id_reused", _("this response_id was already used for a different answer"))


def _bounds(participant: ParticipantState, trial: TrialRow | Row) -> tuple[int, int]:
    spec = spec_of(participant.study)
    if trial.kind == "attention":
        return attention_scale(spec)
    return next(q.bounds for q in spec.questions if q.id == trial.question_id)

