"""Configuration objects (Flask docs' pattern): values come from CULTURELAB_* environment variables."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


class Config:
    """Production defaults. ``DATABASE_URL=None`` means an SQLite file in the instance folder."""

    DATABASE_URL: str | None = os.environ.get("CULTURELAB_DATABASE_URL")
    SECRET_KEY: str = os.environ.get("CULTURELAB_SECRET_KEY") or secrets.token_hex(32)
    DATA_DIR: str | None = os.environ.get("CULTURELAB_DATA_DIR")
    # Participant requests are small JSON bodies; anything bigger is refused with 413 before parsing.
    MAX_CONTENT_LENGTH: int = 64 * 1024
    BABEL_DEFAULT_LOCALE = "en"
    BABEL_TRANSLATION_DIRECTORIES = str(Path(__file__).parent / "translations")
    WTF_CSRF_TIME_LIMIT = None
    # Flask-Limiter: a store shared by all workers (e.g. redis://127.0.0.1:6379) in production.
    RATELIMIT_STORAGE_URI = os.environ.get("CULTURELAB_RATELIMIT_STORAGE", "memory://")
    RATELIMIT_ENABLED = os.environ.get("CULTURELAB_RATELIMIT_ENABLED", "1") != "0"
    RATELIMIT_HEADERS_ENABLED = True
    # New participants per client address; generous because a lab may seat a class behind one address.
    PARTICIPANT_CREATE_LIMIT = os.environ.get("CULTURELAB_PARTICIPANT_CREATE_LIMIT", "600/minute")
    LOGIN_LIMIT = "10/minute"


class TestConfig(Config):
    TESTING = True
    SECRET_KEY = "test-secret"
    WTF_CSRF_ENABLED = False
    RATELIMIT_ENABLED = False
