"""Fixtures for the platform: stimulus sets made on the fly, study files, and an app on each database."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from culturelab.platform.app import create_app
from culturelab.platform.config import TestConfig
from culturelab.platform.db import session_scope
from culturelab.platform.migrate import upgrade
from culturelab.platform.study import read_study
from culturelab.platform.study_load import load_study

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
