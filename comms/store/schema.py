"""The database schema and its Alembic migrations: check it on open, upgrade it on request.

``check`` runs whenever an engine is made: the schema revision in ``alembic_version`` must be this
code's ``HEAD``; an older one (or a database from before migrations) is refused with the command to run,
a newer one with a word to upgrade comms. A database with no tables yet is created at ``HEAD`` from the
table definitions on SQLite (the embedded default needs no setup, and the first run stays fast); on
PostgreSQL it waits for ``comms db upgrade``. Alembic itself is imported only by ``upgrade``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Engine, inspect, text
from sqlmodel import SQLModel

from comms.errors import SchemaMismatchError
from comms.store.errors import describe_database
from comms.store.tables import DELIVERY_VIEW

__all__ = ["BASELINE", "HEAD", "REVISIONS", "SchemaUpgrade", "check", "upgrade"]

log = logging.getLogger(__name__)

REVISIONS = (
    "0001_baseline",
    "0002_lease_and_attempt_claim",
    "0003_pacing",
    "0004_console_and_retired_reason",
    "0005_delivery_fallback_of",
    "0006_unsubscribe",
    "0007_lean_ledger",
)
"""Every migration, oldest first (``comms/store/migrations/versions``; a test checks the two agree)."""
BASELINE = REVISIONS[0]
HEAD = REVISIONS[-1]
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
UPGRADE_COMMAND = "comms db upgrade"


@dataclass(frozen=True)
class SchemaUpgrade:
    """What ``upgrade`` did: the revision before (None: no schema, or from before migrations) and after."""

    before: str | None
    after: str
    adopted: bool = False
    """The database came from before migrations and was stamped at the baseline first."""


def _revision(connection: Connection) -> tuple[bool, str | None]:
    """(whether comms tables exist, the recorded revision or None)."""
    inspector = inspect(connection)
    if not inspector.has_table("alembic_version"):
        return inspector.has_table("cutover"), None
    revision = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return True, None if revision is None else str(revision)


def check(engine: Engine) -> None:
    """Refuse a database whose schema is not this code's HEAD; create a new SQLite database at HEAD."""
    with engine.connect() as connection:
        has_tables, revision = _revision(connection)
    if revision == HEAD:
        return
    where = describe_database(engine.url)
    if not has_tables:
        if engine.dialect.name == "sqlite":
            _create_at_head(engine)
            return
        raise SchemaMismatchError(
            f"the database {where} has no comms tables yet: run '{UPGRADE_COMMAND}' to create them", database=where
        )
    if revision is None or revision in REVISIONS:
        found = f"schema {revision}" if revision else "a schema from before migrations"
        raise SchemaMismatchError(
            f"the database {where} has {found}, older than this comms ({HEAD}): run '{UPGRADE_COMMAND}'",
            database=where,
        )
    raise SchemaMismatchError(
        f"the database {where} has schema {revision}, newer than this comms knows ({HEAD}): "
        "upgrade comms to the release that wrote it",
        database=where,
    )


def _create_at_head(engine: Engine) -> None:
    """A new database: the tables as declared (what the migrations build) and the HEAD revision, at once."""
    with engine.begin() as connection:
        SQLModel.metadata.create_all(connection)
        connection.execute(text(DELIVERY_VIEW))
        connection.execute(
            text("CREATE TABLE IF NOT EXISTS alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)")
        )
        connection.execute(text("DELETE FROM alembic_version"))
        connection.execute(text("INSERT INTO alembic_version (version_num) VALUES (:head)"), {"head": HEAD})
    log.info("created a new database at schema %s", HEAD)


def upgrade(engine: Engine) -> SchemaUpgrade:
    """Run the migrations up to HEAD (a database from before migrations is stamped at the baseline first)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        has_tables, before = _revision(connection)
        if before is not None and before not in REVISIONS:
            where = describe_database(engine.url)
            raise SchemaMismatchError(
                f"the database {where} has schema {before}, newer than this comms knows ({HEAD}): upgrade comms",
                database=where,
            )
        config.attributes["connection"] = connection
        adopted = has_tables and before is None
        if adopted:
            command.stamp(config, BASELINE)
        command.upgrade(config, "head")
    return SchemaUpgrade(before=before if not adopted else None, after=HEAD, adopted=adopted)
