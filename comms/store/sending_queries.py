"""The reads and small writes the sender makes between batches: lanes, contents, ending what is pending.

Each function is one short transaction of its own, so the sender never holds the write lock across a
request and an operator's command never waits behind it for long.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine

from comms.store.types import sqlite_stamp

__all__ = [
    "QueuedOutcome",
    "content_json",
    "end_pending",
    "finish_if_done",
    "occurrence_state",
    "occurrences_with_pending",
    "outcome_of",
    "pending_lanes",
]

@dataclass(frozen=True)
class QueuedOutcome:
    """Where the rows of some occurrences stand: counts by state, requests made, and whether all is settled."""

    states: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    settled: bool = False
    """Every occurrence is written (or ended), nothing is in flight and nothing pending is ready now."""


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


def outcome_of(engine: Engine, occurrence_ids: Sequence[int], *, now: datetime) -> QueuedOutcome:
    """Counts by delivery state of the occurrences, their requests, and whether they are settled now."""
    if not occurrence_ids:
        return QueuedOutcome(settled=True)
    marks = ", ".join("?" for _ in occurrence_ids)
    ids = tuple(occurrence_ids)
    with engine.connect() as connection:
        states: dict[str, int] = dict(
            connection.exec_driver_sql(  # type: ignore[arg-type]
                f"SELECT state, count(*) FROM delivery WHERE occurrence_id IN ({marks}) GROUP BY state", ids
            ).all()
        )
        requests = connection.exec_driver_sql(
            f"SELECT count(*) FROM attempt WHERE occurrence_id IN ({marks})", ids
        ).scalar_one()
        unwritten = connection.exec_driver_sql(
            f"SELECT count(*) FROM occurrence WHERE id IN ({marks}) AND state IN ('pending', 'dispatching') "
            "AND materialized = 0",
            ids,
        ).scalar_one()
        ready = connection.exec_driver_sql(
            f"SELECT count(*) FROM delivery WHERE occurrence_id IN ({marks}) AND (state = 'in_flight' OR "
            "(state = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= ?)))",
            (*ids, sqlite_stamp(now)),
        ).scalar_one()
    counts = {str(state): int(count) for state, count in states.items()}
    return QueuedOutcome(counts, int(requests), settled=not unwritten and not ready)


def occurrences_with_pending(engine: Engine, cutover_id: int) -> list[int]:
    """Occurrences of the cutover that have pending deliveries (what a retry just queued)."""
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT DISTINCT occurrence_id FROM delivery WHERE cutover_id = ? AND state = 'pending' "
            "ORDER BY occurrence_id",
            (cutover_id,),
        ).all()
    return [int(row[0]) for row in rows]
