"""The Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from culturelab.platform.migrate import alembic_config, is_current, upgrade
from culturelab.platform.models import Base


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
