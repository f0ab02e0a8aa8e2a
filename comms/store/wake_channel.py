"""Waking workers at once on PostgreSQL: ``lease.wake`` also NOTIFYs, each worker LISTENs.

On SQLite the worker polls the lease's wake counter (``lease.wake_count``); on PostgreSQL a command's
wake reaches every worker as a notification the moment its transaction commits, with no polling query.
"""

from __future__ import annotations

import logging

from sqlalchemy import Engine

from comms.store.dialect import is_postgresql
from comms.store.lease import WAKE_CHANNEL

__all__ = ["CHANNEL", "WakeListener", "listener"]

log = logging.getLogger(__name__)

CHANNEL = WAKE_CHANNEL


class WakeListener:
    """A connection of its own LISTENing on ``CHANNEL``; ``wait`` returns True when a wake arrives."""

    def __init__(self, engine: Engine) -> None:
        raw = engine.raw_connection()
        self._connection = raw.driver_connection
        raw.detach()  # never back to the pool: it keeps listening
        self._raw = raw
        self._connection.autocommit = True  # type: ignore[union-attr]
        self._connection.execute(f"LISTEN {CHANNEL}")  # type: ignore[union-attr]

    def wait(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds for a wake; True if one came (several at once count as one)."""
        for _ in self._connection.notifies(timeout=timeout, stop_after=1):  # type: ignore[union-attr]
            return True
        return False

    def close(self) -> None:
        """Stop listening and close the connection."""
        self._raw.close()


def listener(engine: Engine) -> WakeListener | None:
    """A wake listener on PostgreSQL; None on SQLite (the worker polls the wake counter there)."""
    return WakeListener(engine) if is_postgresql(engine) else None
