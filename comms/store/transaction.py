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
from typing import TypeAlias

from sqlalchemy import Engine
from sqlmodel import Session

Transaction: TypeAlias = Session
"""An open transaction (the SQLModel session that the store functions take)."""


@contextmanager
def transaction(engine: Engine) -> Iterator[Transaction]:
    """Open a transaction on ``engine``; it is rolled back unless committed before the block ends."""
    with Session(engine) as session:
        yield session
