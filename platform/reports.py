"""A study's analysis report, kept in the data folder and shown on the researcher pages.

`build_report` exports the study's current data (Contract 2) and runs `culturelab analyze` on it in a
separate process (the analysis's own command: the web app never imports the analysis stack). The report is
stamped with the number of responses it saw, so a page can tell that newer answers have arrived.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from flask import Blueprint, abort, current_app, send_file
from flask_login import current_user, login_required
from sqlalchemy import func, select

from culturelab.platform import ownership, security
from culturelab.platform.db import get_session, session_scope
from culturelab.platform.export import export_study
from culturelab.platform.models import Participant, Response, Study

bp = Blueprint("reports", __name__, url_prefix="/researcher/studies")


class ReportError(RuntimeError):
    pass


def report_dir(app, slug: str) -> Path:
    return Path(app.config["DATA_DIR"]) / "reports" / slug


def responses_stored(session, slug: str) -> int:
    return session.scalar(
        select(func.count(Response.id))
        .join(Participant, Response.participant_id == Participant.id)
        .join(Study, Participant.study_id == Study.id)
        .where(Study.slug == slug)
    )


def report_status(app, slug: str, session) -> dict | None:
    """The report's stamp and whether answers came in since it was made; None when there is none."""
    stamp_file = report_dir(app, slug) / "stamp.json"
    if not stamp_file.exists():
        return None
    stamp = json.loads(stamp_file.read_text())
    return {**stamp, "stale": responses_stored(session, slug) != stamp["responses"]}


def build_report(app, slug: str) -> Path:
    """Exports the study and analyses it into the report folder (replaced whole when done); returns the
    report's path. The analysis's progress bars go to this process's stderr."""
    with session_scope(app) as session:
        responses = responses_stored(session, slug)
    target = report_dir(app, slug)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{slug}-") as work:
        data, out = Path(work) / "data", Path(work) / "report"
        with session_scope(app) as session:
            export_study(session, slug, data, "csv")
        finished = subprocess.run(
            [sys.executable, "-m", "culturelab.platform.cli", "analyze", str(data), "--out", str(out)],
            stdout=subprocess.DEVNULL, stderr=None, env={**os.environ}, check=False,
        )
        if finished.returncode != 0:
            raise ReportError(f"the analysis of {slug!r} failed (exit code {finished.returncode})")
        (out / "stamp.json").write_text(json.dumps({"responses": responses}))
        shutil.move(data, out / "data")
        old = target.with_name(f".{slug}-old")
        if target.exists():
            target.rename(old)
        Path(out).rename(target)
        shutil.rmtree(old, ignore_errors=True)
    return target / "report.html"


@bp.get("/<slug>/report")
@login_required
def report(slug: str):
    path = report_dir(current_app, slug) / "report.html"
    # A study the researcher is not a member of is a 404, like one that does not exist (ownership.py).
    if ownership.study_for(get_session(), slug, current_user.id) is None or not path.exists():
        abort(404)
    return security.sandboxed(send_file(path, mimetype="text/html", max_age=0))
