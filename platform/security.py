"""The web edge: security headers, cookie flags, server-side researcher sessions, sign-in throttling and the
limits per client address (sign-in, new participants, withdrawal codes).

Headers follow the OWASP Secure Headers Project. The throttle's counts live in the database, so every
server process (and every machine behind a load balancer) shares them without an extra service.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import threading
import time
from dataclasses import dataclass
from functools import cache

from flask import Flask, Response, current_app, g, request, session
from itsdangerous import BadSignature, URLSafeTimedSerializer
from limits import RateLimitItem
from limits import parse as parse_limit
from sqlalchemy import case, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.security import check_password_hash, generate_password_hash

from culturelab.platform.models import Researcher, ResearcherSession, SignInThrottle

# MTurk shows an ExternalQuestion HIT in a frame on its worker sites, and the finished HIT is posted back to
# it, so participant pages may be framed by those hosts and forms may post there; nothing else is framed.
MTURK_FRAMERS = "https://worker.mturk.com https://www.mturk.com https://workersandbox.mturk.com"
MTURK_SUBMIT = "https://www.mturk.com https://workersandbox.mturk.com"
PARTICIPANT_PAGES = ("/s/", "/p/")
HSTS = "max-age=31536000"
DEVICE_COOKIE = "culturelab_device"
SESSION_ID = "culturelab_sid"


def init_app(app: Flask) -> None:
    """Cookie flags, the proxy's forwarded headers (when configured) and the response headers."""
    https = app.config.get("PREFERRED_URL_SCHEME") == "https"
    # Lax: the cookie is not sent with cross-site POSTs (a second line behind CSRF tokens) but is with a
    # link followed from elsewhere. Secure only over HTTPS, or a plain-HTTP development server loses it.
    app.config["SESSION_COOKIE_SAMESITE"] = app.config.get("SESSION_COOKIE_SAMESITE") or "Lax"
    app.config["SESSION_COOKIE_SECURE"] = bool(app.config.get("SESSION_COOKIE_SECURE")) or https
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    proxies = int(app.config.get("TRUSTED_PROXIES", 0))
    if proxies:
        # Behind N proxies, the client address and scheme are the ones they forwarded (never trust more
        # hops than there are proxies: a client can send the headers too).
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)
    app.jinja_env.globals["csp_nonce"] = csp_nonce
    app.after_request(_secure_headers)
    _drop_gunicorn_server_header()
    if not app.testing:
        # Made ahead, beside start-up, so that not even the first unknown email of a process takes longer.
        threading.Thread(target=_stand_in_hash, name="stand-in-hash", daemon=True).start()


def csp_nonce() -> str:
    """The request's nonce for inline scripts: ``<script nonce="{{ csp_nonce() }}">``."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return g.csp_nonce


def _secure_headers(response: Response) -> Response:
    participant_page = request.path.startswith(PARTICIPANT_PAGES)
    scripts = "'self'" + (f" 'nonce-{g.csp_nonce}'" if "csp_nonce" in g else "")
    policy = {
        "default-src": "'self'",
        "script-src": scripts,
        "style-src": "'self'",
        "img-src": "'self' data:",
        "object-src": "'none'",
        "base-uri": "'none'",
        "form-action": f"'self' {MTURK_SUBMIT}" if participant_page else "'self'",
        "frame-ancestors": f"'self' {MTURK_FRAMERS}" if participant_page else "'none'",
    }
    headers = response.headers
    headers.setdefault("Content-Security-Policy", "; ".join(f"{k} {v}" for k, v in policy.items()))
    headers.setdefault("X-Content-Type-Options", "nosniff")
    if not participant_page:
        headers.setdefault("X-Frame-Options", "DENY")  # for browsers without frame-ancestors
    # Participant links carry their token in the path: no page may send it to another site as a referrer.
    headers.setdefault("Referrer-Policy", "no-referrer")
    if request.path.startswith("/researcher"):
        headers.setdefault("Cache-Control", "no-store")  # study data never sit in a shared cache
    if request.is_secure or current_app.config.get("PREFERRED_URL_SCHEME") == "https":
        headers.setdefault("Strict-Transport-Security", HSTS)
    return response


def _drop_gunicorn_server_header() -> None:
    """gunicorn writes ``Server: gunicorn`` itself, below the WSGI app, and has no setting for it; its
    response's default headers are filtered instead (idempotent; tested in test_security.py)."""
    from gunicorn.http import wsgi

    original = wsgi.Response.default_headers
    if getattr(original, "culturelab", False):
        return

    def default_headers(self):
        return [line for line in original(self) if not line.lower().startswith("server:")]

    default_headers.culturelab = True
    wsgi.Response.default_headers = default_headers


