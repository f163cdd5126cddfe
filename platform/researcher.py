"""Researcher pages: sign in, watch recruitment of one's own studies, share them, download their data.

A login session (Flask-Login, checked against the server-side session table on every request) with CSRF
protection (Flask-WTF) on every form; sign-in guessing is throttled in the database (security.py). A
researcher sees only the studies they own or collaborate on: any other study is a 404, as if it did not
exist (ownership.py).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import TypeVar

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from werkzeug.security import generate_password_hash
from wtforms import EmailField, HiddenField, PasswordField, StringField
from wtforms.validators import AnyOf, DataRequired, Length

from culturelab.platform import audit, ownership, places, security
from culturelab.platform.db import get_session, session_scope
from culturelab.platform.download import zip_folder
from culturelab.platform.export import export_study
from culturelab.platform.extensions import login_manager
from culturelab.platform.journey import spec_of
from culturelab.platform.models import CultureGroup, Participant, Researcher, Response, Study
from culturelab.platform.recruitment import set_recruiting
from culturelab.platform.withdrawal import delete_participant

bp = Blueprint("researcher", __name__, url_prefix="/researcher")
F = TypeVar("F", bound=FlaskForm)


@login_manager.user_loader
def load_user(user_id: str) -> Researcher | None:
    return security.session_researcher(get_session(), user_id)


def create_researcher(session, email: str, password: str) -> Researcher:
    if len(password) < 10:
        raise ValueError("the password must have at least 10 characters")
    researcher = Researcher(email=ownership.normal_email(email), password_hash=generate_password_hash(password))
    session.add(researcher)
    return researcher


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])


class ShareForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])


class DeleteParticipantForm(FlaskForm):
    participant_id = StringField("participant_id", validators=[DataRequired(), Length(max=32)])


class RecruitmentForm(FlaskForm):
    """The dashboard's close/reopen button: what the study is to become."""

    recruiting = HiddenField(validators=[AnyOf(["open", "closed"])])


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    if not form.validate_on_submit():
        return render_template("researcher/login.html", form=form), 200 if request.method == "GET" else 400
    session = get_session()
    email = ownership.normal_email(form.email.data)
    try:
        device = request.cookies.get(security.DEVICE_COOKIE)
        attempt = security.begin_attempt(session, request.remote_addr, email, device)
    except security.Throttled as exc:
        flash(_("Too many sign-in attempts. Please try again in %(s)s seconds.", s=exc.retry_after))
        page = render_template("researcher/login.html", form=form)
        return page, 429, {"Retry-After": str(exc.retry_after)}
    researcher = session.scalar(select(Researcher).where(Researcher.email == email))
    if not security.verify_password(researcher, form.password.data):
        flash(_("Unknown email or wrong password."))
        return render_template("researcher/login.html", form=form), 401
    security.sign_in_succeeded(session, attempt)
    security.start_session(session, researcher)
    session.commit()
    login_user(researcher)
    response = redirect(url_for("researcher.dashboard"))
    security.set_device_cookie(response, attempt)
    return response


@bp.post("/logout")
@login_required
def logout():
    session = get_session()
    security.end_session(session)
    session.commit()
    logout_user()
    return redirect(url_for("researcher.login"))


def _study(slug: str, role: str | None = None) -> Study:
    """The signed-in researcher's study, or 404 (for a stranger exactly as for a study that does not exist)."""
    study = ownership.study_for(get_session(), slug, current_user.id, role)
    if study is None:
        abort(404)
    return study


@bp.get("/")
@login_required
def dashboard():
    session = get_session()
    studies = []
    for study, role in ownership.studies_of(session, current_user.id):
        summary = _recruitment(session, study)
        summary["role"] = role
        if role == ownership.OWNER:
            summary["members"] = ownership.members(session, study.id)
            summary["audit"] = audit.events(session, study.id)
        studies.append(summary)
    return render_template(
        "researcher/dashboard.html",
        studies=studies,
        user=current_user,
        share_form=ShareForm(),
        delete_form=DeleteParticipantForm(),
        recruitment_form=RecruitmentForm(),
    )


