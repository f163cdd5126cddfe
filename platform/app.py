"""The application factory (Flask tutorial style): configuration, extensions, blueprints."""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from babel import Locale
from flask import Flask, abort, request
from sqlalchemy import make_url
from werkzeug.exceptions import HTTPException

from culturelab.platform import api, db, pages, reports, researcher, security, withdrawal
from culturelab.platform.config import Config
from culturelab.platform.extensions import babel, csrf, login_manager, select_locale


def instance_folder() -> Path:
    """The one instance folder, absolute: ``CULTURELAB_INSTANCE_PATH``, or ``./instance`` of the directory the
    command was started in. Resolved once, when the app is made, so that the database, the secret key and the
    images never depend on where a later call happens to look from (Flask's own default is the package
    folder, which a relative SQLite path would not agree with)."""
    return Path(os.environ.get("CULTURELAB_INSTANCE_PATH") or "instance").expanduser().resolve()


def create_app(config: type[Config] | dict | None = None, *, write_instance: bool = True) -> Flask:
    """``write_instance=False`` makes an app that writes nothing (``--help``, validation): the CLI then calls
    `prepare_instance` in the commands that need the folder and the secret key."""
    app = Flask(__name__, instance_path=str(instance_folder()))
    app.config.from_object(Config)
    app.config.from_prefixed_env("CULTURELAB")
    if isinstance(config, dict):
        app.config.update(config)
    elif config is not None:
        app.config.from_object(config)

    instance = Path(app.instance_path)
    app.config["DATABASE_URL"] = absolute_sqlite_url(
        app.config.get("DATABASE_URL") or f"sqlite:///{instance / 'culturelab.sqlite3'}"
    )
    data_dir = Path(app.config.get("DATA_DIR") or instance / "data").expanduser().resolve()
    app.config["DATA_DIR"] = str(data_dir)
    app.config["MEDIA_DIR"] = str(data_dir / "media")
    secret_file = instance / "secret_key"
    if not app.config.get("SECRET_KEY") and secret_file.exists():
        app.config["SECRET_KEY"] = secret_file.read_text().strip()
    if write_instance:
        prepare_instance(app)
    logging.getLogger("culturelab").setLevel(logging.INFO)

    db.init_app(app)
    babel.init_app(app, locale_selector=select_locale)
    csrf.init_app(app)
    login_manager.init_app(app)
    app.jinja_env.filters["language_name"] = lambda tag: (
        Locale.parse(tag, sep="-").get_display_name().capitalize()
    )

    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(researcher.bp)
    app.register_blueprint(reports.bp)
    app.register_blueprint(withdrawal.bp)
    security.init_app(app)  # cookie flags, security headers, server-side researcher sessions
    csrf.exempt(api.bp)  # token in the path, no cookie: nothing for a cross-site request to ride on

    @app.before_request
    def _refuse_nul():
        # A NUL character in a URL reaches no valid page or participant, and PostgreSQL cannot even compare it.
        if "\x00" in request.path or any("\x00" in v for v in request.args.values()):
            abort(404)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        return api.http_error(exc) if request.path.startswith("/api/") else exc

    return app


def prepare_instance(app: Flask) -> None:
    """Creates the instance folder and the secret key where the configuration leaves them to it."""
    instance = Path(app.instance_path)
    if app.config["DATABASE_URL"].startswith(f"sqlite:///{instance}") or app.config["DATA_DIR"].startswith(
        str(instance)
    ):
        instance.mkdir(parents=True, exist_ok=True)
    if not app.config.get("SECRET_KEY"):
        instance.mkdir(parents=True, exist_ok=True)
        app.config["SECRET_KEY"] = _instance_secret(instance / "secret_key")


def absolute_sqlite_url(url: str) -> str:
    """An SQLite URL with a relative file path, made absolute against the working directory now: SQLite would
    otherwise open a different file whenever a later process starts elsewhere."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return url
    return parsed.set(database=str(Path(parsed.database).expanduser().resolve())).render_as_string(
        hide_password=False
    )


def _instance_secret(path: Path) -> str:
    """A secret generated once and shared by every worker process through the instance folder."""
    if not path.exists():
        tmp = path.with_suffix(f".{os.getpid()}")
        tmp.write_text(secrets.token_hex(32))
        tmp.chmod(0o600)
        tmp.replace(path)  # atomic: concurrent first starts agree on one of the candidates
    return path.read_text().strip()
