"""One unit of work: a database transaction that several store functions share.

A service that must do several things atomically (read a row, decide, write three more) opens
``with transaction(engine) as tx:``, passes ``tx`` to the store functions and ends with
``tx.commit()``; leaving the block without committing rolls everything back. Outside
``comms.store`` a ``Transaction`` is only handed to store functions, committed or rolled back:
the queries themselves are written here, in ``comms.store``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeAlias, TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel

__all__ = ["Transaction", "add_once", "open_transaction", "refresh", "save", "savepoint", "transaction"]

Transaction: TypeAlias = Session
"""An open transaction (the SQLModel session that the store functions take)."""

RowT = TypeVar("RowT", bound=SQLModel)


@contextmanager
def transaction(engine: Engine, *, keep_loaded: bool = False) -> Iterator[Transaction]:
    """Open a transaction on ``engine``; it is rolled back unless committed before the block ends.

    ``keep_loaded``: rows read in it keep their values after a commit (for a caller that goes on
    using them once the transaction is over) instead of being read again on their next use.
    """
    with Session(engine, expire_on_commit=not keep_loaded) as session:
        yield session


@contextmanager
def savepoint(tx: Transaction) -> Iterator[None]:
    """A part of ``tx`` that is undone alone if the block raises (SAVEPOINT); the rest of ``tx`` stays."""
    with tx.begin_nested():
        yield


def open_transaction(engine: Engine) -> Transaction:
    """A transaction that outlives one block (a materialization written chunk by chunk): the caller closes it."""
    return Session(engine)


def add_once(engine: Engine, row: SQLModel) -> bool:
    """Store ``row`` in a transaction of its own; False (and nothing stored) when its UNIQUE key is taken."""
    with Session(engine) as session:
        session.add(row)
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            return False
    return True


def save(tx: Transaction, *rows: SQLModel) -> None:
    """Write changed (or new) rows in ``tx``; they are stored when it commits."""
    tx.add_all(rows)


def refresh(tx: Transaction, row: RowT) -> RowT:
    """Read ``row`` again from the database in ``tx`` (another transaction may have changed it)."""
    tx.refresh(row)
    return row
