"""Creating the SQLAlchemy engine: SQLite in WAL mode with foreign keys on, tables created."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection, Engine, event, inspect
from sqlmodel import SQLModel, create_engine

import comms.store.incident_tables  # noqa: F401  (registers the incident and escalation tables)
from comms.store import tables  # noqa: F401  (registers the tables on SQLModel.metadata)

__all__ = ["Engine", "make_engine"]
"""``Engine`` is re-exported so that code outside the store can name it without importing SQLAlchemy."""


def make_engine(url: str) -> Engine:
    """Open (and create if needed) the database at ``url``."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url.removeprefix("sqlite:///")).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30} if url.startswith("sqlite") else {})
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    SQLModel.metadata.create_all(engine)
    with engine.begin() as connection:  # columns and indexes added since a database was created
        _add_missing_columns(connection)
        for table in SQLModel.metadata.sorted_tables:
            for index in table.indexes:
                index.create(connection, checkfirst=True)
    return engine


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _add_missing_columns(connection: Connection) -> None:
    """Add nullable columns that a newer release declares to tables an older one created."""
    inspector = inspect(connection)
    for table in SQLModel.metadata.sorted_tables:
        present = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in present and column.nullable:
                kind = column.type.compile(dialect=connection.dialect)
                connection.exec_driver_sql(f'ALTER TABLE "{table.name}" ADD COLUMN "{column.name}" {kind}')
