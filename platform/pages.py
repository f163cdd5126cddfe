"""Participant pages: the study link, then one page per stage of the journey; and the error pages.

The pages are thin: what a participant enters goes through the JSON API (static/participant.js), so
the browser, the bots and the load tests exercise the same code and the same validation.
"""

from __future__ import annotations

import unicodedata
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    abort,
    current_app,
    g,
    has_request_context,
    make_response,
    render_template,
    request,
    send_from_directory,
)
from flask_babel import get_locale, gettext
from pypinyin import lazy_pinyin
from werkzeug.exceptions import HTTPException, ServiceUnavailable

from culturelab.platform import api, journey
from culturelab.platform.completion import MTURK_SUBMIT_HOSTS, completion, mturk_submit
from culturelab.platform.db import get_session
from culturelab.platform.models import MAX_ROW_ID
from culturelab.platform.opaque_ids import LENGTH as OPAQUE_LENGTH
from culturelab.platform.opaque_ids import image_sha256
from culturelab.platform.study_specs import spec_of
from culturelab.platform.validation import MAX_LANGUAGES, country_codes, language_codes

bp = Blueprint("pages", __name__)

# What each recruitment platform appends to the study link.
PROLIFIC = ("PROLIFIC_PID", "STUDY_ID", "SESSION_ID")
MTURK = ("workerId", "assignmentId", "hitId")
# MTurk shows a HIT's page in preview, before a worker accepts it, with this assignment id and no workerId.
MTURK_PREVIEW = "ASSIGNMENT_ID_NOT_AVAILABLE"


@bp.get("/")
def index():
    return render_template("index.html")


@bp.get("/s/<slug>")
def study_link(slug: str):
    try:
        study = journey.get_study(get_session(), slug)
    except journey.JourneyError:
        abort(404)
    spec = spec_of(study)
    args = request.args
    if args.get("assignmentId") == MTURK_PREVIEW:
        # Nobody to enrol yet: the worker sees what the HIT is and must accept it to begin (unless the study
        # is closed, which they must know before accepting).
        return render_template("participant/preview.html", spec=spec, closed=not study.recruiting)
    if args.get("PROLIFIC_PID"):
        external_id, source = args["PROLIFIC_PID"], "prolific"
        recruitment = {k: args[k] for k in PROLIFIC[1:] if k in args}
    elif args.get("workerId"):
        external_id, source = args["workerId"], "mturk"
        recruitment = {k: args[k] for k in MTURK[1:] if k in args}
        # Where to submit the finished assignment (live or sandbox); only MTurk's own hosts are kept.
        host = urlsplit(args.get("turkSubmitTo", "")).hostname
        if host in MTURK_SUBMIT_HOSTS:
            recruitment["turkSubmitTo"] = host
    else:
        external_id, source, recruitment = None, "link", {}
    return render_template(
        "participant/start.html",
        slug=slug,
        spec=spec,
        start={"external_id": external_id, "source": source, "recruitment": recruitment},
        closed=not study.recruiting,
    )


@bp.get("/p/<token>")
def participant_page(token: str):
    session = get_session()
    try:
        participant = journey.get_participant(session, token)
    except journey.JourneyError:
        abort(404)
    g.locale = api.ui_locale(participant.language)
    spec = spec_of(participant.study)
    lang = participant.language
    stage = journey.stage(participant)
    context = {"token": token, "spec": spec, "lang": lang, "participant": participant}
    if stage == "consent":
        return render_template("participant/consent.html", **context)
    if stage == "background":
        common, others = _languages()
        return render_template(
            "participant/background.html", **context, countries=_countries(), common_languages=common,
            other_languages=others, max_languages=MAX_LANGUAGES,
        )
    if stage == "trials":
        return render_template("participant/trials.html", **context)
    if stage == "done":
        mturk = mturk_submit(participant)
        return render_template("participant/done.html", **context, **completion(participant), mturk=mturk)
    return render_template("participant/ended.html", **context, reason=participant.status_reason)


def _countries() -> list[tuple[str, str]]:
    locale = get_locale()
    names = locale.territories
    return sorted(
        ((code, names.get(code, code)) for code in country_codes()),
        key=lambda item: collation_key(item[1], locale.language),
    )


