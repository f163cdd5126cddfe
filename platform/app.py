"""The application factory (Flask tutorial style): configuration, extensions, blueprints."""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from babel import Locale
from flask import Flask, request
from werkzeug.exceptions import HTTPException

from culturelab.platform import api, db, pages, researcher
from culturelab.platform.config import Config
from culturelab.platform.extensions import babel, csrf, limiter, login_manager, select_locale


def create_app(config: type[Config] | dict | None = None) -> Flask:
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_object(Config)
    app.config.from_prefixed_env("CULTURELAB")
    if isinstance(config, dict):
        app.config.update(config)
    elif config is not None:
        app.config.from_object(config)

    instance = Path(app.instance_path)
    instance.mkdir(parents=True, exist_ok=True)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _instance_secret(instance / "secret_key")
    if not app.config.get("DATABASE_URL"):
        app.config["DATABASE_URL"] = f"sqlite:///{instance / 'culturelab.sqlite3'}"
    data_dir = Path(app.config.get("DATA_DIR") or instance / "data")
    app.config["DATA_DIR"] = str(data_dir)
    app.config["MEDIA_DIR"] = str(data_dir / "media")
    logging.getLogger("culturelab").setLevel(logging.INFO)

    db.init_app(app)
    babel.init_app(app, locale_selector=select_locale)
    csrf.init_app(app)
    limiter.init_app(app)
    login_manager.init_app(app)
    app.jinja_env.filters["language_name"] = lambda tag: (
        Locale.parse(tag, sep="-").get_display_name().capitalize()
    )

    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(researcher.bp)
    csrf.exempt(api.bp)  # token in the path, no cookie: nothing for a cross-site request to ride on

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        return api.http_error(exc) if request.path.startswith("/api/") else exc

    return app


def _instance_secret(path: Path) -> str:
    """A secret generated once and shared by every worker process through the instance folder."""
    if not path.exists():
        tmp = path.with_suffix(f".{os.getpid()}")
        tmp.write_text(secrets.token_hex(32))
        tmp.chmod(0o600)
        tmp.replace(path)  # atomic: concurrent first starts agree on one of the candidates
    return path.read_text().strip()
