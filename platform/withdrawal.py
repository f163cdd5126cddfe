"""Withdrawal and deletion of a participant's data.

A participant withdraws at /withdraw with their personal completion code, or with the code in the link
their completion page gives them (their participation token: a study whose completion code is the same
for everyone, as Prolific studies often have, gives no personal code). Their answers and questionnaire are
erased and the record stays, marked withdrawn, so that the recruitment id cannot start again. A
researcher who owns the study can delete a participant outright. Exports and reports leave both out
(docs/contracts.md, Contract 2). Either way, a participant who had not completed gives their quota place
back to the group at once (places.py).
"""

from __future__ import annotations

from flask import Blueprint, current_app, g, render_template, request
from flask_babel import get_locale
from flask_wtf import FlaskForm
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session
from wtforms import StringField
from wtforms.validators import DataRequired, Length

from culturelab.platform import audit, places
from culturelab.platform.db import get_session
from culturelab.platform.extensions import LOCALES
from culturelab.platform.journey import spec_of
from culturelab.platform.models import Participant, Response, Trial
from culturelab.platform.security import Throttled, count_by_address

bp = Blueprint("withdrawal", __name__)

# What the questionnaire stored: erased on withdrawal (the culture group stays: the dashboard counts by it).
QUESTIONNAIRE = ("country_of_birth", "country_of_residence", "languages", "age", "gender", "art_training")


def find_by_code(session: Session, code: str) -> Participant | None:
    """The participant whose token or personal completion code this is. A completion code shared by a
    whole study identifies nobody."""
    code = code.strip()
    participant = session.scalar(select(Participant).where(Participant.token == code))
    if participant is not None:
        return participant
    matches = session.scalars(
        select(Participant).where(Participant.completion_code.in_({code, code.upper()})).limit(2)
    ).all()
    if len(matches) != 1 or spec_of(matches[0].study).recruitment.completion_code is not None:
        return None
    return matches[0]


def withdraw(session: Session, participant: Participant, actor: str = "participant") -> None:
    """Erases the participant's answers and questionnaire and marks them withdrawn (idempotent)."""
    places.give_back(session.connection(), participant.id)
    # The participant's row first, then their answers: the order a deletion locks them in (its cascade), so
    # that a withdrawal and a deletion racing wait for each other instead of deadlocking.
    session.execute(
        update(Participant)
        .where(Participant.id == participant.id)
        .values(status="withdrawn", status_reason="withdrew", n_answered=0, n_trials=0,
                **dict.fromkeys(QUESTIONNAIRE))
        .execution_options(synchronize_session="fetch")
    )
    session.execute(delete(Response).where(Response.participant_id == participant.id))
    session.execute(delete(Trial).where(Trial.participant_id == participant.id))
    audit.record(session, "participant.withdraw", actor, participant.study_id, participant_id=participant.pseudonym)


def delete_participant(session: Session, study_id: int, pseudonym: str, actor: str) -> bool:
    """Deletes a participant of the study and everything stored about them; False if there is none."""
    participant_id = session.scalar(
        select(Participant.id).where(Participant.study_id == study_id, Participant.pseudonym == pseudonym)
    )
    if participant_id is None:
        return False
    places.give_back(session.connection(), participant_id)
    deleted = session.execute(
        delete(Participant).where(Participant.id == participant_id).execution_options(synchronize_session=False)
    ).rowcount
    if deleted:
        audit.record(session, "participant.delete", actor, study_id, participant_id=pseudonym)
    return bool(deleted)


class WithdrawForm(FlaskForm):
    code = StringField("code", validators=[DataRequired(), Length(max=64)])


@bp.route("/withdraw", methods=["GET", "POST"])
def withdraw_page():
    if request.args.get("lang") in LOCALES:
        g.locale = request.args["lang"]
    form = WithdrawForm(code=request.args.get("code", ""))

    def page(**context):
        return render_template("withdrawal/withdraw.html", locale=str(get_locale()), **context)

    if not form.validate_on_submit():
        return page(form=form, outcome=None), 200 if request.method == "GET" else 400
    session = get_session()
    try:
        # Codes are short: guessing them is slowed down like sign-in is, for every server process at once.
        limit = current_app.config.get("WITHDRAW_LIMIT", "10/minute")
        count_by_address(session, "withdraw", request.remote_addr, limit)
    except Throttled as exc:
        return page(form=form, outcome="throttled"), 429, {"Retry-After": str(exc.retry_after)}
    participant = find_by_code(session, form.code.data)
    if participant is None:
        return page(form=form, outcome="unknown"), 404
    if participant.status != "withdrawn":
        withdraw(session, participant)
        session.commit()
    return page(form=None, outcome="withdrawn")
