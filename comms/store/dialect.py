"""What differs between SQLite and PostgreSQL, in one place: typed statements and the few dialect turns.

Statements are ``text()`` with named parameters; a datetime parameter is bound through ``UTCDateTime``
(``stamped``), so both backends store the same naive UTC. PostgreSQL claims with ``FOR UPDATE SKIP
LOCKED`` (several workers share a lane) and sorts NULLs first as SQLite does.
"""

from __future__ import annotations

from sqlalchemy import Connection, Engine, Insert, TextClause, bindparam, text
from sqlmodel import Session, SQLModel

from comms.store.types import UTCDateTime

__all__ = ["insert_ignoring_duplicates", "is_postgresql", "stamped"]

_UTC = UTCDateTime()


def stamped(sql: str, *datetimes: str) -> TextClause:
    """``text(sql)`` whose parameters named in ``datetimes`` are bound as aware UTC datetimes."""
    return text(sql).bindparams(*(bindparam(name, type_=_UTC) for name in datetimes))


def is_postgresql(bind: Connection | Engine) -> bool:
    """Whether ``bind`` talks to PostgreSQL (else SQLite)."""
    return bind.dialect.name == "postgresql"


def insert_ignoring_duplicates(bind: Connection | Engine | Session, table: type[SQLModel]) -> Insert:
    """An INSERT into ``table`` that skips a row whose UNIQUE key is taken (SQLite OR IGNORE, PG ON CONFLICT)."""
    name = bind.get_bind().dialect.name if isinstance(bind, Session) else bind.dialect.name
    if name == "postgresql":  # imported here: a SQLite run never pays for the PostgreSQL dialect
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table).on_conflict_do_nothing()
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table).on_conflict_do_nothing()