def _recruitment(session, study: Study) -> dict:
    spec = spec_of(study)
    by_status = dict(
        session.execute(
            select(Participant.status, func.count())
            .where(Participant.study_id == study.id)
            .group_by(Participant.status)
        ).all()
    )
    completed = dict(
        session.execute(
            select(Participant.culture_group, func.count())
            .where(Participant.study_id == study.id, Participant.status == "completed")
            .group_by(Participant.culture_group)
        ).all()
    )
    # Places held by participants still answering, and places given back and not yet taken (places.py).
    held = dict(
        session.execute(
            select(Participant.culture_group, func.count())
            .where(Participant.study_id == study.id, Participant.status == "started", Participant.ordinal.is_not(None))
            .group_by(Participant.culture_group)
        ).all()
    )
    free = places.free_places(session.connection(), study.id)
    labels = {g.id: g.label.get("en") or next(iter(g.label.values())) for g in spec.culture_groups}
    groups = [
        {
            "id": g.key,
            "label": labels.get(g.key, g.key),
            "quota": g.quota,
            "filled": g.filled - free.get(g.key, 0),
            "held": held.get(g.key, 0),
            "free": free.get(g.key, 0),
            "completed": completed.get(g.key, 0),
        }
        for g in session.scalars(
            select(CultureGroup).where(CultureGroup.study_id == study.id).order_by(CultureGroup.position)
        )
    ]
    responses = session.scalar(
        select(func.count()).select_from(Response).join(Participant).where(Participant.study_id == study.id)
    )
    return {
        "slug": study.slug,
        "title": spec.title.get("en") or next(iter(spec.title.values())),
        "recruiting": study.recruiting,
        "status": by_status,
        "groups": groups,
        "responses": responses,
    }


def _owner_form(slug: str, form_class: type[F]) -> tuple[Study, F]:
    """The study of an owner's dashboard form and the form posted: 404 for anyone but an owner (as for a study
    that does not exist), 400 for a form without its CSRF token or its field."""
    study = _study(slug, ownership.OWNER)
    form = form_class()
    if not form.validate_on_submit():
        abort(400)
    return study, form


def _back_to(study: Study, message: str):
    flash(message)
    return redirect(url_for("researcher.dashboard", _anchor=f"study-{study.slug}"))


@bp.post("/studies/<slug>/members")
@login_required
def share(slug: str):
    study, form = _owner_form(slug, ShareForm)
    session = get_session()
    email = form.email.data
    try:
        ownership.share(session, study.slug, email, ownership.COLLABORATOR, current_user.email)
    except ownership.MembershipError:
        # Saying only that no account has this email: it is the owner asking, about their own study.
        return _back_to(study, _("No researcher account has the email %(email)s.", email=email))
    session.commit()
    return _back_to(study, _("%(email)s can now see this study.", email=email))


@bp.post("/studies/<slug>/recruitment")
@login_required
def recruitment(slug: str):
    study, form = _owner_form(slug, RecruitmentForm)
    session = get_session()
    recruiting = form.recruiting.data == "open"
    set_recruiting(session, study.id, recruiting, current_user.email)
    session.commit()
    if recruiting:
        return _back_to(study, _("The study takes new participants again."))
    return _back_to(study, _("The study takes no new participants; those who started may finish."))


@bp.post("/studies/<slug>/participants/delete")
@login_required
def delete(slug: str):
    study, form = _owner_form(slug, DeleteParticipantForm)
    session = get_session()
    pseudonym = form.participant_id.data.strip()
    if not delete_participant(session, study.id, pseudonym, current_user.email):
        return _back_to(study, _("This study has no participant %(id)s.", id=pseudonym))
    session.commit()
    return _back_to(study, _("Participant %(id)s and all their data were deleted.", id=pseudonym))


@bp.get("/studies/<slug>/export.zip")
@login_required
def export(slug: str):
    study = _study(slug)
    fmt = request.args.get("format", "csv")
    if fmt not in ("csv", "parquet"):
        abort(400)
    session = get_session()
    audit.record(session, "study.export", current_user.email, study.id, format=fmt, via="web")
    session.commit()

    app = current_app._get_current_object()

    def package():
        # Written to a temporary folder from the database in batches, then streamed as a zip in chunks:
        # neither the data nor the archive is ever held in memory whole. Its own read-only session, closed
        # as soon as the files are written (on SQLite it holds no write lock meanwhile).
        tmp = Path(tempfile.mkdtemp(prefix="culturelab-export-"))
        try:
            with session_scope(app, read_only=True) as reader:
                export_study(reader, study.slug, tmp / study.slug, fmt)
            yield from zip_folder(tmp / study.slug, study.slug)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    current_app.logger.info("export of %s (%s) by %s", study.slug, fmt, current_user.email)
    return current_app.response_class(
        package(),
        mimetype="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{study.slug}-{fmt}.zip"'},
    )
