"""Researcher pages: sign in, watch recruitment per study and culture group, download the data package.

A login session (Flask-Login) with CSRF protection (Flask-WTF) on every form; sign-in attempts are rate
limited per address.
"""

from __future__ import annotations

import io
import shutil
import tempfile
import zipfile
from pathlib import Path

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from werkzeug.security import check_password_hash, generate_password_hash
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Length

from culturelab.platform.db import get_session
from culturelab.platform.export import export_study
from culturelab.platform.extensions import limiter, login_manager
from culturelab.platform.journey import spec_of
from culturelab.platform.models import CultureGroup, Participant, Researcher, Response, Study

bp = Blueprint("researcher", __name__, url_prefix="/researcher")


@login_manager.user_loader
def load_user(user_id: str) -> Researcher | None:
    return get_session().get(Researcher, int(user_id)) if user_id.isdigit() else None


def create_researcher(session, email: str, password: str) -> Researcher:
    if len(password) < 10:
        raise ValueError("the password must have at least 10 characters")
    researcher = Researcher(email=email.strip().lower(), password_hash=generate_password_hash(password))
    session.add(researcher)
    return researcher


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["LOGIN_LIMIT"], methods=["POST"])
def login():
    form = LoginForm()
    if form.validate_on_submit():
        researcher = get_session().scalar(select(Researcher).where(Researcher.email == form.email.data.strip().lower()))
        if researcher is not None and check_password_hash(researcher.password_hash, form.password.data):
            login_user(researcher)
            return redirect(url_for("researcher.dashboard"))
        flash(_("Unknown email or wrong password."))
    return render_template("researcher/login.html", form=form), 200 if request.method == "GET" else 401


@bp.post("/logout")
@login_required
def logout():
    logout_user()
    return redirect(url_for("researcher.login"))


@bp.get("/")
@login_required
def dashboard():
    session = get_session()
    studies = session.scalars(select(Study).order_by(Study.slug)).all()
    return render_template(
        "researcher/dashboard.html", studies=[_recruitment(session, s) for s in studies], user=current_user
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
    labels = {g.id: g.label.get("en") or next(iter(g.label.values())) for g in spec.culture_groups}
    groups = [
        {
            "id": g.key,
            "label": labels.get(g.key, g.key),
            "quota": g.quota,
            "filled": g.filled,
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
        "status": by_status,
        "groups": groups,
        "responses": responses,
    }


@bp.get("/studies/<slug>/export.zip")
@login_required
def export(slug: str):
    fmt = request.args.get("format", "csv")
    if fmt not in ("csv", "parquet"):
        abort(400)
    tmp = Path(tempfile.mkdtemp())
    try:
        try:
            export_study(get_session(), slug, tmp / slug, fmt)
        except LookupError:
            abort(404)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted((tmp / slug).iterdir()):
                archive.write(path, f"{slug}/{path.name}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    buffer.seek(0)
    return send_file(buffer, mimetype="application/zip", as_attachment=True, download_name=f"{slug}-{fmt}.zip")
