"""Fixtures for the platform: stimulus sets made on the fly, study files, and an app on each database."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text

from culturelab.platform.app import create_app
from culturelab.platform.cli import main
from culturelab.platform.config import TestConfig
from culturelab.platform.db import session_scope
from culturelab.platform.migrate import upgrade
from culturelab.platform.study import read_study
from culturelab.platform.study_load import load_study

from servers import free_port, wait_for
from studykit import CULTURES, make_stimulus_set, study_document, write_study  # noqa: F401 (re-exported)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.sqlite3'}"
        return
    base = request.getfixturevalue("postgres_url")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    yield f"{base}{sep}options=-csearch_path%3D{schema}"
    with admin.begin() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def app(database_url, tmp_path):
    app = create_app(
        {
            **{k: getattr(TestConfig, k) for k in dir(TestConfig) if k.isupper()},
            "DATABASE_URL": database_url,
            "DATA_DIR": str(tmp_path / "data"),
        }
    )
    upgrade(app.extensions["culturelab.engine"])
    yield app
    app.extensions["culturelab.engine"].dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def load(app, tmp_path):
    """Loads a study (overrides of the default document as keyword arguments); returns its slug."""

    def _load(**overrides) -> str:
        path = write_study(tmp_path, **overrides)
        with session_scope(app) as session:
            load_study(session, read_study(path), path.parent, Path(app.config["MEDIA_DIR"]))
        return study_document(**overrides)["slug"]

    return _load


@pytest.fixture
def live_server(database_url, tmp_path):
    """Starts `culturelab serve` (set up with the real CLI) on a study file; returns its base URL. Call it as
    ``live_server(workers=N, env={"CULTURELAB_…": …}, **study_overrides)`` (the limits per client address are
    off unless ``env`` turns them on)."""
    processes = []

    def start(workers: int = 2, env: dict[str, str] | None = None, **overrides) -> str:
        env = {
            **os.environ,
            "CULTURELAB_DATABASE_URL": database_url,
            "CULTURELAB_DATA_DIR": str(tmp_path / "data"),
            "CULTURELAB_SECRET_KEY": "live",
            "CULTURELAB_RATELIMIT_ENABLED": "0",
            **(env or {}),
        }
        study = write_study(tmp_path, **overrides)
        for args in (["db", "upgrade"], ["study", "load", str(study)]):
            subprocess.run([sys.executable, "-m", "culturelab.platform.cli", *args], env=env, check=True,
                           capture_output=True)
        port, log = free_port(), tmp_path / "server.log"
        with log.open("w") as out:
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "culturelab.platform.cli", "serve", "--port", str(port),
                 "--workers", str(workers)],
                env=env, stdout=out, stderr=subprocess.STDOUT,
            ))
        base = f"http://127.0.0.1:{port}"
        wait_for(base + "/", processes[-1], log)
        return base

    yield start
    for process in processes:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture
def run(database_url, tmp_path, monkeypatch):
    """The `culturelab` command on the test database, as a researcher types it (arguments as strings)."""
    monkeypatch.setenv("CULTURELAB_DATABASE_URL", database_url)
    monkeypatch.setenv("CULTURELAB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CULTURELAB_SECRET_KEY", "cli-test")

    def _run(*args, input=None):
        return CliRunner().invoke(main, [str(a) for a in args], input=input, catch_exceptions=False)

    return _run
