"""The reads and small writes the sender makes between batches: lanes, contents, ending what is pending.

Each function is one short transaction of its own, so the sender never holds the write lock across a
request and an operator's command never waits behind it for long.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine

from comms.store.types import sqlite_stamp

__all__ = ["content_json", "end_pending", "finish_if_done", "occurrence_state", "pending_lanes"]

_LANES = """
SELECT audience, channel, content_id, count(*) FROM delivery
WHERE occurrence_id = ? AND state = 'pending'
GROUP BY audience, channel, content_id
ORDER BY min(id)
"""


def pending_lanes(engine: Engine, occurrence_id: int) -> list[tuple[str, str, int, int]]:
    """(audience, channel, content id, pending count) of every lane of the occurrence with pending rows."""
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(_LANES, (occurrence_id,)).all()
    return [(str(a), str(c), int(i), int(n)) for a, c, i, n in rows]


def content_json(engine: Engine, content_id: int) -> str:
    """The stored JSON of one rendered content."""
    with engine.connect() as connection:
        row = connection.exec_driver_sql("SELECT body_json FROM content WHERE id = ?", (content_id,)).first()
    if row is None:
        raise LookupError(f"content {content_id} does not exist")
    return str(row[0])


def occurrence_state(engine: Engine, occurrence_id: int) -> str:
    """The occurrence's state as stored now (an event in another process may have changed it)."""
    with engine.connect() as connection:
        row = connection.exec_driver_sql("SELECT state FROM occurrence WHERE id = ?", (occurrence_id,)).first()
    return str(row[0]) if row else "cancelled"


def end_pending(engine: Engine, occurrence_id: int, *, state: str, reason: str, now: datetime) -> int:
    """Move the occurrence's pending deliveries to ``state`` (missed, cancelled) with why; return how many."""
    with engine.begin() as connection:
        result = connection.exec_driver_sql(
            "UPDATE delivery SET state = ?, last_error = ?, updated_at = ? WHERE occurrence_id = ? AND state = 'pending'",
            (state, reason, sqlite_stamp(now), occurrence_id),
        )
    return int(result.rowcount)


def finish_if_done(engine: Engine, occurrence_id: int, *, now: datetime) -> bool:
    """Mark a dispatching occurrence done once it is fully written and no row is pending or in flight."""
    with engine.begin() as connection:
        result = connection.exec_driver_sql(
            "UPDATE occurrence SET state = 'done', finished_at = ? "
            "WHERE id = ? AND state = 'dispatching' AND materialized = 1 AND NOT EXISTS ("
            "SELECT 1 FROM delivery WHERE occurrence_id = ? AND state IN ('pending', 'in_flight'))",
            (sqlite_stamp(now), occurrence_id, occurrence_id),
        )
    return bool(result.rowcount)
