"""Repairing the ledger: settling what a dead sender left in flight, and re-queuing what a person retries.

Recovery finds the claims in flight, reads a claim's rows to ask the provider, and settles the batch
by its answer. ``comms retry`` puts uncertain or dead deliveries back to pending (a batch whole, an
exception into a pending batch of its lane) and ``comms retry --held`` releases held ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Engine, text, update
from sqlmodel import Session, col, select

from comms.store.dialect import stamped
from comms.store.ledger import HELD_UNTIL, claimed_batches, returned_sizes
from comms.store.tables import BatchRow, DeliveryRow, OccurrenceRow, RecipientRow

__all__ = [
    "attempt_outcome",
    "claimed_rows",
    "in_flight_claims",
    "release_held",
    "retry_deliveries",
    "settle_reconciled",
]


def in_flight_claims(engine: Engine) -> list[str]:
    """The claim tokens of batches in flight (through the partial claim index)."""
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT DISTINCT claim FROM delivery_batch WHERE claim IS NOT NULL AND state = 'in_flight'")
        ).all()
    return [str(row[0]) for row in rows]


def attempt_outcome(engine: Engine, claim: str) -> str | None:
    """The outcome of the attempt a claim made (``claimed`` means its request never left), if recorded."""
    with engine.connect() as connection:
        row = connection.execute(
            text("SELECT outcome FROM attempt WHERE claim = :claim ORDER BY id DESC LIMIT 1"), {"claim": claim}
        ).first()
    return str(row[0]) if row else None


def claimed_rows(session: Session, claim: str) -> list[DeliveryRow]:
    """The deliveries a claim holds, in id order."""
    batch_ids = [batch.id for batch in claimed_batches(session, claim)]
    if not batch_ids:
        return []
    return list(
        session.exec(
            select(DeliveryRow)
            .where(col(DeliveryRow.batch_id).in_(batch_ids), col(DeliveryRow.claim) == claim)
            .order_by(col(DeliveryRow.id))
        ).all()
    )


def settle_reconciled(
    session: Session, claim: str, verdict: str, *, provider_id: str | None, error: str, now: datetime
) -> None:
    """Settle a dead sender's batch by what the provider said: ``sent``, ``not_sent`` (pending), else uncertain."""
    for batch in claimed_batches(session, claim):
        batch.claim = None
        batch.updated_at = now
        if verdict == "sent":
            batch.state, batch.sent_at = "sent", now
            batch.provider_id = provider_id or batch.provider_id
        elif verdict == "not_sent":
            batch.state = "pending"
        else:
            batch.state, batch.last_error = "uncertain", error
        session.add(batch)


def retry_deliveries(engine: Engine, *, cutover_id: int, states: Sequence[str], now: datetime) -> int:
    """Put uncertain (or dead) deliveries back to pending, and their finished occurrences back to dispatching."""
    with Session(engine) as session:
        sizes = session.execute(
            update(BatchRow)
            .where(col(BatchRow.cutover_id) == cutover_id, col(BatchRow.state).in_(states))
            .values(state="pending", next_attempt_at=None, attempts=0, claim=None, updated_at=now)
            .returning(col(BatchRow.size))
        ).all()
        count = returned_sizes(sizes) + _requeue_exceptions(session, cutover_id, states, now=now)
        occurrence_ids = session.exec(
            select(BatchRow.occurrence_id)
            .where(BatchRow.cutover_id == cutover_id, BatchRow.state == "pending", col(BatchRow.size) > 0)
            .distinct()
        ).all()
        if occurrence_ids:
            session.execute(
                update(OccurrenceRow)
                .where(col(OccurrenceRow.id).in_(occurrence_ids), col(OccurrenceRow.state).in_(("done", "missed")))
                .values(state="dispatching", finished_at=None)
            )
        session.commit()
        return count


def _requeue_exceptions(session: Session, cutover_id: int, states: Sequence[str], *, now: datetime) -> int:
    """Exceptions in ``states`` follow a pending batch again: their own when it is pending, else a new one."""
    found = session.exec(
        select(RecipientRow, BatchRow)
        .join(BatchRow, col(BatchRow.id) == col(RecipientRow.batch_id))
        .where(col(BatchRow.cutover_id) == cutover_id, col(RecipientRow.state).in_(states))
        .order_by(col(RecipientRow.id))
    ).all()
    into: dict[int | None, BatchRow] = {}
    for recipient, batch in found:
        target = into.get(batch.id)
        if target is None:
            target = batch
            if batch.state != "pending":
                target = BatchRow(
                    cutover_id=batch.cutover_id,
                    occurrence_id=batch.occurrence_id,
                    content_id=batch.content_id,
                    audience=batch.audience,
                    channel=batch.channel,
                    updated_at=now,
                )
                session.add(target)
                session.flush()
            into[batch.id] = target
        assert target.id is not None
        recipient.batch_id, recipient.state, recipient.last_error, recipient.provider_id = target.id, None, None, None
        recipient.attempts, recipient.sent_at, recipient.updated_at = 0, None, now
        target.size += 1
        session.add(recipient)
        session.add(target)
    session.flush()
    return len(found)


_RELEASE_HELD = stamped(
    "UPDATE delivery_batch SET next_attempt_at = NULL, last_error = NULL, updated_at = :now "
    "WHERE cutover_id = :cutover AND state = 'pending' AND next_attempt_at >= :held RETURNING size",
    "now",
    "held",
)


def release_held(engine: Engine, *, cutover_id: int, now: datetime) -> int:
    """``comms retry --held``: held deliveries of the cutover are due again now."""
    with engine.begin() as connection:
        sizes = connection.execute(_RELEASE_HELD, {"now": now, "cutover": cutover_id, "held": HELD_UNTIL}).all()
    return returned_sizes(sizes)
