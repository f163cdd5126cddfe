"""Engine and session handling: SQLAlchemy 2.0 with explicit sessions, one per request.

SQLite is the embedded default (WAL journal so readers never block the writer, a busy timeout so
concurrent writers wait instead of failing); PostgreSQL (postgresql+psycopg://) in production.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask, current_app, g
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            # The driver's own transaction handling would BEGIN lazily (deferred), so two writers could
            # both read a quota and then both fail to upgrade their lock; we BEGIN IMMEDIATE ourselves.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):
            # Long read-only work (a researcher's download) begins deferred: in WAL mode a reader then never
            # holds the writer lock, so participants' answers are not kept waiting behind an export.
            conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get("read_only") else "BEGIN IMMEDIATE")

        return engine
    # No pool_pre_ping: it would cost a round trip on every request. A connection the server dropped
    # (a restart) fails its one request with a 500, and SQLAlchemy then discards the whole pool; the
    # participant page resends an answer with the same response_id, so nothing is lost.
    return create_engine(url, pool_size=10, max_overflow=20)


def init_app(app: Flask) -> None:
    engine = make_engine(app.config["DATABASE_URL"])
    app.extensions["culturelab.engine"] = engine
    app.extensions["culturelab.sessionmaker"] = sessionmaker(engine, expire_on_commit=False)
    app.teardown_appcontext(_close_session)


def get_session() -> Session:
    """The request's session, opened on first use and closed when the request ends."""
    if "db_session" not in g:
        g.db_session = current_app.extensions["culturelab.sessionmaker"]()
    return g.db_session


def _close_session(_exc: BaseException | None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()


@contextmanager
def session_scope(app: Flask, *, read_only: bool = False) -> Iterator[Session]:
    """A session outside a request (CLI commands, tests): commit on success, roll back on error.
    ``read_only``: for work that only reads (on SQLite it then takes no write lock)."""
    engine = app.extensions["culturelab.engine"]
    if read_only:
        engine = engine.execution_options(read_only=True)
    session = app.extensions["culturelab.sessionmaker"](bind=engine)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
