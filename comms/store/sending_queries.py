"""The reads and small writes the sender makes between batches: lanes, contents, ending what is pending.

Each function is one short transaction of its own, so the sender never holds the write lock across a
request and an operator's command never waits behind it for long.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import BindParameter, Engine, bindparam, text

from comms.store.dialect import stamped

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


_LANES = text("""
SELECT audience, channel, content_id, sum(size) FROM delivery_batch
WHERE occurrence_id = :occurrence_id AND state = 'pending'
GROUP BY audience, channel, content_id
ORDER BY min(id)
""")


def pending_lanes(engine: Engine, occurrence_id: int) -> list[tuple[str, str, int, int]]:
    """(audience, channel, content id, pending count) of every lane of the occurrence with pending rows."""
    with engine.connect() as connection:
        rows = connection.execute(_LANES, {"occurrence_id": occurrence_id}).all()
    return [(str(a), str(c), int(i), int(n)) for a, c, i, n in rows]


def content_json(engine: Engine, content_id: int) -> str:
    """The stored JSON of one rendered content."""
    with engine.connect() as connection:
        row = connection.execute(text("SELECT body_json FROM content WHERE id = :id"), {"id": content_id}).first()
    if row is None:
        raise LookupError(f"content {content_id} does not exist")
    return str(row[0])


def occurrence_state(engine: Engine, occurrence_id: int) -> str:
    """The occurrence's state as stored now (an event in another process may have changed it)."""
    with engine.connect() as connection:
        row = connection.execute(text("SELECT state FROM occurrence WHERE id = :id"), {"id": occurrence_id}).first()
    return str(row[0]) if row else "cancelled"


_END_PENDING = stamped(
    "UPDATE delivery_batch SET state = :state, last_error = :reason, updated_at = :now "
    "WHERE occurrence_id = :occurrence_id AND state = 'pending' RETURNING size",
    "now",
)


def end_pending(engine: Engine, occurrence_id: int, *, state: str, reason: str, now: datetime) -> int:
    """Move the occurrence's pending deliveries to ``state`` (missed, cancelled) with why; return how many."""
    with engine.begin() as connection:
        sizes = connection.execute(
            _END_PENDING, {"state": state, "reason": reason, "now": now, "occurrence_id": occurrence_id}
        ).all()
    return sum(int(size) for (size,) in sizes)


# Batches in flight always carry a claim, so they are found through ix_batch_claim, which indexes only
# claimed batches (the unary plus keeps SQLite from walking the occurrence's every batch through ix_batch_lane).
_IN_FLIGHT_OF = (
    "SELECT {what} FROM delivery_batch WHERE claim IS NOT NULL AND state = 'in_flight' AND +occurrence_id {ids}"
)
_FINISH = stamped(
    "UPDATE occurrence SET state = 'done', finished_at = :now "
    "WHERE id = :id AND state = 'dispatching' AND materialized = TRUE "
    "AND NOT EXISTS (SELECT 1 FROM delivery_batch WHERE occurrence_id = :id AND state = 'pending' AND size > 0) "
    f"AND NOT EXISTS ({_IN_FLIGHT_OF.format(what='1', ids='= :id')})",
    "now",
)


def finish_if_done(engine: Engine, occurrence_id: int, *, now: datetime) -> bool:
    """Mark a dispatching occurrence done once it is fully written and no row is pending or in flight."""
    with engine.begin() as connection:
        result = connection.execute(_FINISH, {"now": now, "id": occurrence_id})
    return bool(result.rowcount)


_IDS: BindParameter[list[int]] = bindparam("ids", expanding=True)
# A batch's state counts for the recipients that follow it (its size), an exception's for itself.
_STATES = text(
    "SELECT state, sum(n) FROM ("
    "SELECT state, size AS n FROM delivery_batch WHERE occurrence_id IN :ids AND size > 0 "
    "UNION ALL SELECT r.state, 1 FROM delivery_batch AS b JOIN recipient AS r ON r.batch_id = b.id "
    "AND r.state IS NOT NULL WHERE b.occurrence_id IN :ids"
    ") AS counted GROUP BY state"
).bindparams(_IDS)
_REQUESTS = text("SELECT count(*) FROM attempt WHERE occurrence_id IN :ids").bindparams(_IDS)
_UNWRITTEN = text(
    "SELECT count(*) FROM occurrence WHERE id IN :ids AND state IN ('pending', 'dispatching') AND materialized = FALSE"
).bindparams(_IDS)
_READY = stamped(
    "SELECT (SELECT count(*) FROM delivery_batch WHERE occurrence_id IN :ids AND state = 'pending' AND size > 0 "
    "AND (next_attempt_at IS NULL OR next_attempt_at <= :now)) + "
    f"({_IN_FLIGHT_OF.format(what='count(*)', ids='IN :ids')})",
    "now",
).bindparams(_IDS)


def outcome_of(
    engine: Engine, occurrence_ids: Sequence[int], *, now: datetime, count_unsettled: bool = True
) -> QueuedOutcome:
    """Counts by delivery state of the occurrences, their requests, and whether they are settled now.

    Counting reads every row of the occurrences; a caller that polls until they settle passes
    ``count_unsettled=False`` and gets the counts only once they have (the check itself reads only open rows).
    """
    if not occurrence_ids:
        return QueuedOutcome(settled=True)
    ids = {"ids": list(occurrence_ids)}
    with engine.connect() as connection:
        unwritten = connection.execute(_UNWRITTEN, ids).scalar_one()
        ready = connection.execute(_READY, {**ids, "now": now}).scalar_one()
        settled = not unwritten and not ready
        if not settled and not count_unsettled:
            return QueuedOutcome(settled=False)
        states: dict[str, int] = dict(connection.execute(_STATES, ids).all())  # type: ignore[arg-type]
        requests = connection.execute(_REQUESTS, ids).scalar_one()
    counts = {str(state): int(count) for state, count in states.items()}
    return QueuedOutcome(counts, int(requests), settled=settled)


def occurrences_with_pending(engine: Engine, cutover_id: int) -> list[int]:
    """Occurrences of the cutover that have pending deliveries (what a retry just queued)."""
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT DISTINCT occurrence_id FROM delivery_batch WHERE cutover_id = :cutover AND state = 'pending' "
                "AND size > 0 ORDER BY occurrence_id"
            ),
            {"cutover": cutover_id},
        ).all()
    return [int(row[0]) for row in rows]
