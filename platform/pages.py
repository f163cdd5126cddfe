"""Participant pages: the study link, then one page per stage of the journey.

The pages are thin: what a participant enters goes through the JSON API (static/participant.js), so
the browser, the bots and the load tests exercise the same code and the same validation.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, g, render_template, request, send_from_directory
from flask_babel import get_locale

from culturelab.platform import journey
from culturelab.platform.db import get_session
from culturelab.platform.extensions import LOCALES
from culturelab.platform.validation import country_codes

bp = Blueprint("pages", __name__)

# What each recruitment platform appends to the study link.
PROLIFIC = ("PROLIFIC_PID", "STUDY_ID", "SESSION_ID")
MTURK = ("workerId", "assignmentId", "hitId")
# MTurk shows a HIT's page in preview, before a worker accepts it, with this assignment id and no workerId.
MTURK_PREVIEW = "ASSIGNMENT_ID_NOT_AVAILABLE"


def ui_locale(language: str) -> str:
    base = language.split("-")[0]
    return base if base in LOCALES else "en"


@bp.get("/")
def index():
    return render_template("index.html")


@bp.get("/s/<slug>")
def study_link(slug: str):
    try:
        study = journey.get_study(get_session(), slug)
    except journey.JourneyError:
        abort(404)
    spec = journey.spec_of(study)
    args = request.args
    if args.get("assignmentId") == MTURK_PREVIEW:
        # Nobody to enrol yet: the worker sees what the HIT is and must accept it to begin.
        return render_template("participant/preview.html", spec=spec)
    if args.get("PROLIFIC_PID"):
        external_id, source = args["PROLIFIC_PID"], "prolific"
        recruitment = {k: args[k] for k in PROLIFIC[1:] if k in args}
    elif args.get("workerId"):
        external_id, source = args["workerId"], "mturk"
        recruitment = {k: args[k] for k in MTURK[1:] if k in args}
        # Where to submit the finished assignment (live or sandbox); only MTurk's own hosts are kept.
        host = urlsplit(args.get("turkSubmitTo", "")).hostname
        if host in journey.MTURK_SUBMIT_HOSTS:
            recruitment["turkSubmitTo"] = host
    else:
        external_id, source, recruitment = None, "link", {}
    return render_template(
        "participant/start.html",
        slug=slug,
        spec=spec,
        start={"external_id": external_id, "source": source, "recruitment": recruitment},
    )


@bp.get("/p/<token>")
def participant_page(token: str):
    session = get_session()
    try:
        participant = journey.get_participant(session, token)
    except journey.JourneyError:
        abort(404)
    g.locale = ui_locale(participant.language)
    spec = journey.spec_of(participant.study)
    lang = participant.language
    stage = journey.stage(participant)
    context = {"token": token, "spec": spec, "lang": lang, "participant": participant}
    if stage == "consent":
        return render_template("participant/consent.html", **context)
    if stage == "background":
        return render_template("participant/background.html", **context, countries=_countries(), languages=_languages())
    if stage == "trials":
        return render_template("participant/trials.html", **context)
    if stage == "done":
        mturk = journey.mturk_submit(participant)
        return render_template("participant/done.html", **context, **journey.completion(participant), mturk=mturk)
    return render_template("participant/ended.html", **context, reason=participant.status_reason)


def _countries() -> list[tuple[str, str]]:
    names = get_locale().territories
    return sorted(((code, names.get(code, code)) for code in country_codes()), key=lambda item: item[1])


def _languages() -> list[tuple[str, str]]:
    names = get_locale().languages
    return sorted(
        ((code, name) for code, name in names.items() if "_" not in code and len(code) in (2, 3)),
        key=lambda item: item[1],
    )


@bp.get("/media/<sha256>.png")
def media(sha256: str):
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        abort(404)
    # Content-addressed: a URL's bytes never change, so browsers may keep them for good.
    return send_from_directory(current_app.config["MEDIA_DIR"], f"{sha256}.png", max_age=31536000)
