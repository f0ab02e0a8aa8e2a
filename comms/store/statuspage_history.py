"""What the status page has been sent so far (it only moves forward); one copy per person is decided as the
rows are written (``comms.delivery.materialize``)."""

from __future__ import annotations

from sqlalchemy import text
from sqlmodel import Session

__all__ = ["statuspage_sent"]

_SENT = text(
    "SELECT o.message, o.context_json FROM delivery AS d JOIN occurrence AS o ON o.id = d.occurrence_id "
    "WHERE d.cutover_id = :cutover AND d.channel = 'statuspage' AND d.state IN ('sent', 'uncertain', 'in_flight') "
    "AND o.incident_id IS NULL ORDER BY d.id"
)


def statuspage_sent(session: Session, cutover_id: int) -> list[tuple[str, str | None]]:
    """(message, context JSON) of every status-page send of the cutover's timeline that left (or may have)."""
    rows = session.connection().execute(_SENT, {"cutover": cutover_id}).all()
    return [(str(message), context) for message, context in rows]
