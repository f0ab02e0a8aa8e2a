"""Creating the SQLAlchemy engine: SQLite in WAL mode with foreign keys on, or PostgreSQL; schema checked.

The schema comes from the migrations (``comms.store.schema``): opening a database checks that its schema
is this code's, and creates a new SQLite database at the current schema.

The engine raises the StoreError family (comms.errors) for the database trouble a person can act on:
a ``handle_error`` listener translates the driver's errors on every connect, statement and commit.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import URL, Engine, event, make_url
from sqlalchemy.exc import ArgumentError
from sqlmodel import create_engine

import comms.store.incident_tables  # noqa: F401  (registers the incident and escalation tables)
from comms.store import (
    schema,
    tables,  # noqa: F401  (registers the tables on SQLModel.metadata)
)
from comms.store.errors import folder_error, translate_statement_error, url_error

OPERATOR_BUSY_TIMEOUT_S = 1.0
"""How long a CLI command waits for another process's write lock before saying the database is locked."""

WORKER_BUSY_TIMEOUT_S = 30.0
"""How long the worker waits: its writes record what a provider already accepted, so it must not give up early."""

__all__ = ["Engine", "make_engine", "upgrade_database"]
"""``Engine`` is re-exported so that code outside the store can name it without importing SQLAlchemy."""


def make_engine(url: str, *, busy_timeout: float = OPERATOR_BUSY_TIMEOUT_S, check_schema: bool = True) -> Engine:
    """Open (and create if needed) the database at ``url``; with ``check_schema`` refuse a schema not this code's.

    ``busy_timeout`` (seconds) bounds the wait for another connection's write lock on SQLite. SQLite's
    busy handler retries the lock throughout that time (after 1, 2, 5, 10, 15, 20, 25 ... 100 ms), so a
    lock released within it is taken; one still held at the end raises DatabaseLockedError.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise url_error(url, exc) from exc
    is_sqlite = parsed.get_backend_name() == "sqlite"
    if is_sqlite:
        _create_folder(parsed)
    try:
        engine = create_engine(parsed, connect_args={"timeout": busy_timeout} if is_sqlite else {})
    except (ArgumentError, ImportError) as exc:  # NoSuchModuleError (an unknown dialect) is an ArgumentError
        raise url_error(url, exc) from exc
    event.listen(engine, "handle_error", translate_statement_error)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    if check_schema:
        schema.check(engine)
    return engine


def _create_folder(url: URL) -> None:
    """Create the folder of a SQLite file (not of ``:memory:`` or a ``file:`` URI, which SQLite opens as given)."""
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return
    try:
        Path(database).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise folder_error(url, exc) from exc


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def upgrade_database(url: str) -> schema.SchemaUpgrade:
    """``comms db upgrade``: bring the database at ``url`` to this code's schema (create it if it is empty)."""
    engine = make_engine(url, check_schema=False)
    try:
        return schema.upgrade(engine)
    finally:
        engine.dispose()
