"""The writes behind two delivery rules: one copy per person (``covered``), and a status page that moves forward.

Both run inside the materializing chunk's transaction (the caller commits), so the sender never
claims a row that is about to be covered.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import text
from sqlmodel import Session

from comms.store.dialect import stamped

__all__ = ["mark_covered", "statuspage_sent"]

_COVER = stamped(
    "UPDATE recipient SET state = 'covered', last_error = :reason, updated_at = :now "
    "WHERE idempotency_key = :key AND state IS NULL "
    "AND EXISTS (SELECT 1 FROM recipient AS winner WHERE winner.idempotency_key = :winner)",
    "now",
)


def mark_covered(session: Session, pairs: Sequence[tuple[str, str]], *, reason: str, now: datetime) -> None:
    """For each (row key, winner key): the just written row becomes ``covered`` (an exception to its pending
    batch; ``recipient_writes.count_batches`` then leaves it out) when the winner's row exists.

    Both lookups go through the UNIQUE idempotency key, so a chunk costs two index probes a row.
    """
    if not pairs:
        return
    session.connection().execute(
        _COVER, [{"reason": reason, "now": now, "key": key, "winner": winner} for key, winner in pairs]
    )


_SENT = text(
    "SELECT o.message, o.context_json FROM delivery AS d JOIN occurrence AS o ON o.id = d.occurrence_id "
    "WHERE d.cutover_id = :cutover AND d.channel = 'statuspage' AND d.state IN ('sent', 'uncertain', 'in_flight') "
    "AND o.incident_id IS NULL ORDER BY d.id"
)


def statuspage_sent(session: Session, cutover_id: int) -> list[tuple[str, str | None]]:
    """(message, context JSON) of every status-page send of the cutover's timeline that left (or may have)."""
    rows = session.connection().execute(_SENT, {"cutover": cutover_id}).all()
    return [(str(message), context) for message, context in rows]