# -- researcher sessions ---------------------------------------------------------------------------------


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def start_session(db: Session, researcher: Researcher) -> None:
    """Records a new signed-in browser (the caller commits, then calls Flask-Login's login_user)."""
    now = time.time()
    hours = float(current_app.config.get("RESEARCHER_SESSION_HOURS", 12))
    db.execute(
        delete(ResearcherSession).where(
            ResearcherSession.researcher_id == researcher.id, ResearcherSession.expires_at <= now
        )
    )
    sid = secrets.token_urlsafe(32)
    db.add(ResearcherSession(id_hash=_digest(sid), researcher_id=researcher.id, expires_at=now + hours * 3600))
    session.clear()
    session[SESSION_ID] = sid


def end_session(db: Session) -> None:
    """Forgets this browser's session on the server too (the caller commits and calls logout_user)."""
    sid = session.pop(SESSION_ID, None)
    if sid:
        db.execute(delete(ResearcherSession).where(ResearcherSession.id_hash == _digest(sid)))


def session_researcher(db: Session, user_id: str) -> Researcher | None:
    """Flask-Login's user loader: the researcher only while the cookie's session is live on the server."""
    sid = session.get(SESSION_ID)
    if not sid or not user_id.isdigit():
        return None
    return db.scalar(
        select(Researcher)
        .join(ResearcherSession, ResearcherSession.researcher_id == Researcher.id)
        .where(
            Researcher.id == int(user_id),
            ResearcherSession.id_hash == _digest(sid),
            ResearcherSession.expires_at > time.time(),
        )
    )


# -- throttling: sign-in, and requests per client address -------------------------------------------------


class Throttled(Exception):
    def __init__(self, retry_after: float):
        super().__init__(f"retry after {retry_after:.0f} s")
        self.retry_after = max(1, math.ceil(retry_after))


@dataclass(frozen=True)
class Attempt:
    """A sign-in attempt let through."""

    account: str  # the account's key (a hash of the email)
    key: str  # the key it was counted under: the account's, or this browser's when it is a trusted device
    device: str  # the trusted-device nonce this browser holds or will be given


_throttle = SignInThrottle.__table__


def begin_attempt(db: Session, address: str | None, email: str, device_cookie: str | None) -> Attempt:
    """Counts one sign-in attempt, or raises Throttled. Commits, so that the count holds even if the
    password check is interrupted, and so that no lock is held while the password is hashed.

    Per client address: at most LOGIN_LIMIT attempts (e.g. "10/minute") per window. Per account:
    LOGIN_FREE_ATTEMPTS, then exponential back-off (1 s, 2 s, 4 s …) capped at LOGIN_MAX_BACKOFF seconds.
    A browser that has signed in to the account before holds a signed device cookie and is counted
    under its own key instead (OWASP's device cookies), so a guesser can slow the account down for
    strangers but never lock its owner out. Unknown emails are counted exactly like known ones.
    """
    config = current_app.config
    now = time.time()
    account = "acct:" + _digest(email)
    device = _trusted_device(device_cookie, account)
    key = f"dev:{device}" if device else account
    if config.get("RATELIMIT_ENABLED", True):
        _count_in_window(db, f"addr:{address or '-'}", now, parse_limit(config.get("LOGIN_LIMIT", "10/minute")))
        _back_off(db, key, now, int(config.get("LOGIN_FREE_ATTEMPTS", 5)), float(config.get("LOGIN_MAX_BACKOFF", 300)))
    db.commit()
    return Attempt(account, key, device or secrets.token_urlsafe(18))


def count_by_address(db: Session, scope: str, address: str | None, limit: str) -> None:
    """Counts one request of ``scope`` from the client address against ``limit`` (e.g. "10/minute") and
    commits, or raises Throttled. Off when RATELIMIT_ENABLED is false."""
    if current_app.config.get("RATELIMIT_ENABLED", True):
        _count_in_window(db, f"{scope}:{address or '-'}", time.time(), parse_limit(limit))
        db.commit()