# Offered first in the language picker: the most spoken languages, first and second language speakers
# together (Ethnologue 2023's top thirteen), so that most participants find theirs without searching.
COMMON_LANGUAGES = ("en", "zh", "hi", "es", "fr", "ar", "bn", "pt", "ru", "ur", "id", "de", "ja")


def collation_key(name: str, language: str) -> str:
    """How a reader of ``language`` expects names sorted: Chinese by pinyin (as dictionaries and phone
    contact lists do), others by letter, ignoring case and accents."""
    if language == "zh":
        return " ".join(lazy_pinyin(name, errors="default")).casefold()
    decomposed = unicodedata.normalize("NFKD", name.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _languages() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The language picker's (code, name) pairs in the page's language: the common ones, then all others."""
    locale = get_locale()
    names = {code: name for code, name in locale.languages.items() if code in language_codes()}

    def ordered(codes) -> list[tuple[str, str]]:
        return sorted(((code, names[code]) for code in codes), key=lambda item: collation_key(item[1], locale.language))

    return ordered(c for c in COMMON_LANGUAGES if c in names), ordered(c for c in names if c not in COMMON_LANGUAGES)


@bp.get(f"/media/<int(max={MAX_ROW_ID}):study>/<opaque>.png")
def media(study: int, opaque: str):
    """A study's image by its opaque id (opaque_ids): the URL names no culture, set, method or hash."""
    sha256 = image_sha256(get_session(), study, opaque) if len(opaque) == OPAQUE_LENGTH else None
    if sha256 is None:
        abort(404)
    # The opaque id changes with the bytes, so a URL's bytes never change: browsers may keep them for good.
    # The file is sent under a neutral name, and its validator is the opaque id, not Werkzeug's default of
    # the file's modification time (the order images were imported in, which follows the manifest and so
    # groups them by culture); for the same reason no Last-Modified is sent.
    response = send_from_directory(
        current_app.config["MEDIA_DIR"], f"{sha256}.png", max_age=31536000, download_name=f"{opaque}.png",
        etag=opaque,
    )
    del response.headers["Last-Modified"]
    return response


@bp.app_context_processor
def page_language() -> dict[str, str]:
    """``<html lang>`` of every page (base.html): the participant's language where a page sets ``html_lang``,
    else the language the page's own words are in."""
    locale = get_locale() if has_request_context() else None  # a template rendered outside a request: English
    return {"ui_lang": locale.language if locale else "en"}


def error_page(exc: HTTPException):
    """Errors as a styled page in the reader's language (the participant's, on a participant's page); under
    /api/ in the API's JSON shape instead."""
    if request.path.startswith("/api/"):
        return api.http_error(exc)
    code = exc.code or 500
    if code == 404:
        heading = gettext("Page not found")
        text = gettext("There is no page at this address. If you followed a link to a study, please check that "
                       "it was copied in full, or ask the researcher for the link again.")
    elif code == 503:
        heading = gettext("Briefly unavailable")
        text = gettext("The study cannot be reached for a moment. Any answers you gave are saved. This page will "
                       "try again by itself in a few seconds.")
    elif code >= 500:
        heading = gettext("Something went wrong")
        text = gettext("The server could not show this page. Any answers you gave are saved. Please try again "
                       "in a moment.")
    else:
        heading = gettext("This request could not be handled")
        text = gettext("Please go back and try again.")
    response = make_response(render_template("error.html", code=code, heading=heading, text=text), code)
    if code == 503:
        response.headers["Retry-After"] = api.RETRY_AFTER_S
    return response


# Registered for the whole app by code, which Flask looks up before app.py's handler for HTTPException in
# general: a 404 anywhere, a 500 from any view.
for _code in (400, 403, 404, 405, 413, 500, 503):
    bp.app_errorhandler(_code)(error_page)


@bp.app_errorhandler(Exception)
def _database_down(exc: Exception):
    """A page that needed the database while it was down: 503 and a page that reloads itself."""
    if isinstance(exc, HTTPException) or not api.database_unavailable(exc):
        raise exc
    current_app.logger.warning("database unavailable: %s", exc)
    return error_page(ServiceUnavailable())
