"""A study's analysis report and stimulus gallery on the researcher pages.

`build_report` exports the study's current data (Contract 2) and runs `culturelab analyze` on it in a child
process (the analysis's own command: the web app never imports the analysis stack). The finished report is
stamped with the number of responses it saw, so the dashboard can say when newer answers have arrived.
From the dashboard a member starts a build in the background; one build per study runs at a time, whichever
server process takes the request (a lock file in the data folder), and its progress is read from the
analysis's progress bar.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from flask import Blueprint, abort, current_app, jsonify, redirect, render_template, send_file, url_for
from flask_login import current_user, login_required
from sqlalchemy import func, select

from culturelab.platform import audit, ownership, security
from culturelab.platform.db import get_session, session_scope
from culturelab.platform.export import export_study
from culturelab.platform.models import MAX_ROW_ID, Participant, Response, Stimulus, StimulusSet, Study

log = logging.getLogger(__name__)
bp = Blueprint("reports", __name__, url_prefix="/researcher/studies")

STALE_LOCK_S = 30 * 60  # a build that has not finished in this long died with its process


class ReportError(RuntimeError):
    pass


def report_dir(app, slug: str) -> Path:
    return Path(app.config["DATA_DIR"]) / "reports" / slug


def responses_stored(session, slug: str) -> int:
    return session.scalar(
        select(func.count(Response.id))
        .join(Participant, Response.participant_id == Participant.id)
        .join(Study, Participant.study_id == Study.id)
        .where(Study.slug == slug, Participant.status != "withdrawn")
    )


def _lock(app, slug: str) -> Path:
    return report_dir(app, slug).with_name(f".{slug}.building")


def build_report(app, slug: str, progress_log: Path | None = None) -> Path:
    """Exports the study and analyses it into the report folder, replaced whole when done; returns the report's
    path. The analysis's progress bar goes to ``progress_log``, or to this process's stderr."""
    with session_scope(app, read_only=True) as session:
        responses = responses_stored(session, slug)
    target = report_dir(app, slug)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{slug}-") as work:
        data, out = Path(work) / "data", Path(work) / "report"
        with session_scope(app, read_only=True) as session:  # on SQLite: no write lock while it runs
            export_study(session, slug, data, "csv")
        stderr = progress_log.open("w") if progress_log else None
        try:
            finished = subprocess.run(
                [sys.executable, "-m", "culturelab.platform.cli", "analyze", str(data), "--out", str(out)],
                stdout=subprocess.DEVNULL, stderr=stderr, env={**os.environ}, check=False,
            )
        finally:
            if stderr:
                stderr.close()
        if finished.returncode != 0:
            raise ReportError(f"the analysis of {slug!r} failed (exit code {finished.returncode})")
        stamp = {"responses": responses, "made_at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
        (out / "stamp.json").write_text(json.dumps(stamp))
        shutil.move(data, out / "data")
        old = target.with_name(f".{slug}-old")
        if target.exists():
            target.rename(old)
        out.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    return target / "report.html"


def report_status(app, session, slug: str) -> dict:
    """``state``: none | running | ready | failed; with the report's stamp and whether answers came in since."""
    folder, lock = report_dir(app, slug), _lock(app, slug)
    status: dict = {"state": "none", "responses_now": responses_stored(session, slug)}
    if (folder / "stamp.json").exists():
        stamp = json.loads((folder / "stamp.json").read_text())
        status.update(state="ready", made_at=stamp["made_at"], responses=stamp["responses"],
                      stale=stamp["responses"] != status["responses_now"])
    failed = folder.with_name(f".{slug}.failed")
    if failed.exists() and (not (folder / "stamp.json").exists()
                            or failed.stat().st_mtime > (folder / "stamp.json").stat().st_mtime):
        status["state"], status["error"] = "failed", failed.read_text()
    if lock.exists() and time.time() - lock.stat().st_mtime < STALE_LOCK_S:
        percents = re.findall(r"(\d+)%", lock.read_text(errors="replace"))
        status.update(state="running", progress=int(percents[-1]) if percents else 0)
    return status


def start_build(app, slug: str) -> bool:
    """Starts a build in a background thread unless one is running; False if one was."""
    lock = _lock(app, slug)
    lock.parent.mkdir(parents=True, exist_ok=True)
    if lock.exists() and time.time() - lock.stat().st_mtime >= STALE_LOCK_S:
        lock.unlink(missing_ok=True)
    try:
        os.close(os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY))  # one build per study, in any process
    except FileExistsError:
        return False

    def run() -> None:
        failed = lock.with_name(f".{slug}.failed")
        try:
            build_report(app, slug, progress_log=lock)
            failed.unlink(missing_ok=True)
        except Exception as exc:  # the page shows it; the server goes on
            log.exception("report of %s failed", slug)
            failed.write_text(str(exc))
        finally:
            lock.unlink(missing_ok=True)

    threading.Thread(target=run, name=f"report-{slug}", daemon=True).start()
    return True


@bp.app_context_processor
def _report_status_for() -> dict:
    """``report_status_for(slug)`` for the dashboard's report box (templates/researcher/_report.html)."""
    return {"report_status_for": lambda slug: report_status(current_app, get_session(), slug)}


def _member_study(slug: str) -> Study:
    """The signed-in researcher's study, or 404, for a stranger exactly as for a study that does not exist."""
    study = ownership.study_for(get_session(), slug, current_user.id)
    if study is None:
        abort(404)
    return study


@bp.get("/<slug>/report")
@login_required
def report(slug: str):
    _member_study(slug)
    path = report_dir(current_app, slug) / "report.html"
    if not path.exists():
        abort(404)
    # The report's plotly is inline: it runs under a CSP of its own, sandboxed from the researcher pages.
    return security.sandboxed(send_file(path, mimetype="text/html", max_age=0))


@bp.post("/<slug>/report")
@login_required
def run_report(slug: str):
    study = _member_study(slug)
    session = get_session()
    if start_build(current_app._get_current_object(), slug):
        audit.record(session, "study.analyse", current_user.email, study.id)
        session.commit()
    return redirect(url_for("researcher.dashboard") + f"#study-{slug}")


@bp.get("/<slug>/report/status")
@login_required
def status(slug: str):
    _member_study(slug)
    return jsonify(report_status(current_app, get_session(), slug))


@bp.get("/<slug>/stimuli")
@login_required
def gallery(slug: str):
    """Every stimulus of the study by culture condition, with its manifest metadata."""
    study = _member_study(slug)
    rows = get_session().execute(
        select(Stimulus, StimulusSet.name)
        .join(StimulusSet, Stimulus.set_id == StimulusSet.id)
        .where(Stimulus.set_id.in_([s.id for s in study.stimulus_sets]))
        .order_by(Stimulus.culture, StimulusSet.name, Stimulus.key)
    ).all()
    by_culture: dict[str, list] = {}
    for stimulus, set_name in rows:
        by_culture.setdefault(stimulus.culture, []).append((stimulus, set_name))
    return render_template("researcher/gallery.html", study=study, by_culture=by_culture)


@bp.get(f"/<slug>/stimuli/<int(max={MAX_ROW_ID}):stimulus_id>.png")
@login_required
def stimulus_image(slug: str, stimulus_id: int):
    study = _member_study(slug)
    stimulus = get_session().get(Stimulus, stimulus_id)
    if stimulus is None or stimulus.set_id not in {s.id for s in study.stimulus_sets}:
        abort(404)
    return send_file(Path(current_app.config["MEDIA_DIR"]) / f"{stimulus.sha256}.png", mimetype="image/png")
