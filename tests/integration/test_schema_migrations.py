"""The schema and its migrations: checked on open, upgraded by 'comms db upgrade', on SQLite and PostgreSQL."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlmodel import SQLModel

from comms.errors import SchemaMismatchError
from comms.store import lease, schema
from comms.store.engine import make_engine, upgrade_database

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
PREVIOUS_RELEASE_DB = FIXTURES / "comms-dfa21ad.db"
"""A database the release at commit dfa21ad made: a cutover scheduled, the advance notice sent (16 rows)."""


def _previous_release_copy(tmp_path: Path) -> str:
    shutil.copy(PREVIOUS_RELEASE_DB, tmp_path / "old.db")
    return f"sqlite:///{tmp_path}/old.db"


def _differences(url: str) -> list[object]:
    engine = make_engine(url)
    with engine.connect() as connection:
        return list(compare_metadata(MigrationContext.configure(connection), SQLModel.metadata))


def test_the_revision_list_is_the_migration_chain() -> None:
    """schema.REVISIONS names the migrations in the versions folder, oldest first."""
    config = Config()
    config.set_main_option("script_location", str(schema.MIGRATIONS))
    chain = [script.revision for script in ScriptDirectory.from_config(config).walk_revisions()]
    assert tuple(reversed(chain)) == schema.REVISIONS


def test_migrations_build_the_declared_tables(database_url: str) -> None:
    """The migrations (PostgreSQL) and create-at-head (SQLite) both give exactly the declared schema."""
    assert _differences(database_url) == []


def test_a_previous_release_database_is_refused_naming_the_command(tmp_path: Path) -> None:
    """A database from before migrations is refused at open, and the message says what to run."""
    with pytest.raises(SchemaMismatchError, match="older than this comms .*run 'comms db upgrade'"):
        make_engine(_previous_release_copy(tmp_path))


def test_a_previous_release_database_upgrades_cleanly(tmp_path: Path) -> None:
    """'comms db upgrade' adopts the old database; its rows survive and it matches the declared schema."""
    url = _previous_release_copy(tmp_path)
    done = upgrade_database(url)
    assert done.adopted and done.after == schema.HEAD
    assert _differences(url) == []
    engine = make_engine(url)
    with engine.connect() as connection:
        states = dict(connection.execute(text("SELECT state, count(*) FROM delivery GROUP BY state")).all())
    assert states == {"sent": 16}
    assert lease.acquire(engine, "host:1:a", role="worker", now=lease._EPOCH, ttl=30) is not None


def test_upgrading_twice_changes_nothing(tmp_path: Path) -> None:
    """A second upgrade finds the database at HEAD already."""
    url = _previous_release_copy(tmp_path)
    upgrade_database(url)
    again = upgrade_database(url)
    assert (again.before, again.after, again.adopted) == (schema.HEAD, schema.HEAD, False)


def test_a_newer_schema_is_refused(database_url: str) -> None:
    """A schema revision this code does not know (a newer release wrote it) is refused, on open and on upgrade."""
    engine = make_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0099_from_the_future'"))
    with pytest.raises(SchemaMismatchError, match="newer than this comms"):
        make_engine(database_url)
    with pytest.raises(SchemaMismatchError, match="newer than this comms"):
        upgrade_database(database_url)


def test_an_empty_postgresql_database_waits_for_the_upgrade_command(postgres_server) -> None:  # type: ignore[no-untyped-def]
    """On PostgreSQL an empty database is refused with the command to run; after it, it opens."""
    name = postgres_server.new_database()
    url = postgres_server.url(name)
    try:
        with pytest.raises(SchemaMismatchError, match="no comms tables yet: run 'comms db upgrade'"):
            make_engine(url)
        assert upgrade_database(url).before is None
        assert _differences(url) == []
    finally:
        postgres_server.drop_database(name)


def test_a_new_sqlite_database_is_created_at_head(tmp_path: Path) -> None:
    """The embedded default needs no setup: a new SQLite file opens at the current schema."""
    engine = make_engine(f"sqlite:///{tmp_path}/new.db")
    with engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == schema.HEAD
