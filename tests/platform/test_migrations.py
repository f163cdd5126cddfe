"""The Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import column, create_engine, insert, inspect, table, text

from culturelab.platform.migrate import alembic_config, is_current, upgrade
from culturelab.platform.models import Base, Participant, Study


def test_models_and_migrations_agree(database_url):
    engine = create_engine(database_url)
    upgrade(engine)
    with engine.connect() as connection:
        diff = compare_metadata(
            MigrationContext.configure(connection, opts={"compare_type": True}), Base.metadata
        )
    engine.dispose()
    assert diff == [], f"models and migrations disagree; add a migration: {diff}"


def test_upgrade_is_idempotent_and_downgrade_removes_everything(database_url):
    engine = create_engine(database_url)
    assert not is_current(engine)
    upgrade(engine)
    upgrade(engine)
    assert is_current(engine)
    assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()


def test_migrations_ship_inside_the_package():
    from importlib.resources import files

    versions = files("culturelab.migrations") / "versions"
    assert any(p.name.endswith(".py") for p in versions.iterdir())


def _insert_study(connection, now: datetime) -> int:
    """A study row written with the columns studies had before 0006 (the model's insert names later ones)."""
    names = ("id", "slug", "spec", "spec_sha256", "created_at", "updated_at")
    return connection.execute(
        insert(table("studies", *(column(n, Study.__table__.c[n].type) for n in names)))
        .values(slug="s", spec={}, spec_sha256="x", created_at=now, updated_at=now)
        .returning(column("id"))
    ).scalar_one()


def test_revision_0005_moves_the_places_given_back_into_the_pool(database_url):
    """Before 0005 a timed-out participant kept the place on their row until it was taken; a participant who
    withdrew before completing kept theirs for good. Both come into the pool; completed and active ones stay."""
    engine = create_engine(database_url)
    upgrade(engine, "0004")
    now = datetime.now(UTC)
    with engine.begin() as connection:  # the participants' columns are the same at 0004
        study_id = _insert_study(connection, now)
        for n, (status, reason, completed) in enumerate([
            ("screened_out", "timed_out", None),  # given back, not taken yet
            ("withdrawn", "withdrew", None),  # withdrew before completing
            ("withdrawn", "withdrew", now),  # withdrew after completing: keeps the place
            ("started", None, None),
        ]):
            connection.execute(Participant.__table__.insert().values(
                study_id=study_id, token=f"p{n}", pseudonym=f"p{n}", source="link", recruitment={}, language="en",
                status=status, status_reason=reason, culture_group="g", seed=1, ordinal=n, started_at=now,
                completed_at=completed,
            ))
    upgrade(engine)
    with engine.connect() as connection:
        pool = connection.execute(text("SELECT culture_group, ordinal FROM free_places ORDER BY ordinal")).all()
        ordinals = connection.execute(text("SELECT ordinal FROM participants ORDER BY token")).scalars().all()
    engine.dispose()
    assert [tuple(row) for row in pool] == [("g", 0), ("g", 1)]
    assert ordinals == [None, None, 2, 3]


def test_revision_0006_leaves_every_existing_study_open(database_url):
    engine = create_engine(database_url)
    upgrade(engine, "0005")
    with engine.begin() as connection:
        _insert_study(connection, datetime.now(UTC))
    upgrade(engine)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT recruiting FROM studies")).scalars().all() == [True]
    engine.dispose()
