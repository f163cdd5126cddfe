"""Configuration objects (Flask docs' pattern). Any value can be overridden by an environment variable
with the CULTURELAB_ prefix (CULTURELAB_DATABASE_URL, CULTURELAB_SECRET_KEY, CULTURELAB_DATA_DIR, …),
read by the app factory when the app is created."""

from __future__ import annotations

from pathlib import Path


class Config:
    """Production defaults. ``DATABASE_URL=None`` means an SQLite file in the instance folder;
    ``SECRET_KEY=None`` means one generated once and kept in the instance folder."""

    DATABASE_URL: str | None = None
    SECRET_KEY: str | None = None
    DATA_DIR: str | None = None
    # Participant requests are small JSON bodies; anything bigger is refused with 413 before parsing.
    MAX_CONTENT_LENGTH: int = 64 * 1024
    # `culturelab serve`: seconds a request body may take to arrive before the answer is 408 (asgi.py).
    REQUEST_BODY_TIMEOUT: float = 10.0
    BABEL_DEFAULT_LOCALE = "en"
    BABEL_TRANSLATION_DIRECTORIES = str(Path(__file__).parent / "translations")
    WTF_CSRF_TIME_LIMIT = None
    # Limits per client address, counted in the database (security.py), so that every server process
    # shares them; RATELIMIT_ENABLED=False turns them all off (tests, benchmarks).
    RATELIMIT_ENABLED = True
    # New participants per client address; generous because a lab may seat a class behind one address.
    PARTICIPANT_CREATE_LIMIT = "600/minute"
    LOGIN_LIMIT = "10/minute"
    # Sign-in throttling kept in the database (security.py): attempts before an account's back-off starts,
    # and its longest back-off in seconds.
    LOGIN_FREE_ATTEMPTS = 5
    LOGIN_MAX_BACKOFF = 300
    RESEARCHER_SESSION_HOURS = 12
    WITHDRAW_LIMIT = "10/minute"
    # Proxies in front of the app whose X-Forwarded-For/-Proto to trust (1 behind one HTTPS proxy).
    TRUSTED_PROXIES = 0
    # A quota place held this long without an answer goes back to the pool (places.py).
    PLACE_IDLE_MINUTES = 30


class TestConfig(Config):
    TESTING = True
    SECRET_KEY = "test-secret"
    WTF_CSRF_ENABLED = False
    RATELIMIT_ENABLED = False