def sign_in_succeeded(db: Session, attempt: Attempt) -> None:
    """Clears the back-off the attempt was counted under (only that one: a sign-in from the owner's trusted
    browser must not reset the back-off a guesser has earned for everyone else)."""
    db.execute(delete(SignInThrottle).where(SignInThrottle.key == attempt.key))
    # Housekeeping, on the rare successful sign-in: counts nobody has touched for a day are spent.
    stale = time.time() - 86400
    db.execute(delete(SignInThrottle).where(SignInThrottle.window_start < stale, SignInThrottle.next_at < stale))


def _ensure_row(db: Session, key: str, now: float) -> None:
    dialect = postgresql if db.get_bind().dialect.name == "postgresql" else sqlite
    db.execute(
        dialect.insert(_throttle)
        .values(key=key, attempts=0, window_start=now, next_at=0.0)
        .on_conflict_do_nothing(index_elements=["key"])
    )


def _count_in_window(db: Session, key: str, now: float, rate: RateLimitItem) -> None:
    limit, window = rate.amount, rate.get_expiry()
    _ensure_row(db, key, now)
    # One guarded UPDATE: PostgreSQL re-checks the WHERE after taking the row lock and SQLite's writer lock
    # serialises the transaction, so racing processes cannot both take the last attempt of a window.
    stale = _throttle.c.window_start <= now - window
    counted = db.execute(
        update(_throttle)
        .where(_throttle.c.key == key, or_(stale, _throttle.c.attempts < limit))
        .values(
            attempts=case((stale, 1), else_=_throttle.c.attempts + 1),
            window_start=case((stale, now), else_=_throttle.c.window_start),
        )
        .returning(_throttle.c.attempts)
    ).first()
    if counted is None:
        started = db.scalar(select(_throttle.c.window_start).where(_throttle.c.key == key))
        db.commit()
        raise Throttled(started + window - now)


def _back_off(db: Session, key: str, now: float, free: int, cap: float) -> None:
    _ensure_row(db, key, now)
    # The row stays locked until commit, so a racing attempt re-reads next_at after this one set it.
    attempts = db.scalar(
        update(_throttle)
        .where(_throttle.c.key == key, _throttle.c.next_at <= now)
        .values(attempts=_throttle.c.attempts + 1)
        .returning(_throttle.c.attempts)
    )
    if attempts is None:
        next_at = db.scalar(select(_throttle.c.next_at).where(_throttle.c.key == key))
        db.commit()
        raise Throttled(next_at - now)
    delay = 0.0 if attempts < free else min(cap, 2.0 ** (attempts - free))
    db.execute(update(_throttle).where(_throttle.c.key == key).values(next_at=now + delay))


def _devices() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt="culturelab-device")


DEVICE_MAX_AGE = 180 * 24 * 3600


def _trusted_device(cookie: str | None, account: str) -> str | None:
    if not cookie:
        return None
    try:
        data = _devices().loads(cookie, max_age=DEVICE_MAX_AGE)
    except BadSignature:
        return None
    return data.get("d") if isinstance(data, dict) and data.get("a") == account else None


def set_device_cookie(response: Response, attempt: Attempt) -> None:
    """Marks this browser as one the account's owner signed in from (see begin_attempt)."""
    response.set_cookie(
        DEVICE_COOKIE,
        _devices().dumps({"a": attempt.account, "d": attempt.device}),
        max_age=DEVICE_MAX_AGE,
        path="/researcher",
        secure=current_app.config["SESSION_COOKIE_SECURE"],
        httponly=True,
        samesite="Lax",
    )


@cache
def _stand_in_hash() -> str:
    return generate_password_hash(secrets.token_hex(16))


def verify_password(researcher: Researcher | None, password: str) -> bool:
    """The password check, hashing as long for an unknown email as for a known one, so the time taken
    does not tell which emails have accounts."""
    if researcher is None:
        check_password_hash(_stand_in_hash(), password)
        return False
    return check_password_hash(researcher.password_hash, password)


# A generated document with inline scripts and styles (the analysis report, with plotly inline): it runs in
# a sandbox, an opaque origin, so its scripts can neither read the researcher's session nor call the site.
SANDBOXED_DOCUMENT = (
    "sandbox allow-scripts allow-popups allow-downloads; default-src 'none'; script-src 'unsafe-inline' "
    "'unsafe-eval'; style-src 'unsafe-inline'; img-src data: blob:; font-src data:; frame-ancestors 'self'"
)


def sandboxed(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = SANDBOXED_DOCUMENT
    return response
