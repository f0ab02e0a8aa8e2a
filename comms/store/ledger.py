"""The delivery ledger: write a message's recipients once, claim a batch, record its outcome.

The batch (``delivery_batch``, at most one request's recipients of one lane) is the unit of state: it is
claimed (``in_flight`` with a token naming its lease owner, attempts + 1, an attempt row ``claimed``) and
committed before its request leaves; the attempt is marked ``started`` just before the request goes, so a
crash tells batches that never left (back to pending) from those that may have (reconciled, else
uncertain). Its outcome is one row's update, found again by the token (``ix_batch_claim`` indexes only
batches in flight). Recipients (``recipient``) are written once and follow their batch; one whose fate
differs (an invalid or unsubscribed address, a covered copy) is an exception with a state of its own.
Readers see both through the ``delivery`` view. A claim smaller than its batch (after a 400 the lane is
re-sent in halves) moves the claimed recipients into a batch of their own. The hot paths are plain SQL
(``text()``, compiled once; the recipient insert goes through the driver); the rare ones use the ORM. On
PostgreSQL a claim locks its batch with ``FOR UPDATE SKIP LOCKED``, so several workers share a lane
without claiming a batch twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import Engine, or_, text, update
from sqlmodel import Session, col, select

from comms.store import pacing_slots
from comms.store.dialect import is_postgresql, stamped
from comms.store.tables import AttemptRow, BatchRow

__all__ = [
    "Claim",
    "ClaimedDelivery",
    "FailureOutcome",
    "HELD_PREFIX",
    "HELD_UNTIL",
    "Lane",
    "RetryDelay",
    "claim_batch",
    "hold_channel",
    "hold_channel_rows",
    "mark_started",
    "record_failure",
    "record_sent",
    "record_uncertain",
    "release_claim",
    "release_unsent",
    "claimed_batches",
    "returned_sizes",
    "split_back",
]


RetryDelay = Callable[[int, float | None], float]
"""Seconds until the next attempt after ``attempts`` failed ones, given the provider's Retry-After."""


@dataclass(frozen=True)
class Lane:
    """The deliveries of one occurrence to one audience on one channel: one rendered content."""

    occurrence_id: int
    audience: str
    channel: str
    content_id: int


class ClaimedDelivery(NamedTuple):
    """A claimed delivery, as the envelope needs it (a tuple: a claim makes a thousand of them per request)."""

    id: int
    recipient: str
    recipient_name: str | None
    idempotency_key: str
    channel: str
    audience: str


@dataclass(frozen=True)
class Claim:
    """A claimed batch: its token, its deliveries (in id order) and its attempt row."""

    token: str
    deliveries: list[ClaimedDelivery]
    attempt_id: int


@dataclass(frozen=True)
class FailureOutcome:
    """What a failed request did to its batch: how many recipients wait for a retry, how many are dead."""

    retrying: int
    dead: int


_CLAIM_SQL = """
UPDATE delivery_batch SET state = 'in_flight', claim = :token, attempts = attempts + 1, updated_at = :now
WHERE id = (
    SELECT id FROM delivery_batch
    WHERE occurrence_id = :occurrence_id AND audience = :audience AND channel = :channel
      AND content_id = :content_id AND state = 'pending'
      AND (next_attempt_at IS NULL OR next_attempt_at <= :now)
    ORDER BY next_attempt_at{nulls}, id LIMIT 1{lock}
)
RETURNING id, size
"""
_CLAIM = {
    "sqlite": stamped(_CLAIM_SQL.format(nulls="", lock=""), "now"),
    # Several workers share a lane: each locks the batch it claims and skips one another is claiming.
    "postgresql": stamped(_CLAIM_SQL.format(nulls=" NULLS FIRST", lock=" FOR UPDATE SKIP LOCKED"), "now"),
}
_CLAIMED_SQL = (
    "SELECT id, recipient, recipient_name, idempotency_key FROM recipient WHERE batch_id = {} AND state IS NULL "
    "ORDER BY id"
)
_CLAIMED_RECIPIENTS = {"sqlite": _CLAIMED_SQL.format("?"), "postgresql": _CLAIMED_SQL.format("%s")}
"""Through the driver: a thousand rows a claim, without SQLAlchemy's result rows in between."""
_EMPTIED = text("UPDATE delivery_batch SET state = 'empty', size = 0, claim = NULL WHERE id = :batch")
# A claim smaller than its batch: the claimed part becomes a batch of its own, the rest stays pending.
_SPLIT_OFF = text(
    "INSERT INTO delivery_batch (cutover_id, occurrence_id, content_id, audience, channel, state, size, attempts, "
    "next_attempt_at, claim, last_error, updated_at) "
    "SELECT cutover_id, occurrence_id, content_id, audience, channel, 'in_flight', :limit, attempts, "
    "next_attempt_at, claim, last_error, updated_at FROM delivery_batch WHERE id = :batch RETURNING id"
)
_REST = text(
    "UPDATE delivery_batch SET state = 'pending', claim = NULL, size = size - :limit, attempts = attempts - 1 "
    "WHERE id = :batch"
)
_MOVE = text(
    "UPDATE recipient SET batch_id = :new WHERE id IN "
    "(SELECT id FROM recipient WHERE batch_id = :batch AND state IS NULL ORDER BY id LIMIT :limit)"
)
_ATTEMPT = stamped(
    "INSERT INTO attempt (cutover_id, occurrence_id, channel, audience, recipients, started_at, outcome, claim) "
    "VALUES (:cutover_id, :occurrence_id, :channel, :audience, :recipients, :now, 'claimed', :token) RETURNING id",
    "now",
)


def claim_batch(engine: Engine, lane: Lane, *, cutover_id: int, limit: int, token: str, now: datetime) -> Claim | None:
    """Claim the lane's next ready batch (oldest retry first), at most ``limit`` of its recipients; None when none
    is ready."""
    where = {"occurrence_id": lane.occurrence_id, "audience": lane.audience, "channel": lane.channel}
    with engine.begin() as connection:
        while True:
            claimed = connection.execute(
                _CLAIM[connection.dialect.name], {"token": token, "now": now, "content_id": lane.content_id, **where}
            ).first()
            if claimed is None:
                return None
            batch_id, size = int(claimed[0]), int(claimed[1])
            if size > limit:
                split_id = int(connection.execute(_SPLIT_OFF, {"batch": batch_id, "limit": limit}).scalar_one())
                connection.execute(_REST, {"batch": batch_id, "limit": limit})
                connection.execute(_MOVE, {"new": split_id, "batch": batch_id, "limit": limit})
                batch_id = split_id
            returned = connection.exec_driver_sql(_CLAIMED_RECIPIENTS[connection.dialect.name], (batch_id,)).fetchall()
            if returned:
                break
            connection.execute(_EMPTIED, {"batch": batch_id})  # every recipient became an exception
        channel, audience = lane.channel, lane.audience
        deliveries = [
            ClaimedDelivery(id_, recipient, name, key, channel, audience) for id_, recipient, name, key in returned
        ]
        attempt_id = connection.execute(
            _ATTEMPT,
            {"cutover_id": cutover_id, "recipients": len(deliveries), "now": now, "token": token, **where},
        ).scalar_one()
    return Claim(token, deliveries, int(attempt_id))


_STARTED = stamped("UPDATE attempt SET outcome = 'started', started_at = :now WHERE id = :attempt_id", "now")


def mark_started(engine: Engine, claim: Claim, *, now: datetime) -> None:
    """The batch's request is about to leave: from now on a crash leaves it uncertain, not pending."""
    with engine.begin() as connection:
        connection.execute(_STARTED, {"now": now, "attempt_id": claim.attempt_id})


_SENT = stamped(
    "UPDATE delivery_batch SET state = 'sent', provider_id = :provider_id, sent_at = :now, claim = NULL, "
    "last_error = NULL, updated_at = :now WHERE claim = :token RETURNING size",
    "now",
)
_ATTEMPT_SENT = stamped(
    "UPDATE attempt SET outcome = 'sent', finished_at = :now, provider_id = :provider_id WHERE id = :attempt_id", "now"
)


def returned_sizes(rows: Sequence[Any]) -> int:
    """The recipients of the batches a ``RETURNING size`` statement touched."""
    return sum(int(row[0]) for row in rows)


def record_sent(session: Session, claim: Claim, *, provider_id: str | None, now: datetime) -> int:
    """Mark the claimed batch sent (inside the caller's transaction); return how many recipients it holds."""
    connection = session.connection()
    sizes = connection.execute(_SENT, {"provider_id": provider_id, "now": now, "token": claim.token}).all()
    connection.execute(_ATTEMPT_SENT, {"now": now, "provider_id": provider_id, "attempt_id": claim.attempt_id})
    return returned_sizes(sizes)


def claimed_batches(session: Session, claim: str) -> list[BatchRow]:
    """The batches a claim token holds (one, or none once settled)."""
    return list(session.exec(select(BatchRow).where(BatchRow.claim == claim)).all())


def record_failure(
    session: Session,
    claim: Claim,
    error: str,
    *,
    retry_after: float | None,
    permanent: bool,
    max_attempts: int,
    delay: RetryDelay,
    now: datetime,
) -> FailureOutcome:
    """Put the batch back to pending with its next attempt time, or dead; a Retry-After holds the channel."""
    batches = claimed_batches(session, claim.token)
    retrying = dead = 0
    for batch in batches:
        batch.claim = None
        batch.last_error = error[:2000]
        batch.updated_at = now
        if permanent or batch.attempts >= max_attempts:
            batch.state = "dead"
            dead += batch.size
        else:
            batch.state = "pending"
            batch.next_attempt_at = now + timedelta(seconds=delay(batch.attempts, retry_after))
            retrying += batch.size
        session.add(batch)
    session.flush()
    if retry_after and not permanent and batches:
        hold_channel(session, batches[0].channel, until=now + timedelta(seconds=retry_after))
    _finish_attempt(
        session, claim, "permanent" if permanent else "transient", now, error=error, retry_after=retry_after
    )
    return FailureOutcome(retrying=retrying, dead=dead)


def record_uncertain(session: Session, claim: Claim, error: str, *, now: datetime) -> None:
    """The request may have been delivered and nobody can tell: keep the batch out of automatic retries."""
    session.execute(
        update(BatchRow)
        .where(col(BatchRow.claim) == claim.token)
        .values(
            state="uncertain",
            claim=None,
            updated_at=now,
            last_error=f"no answer ({error}); re-send with 'comms retry --uncertain' if it did not arrive",
        )
    )
    _finish_attempt(session, claim, "uncertain", now, error=error)


def hold_channel(session: Session, channel: str, *, until: datetime) -> None:
    """The provider asked the whole account to wait: no pending send on ``channel`` goes before ``until``."""
    session.execute(
        update(BatchRow)
        .where(
            col(BatchRow.channel) == channel,
            col(BatchRow.state) == "pending",
            or_(col(BatchRow.next_attempt_at).is_(None), col(BatchRow.next_attempt_at) < until),
        )
        .values(next_attempt_at=until)
    )
    if is_postgresql(session.get_bind()):  # batches other workers claimed already wait too
        pacing_slots.hold_provider(session, channel, until=until)


def _finish_attempt(
    session: Session, claim: Claim, outcome: str, now: datetime, *, error: str, retry_after: float | None = None
) -> None:
    attempt = session.get(AttemptRow, claim.attempt_id)
    if attempt is not None:
        attempt.outcome, attempt.finished_at, attempt.error = outcome, now, error[:2000]
        attempt.retry_after = retry_after
        session.add(attempt)


def release_claim(engine: Engine, claim: Claim) -> None:
    """Undo a claim whose request never left (building it failed): the batch is pending as before."""
    with engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE delivery_batch SET state = 'pending', claim = NULL, attempts = attempts - 1 "
                "WHERE claim = :token"
            ),
            {"token": claim.token},
        )
        connection.execute(text("DELETE FROM attempt WHERE id = :attempt_id"), {"attempt_id": claim.attempt_id})


_BACK_TO_PENDING = stamped(
    "UPDATE delivery_batch SET state = 'pending', claim = NULL, "
    "attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, updated_at = :now WHERE claim = :claim "
    "RETURNING size",
    "now",
)
_ATTEMPT_UNSENT = stamped(
    "UPDATE attempt SET outcome = 'unsent', finished_at = :now WHERE claim = :claim AND outcome = 'claimed'", "now"
)


def release_unsent(engine: Engine, claim: str, *, now: datetime) -> int:
    """A dead sender claimed this batch but its request never left: pending again, attempt marked unsent."""
    with engine.begin() as connection:
        sizes = connection.execute(_BACK_TO_PENDING, {"now": now, "claim": claim}).all()
        connection.execute(_ATTEMPT_UNSENT, {"now": now, "claim": claim})
    return returned_sizes(sizes)


HELD_UNTIL = datetime(9999, 12, 31, tzinfo=UTC)
"""The next attempt time of deliveries held for a person to act (``comms retry --held`` releases them)."""
HELD_PREFIX = "held: "

_ATTEMPT_SPLIT = stamped(
    "UPDATE attempt SET outcome = 'split', finished_at = :now, error = :error WHERE id = :id", "now"
)


def split_back(engine: Engine, claim: Claim, error: str, *, now: datetime) -> int:
    """The provider refused the batch over some of its recipients: back to pending, to be re-sent in halves
    (a smaller claim splits the batch)."""
    with engine.begin() as connection:
        sizes = connection.execute(_BACK_TO_PENDING, {"now": now, "claim": claim.token}).all()
        connection.execute(_ATTEMPT_SPLIT, {"now": now, "error": error[:2000], "id": claim.attempt_id})
    return returned_sizes(sizes)


def hold_channel_rows(session: Session, claim: Claim, channel: str, error: str, *, now: datetime) -> int:
    """A channel-wide refusal (bad key, missing scope): this batch and every pending batch of the channel wait.

    They stay pending, with the reason and a next attempt time that never comes, until a person fixes
    the cause and runs ``comms retry --held``. Returns how many recipients are held.
    """
    reason = (HELD_PREFIX + error)[:2000]
    held = session.execute(
        update(BatchRow)
        .where(col(BatchRow.claim) == claim.token)
        .values(
            state="pending",
            claim=None,
            attempts=BatchRow.attempts - 1,
            last_error=reason,
            updated_at=now,
            next_attempt_at=HELD_UNTIL,
        )
        .returning(col(BatchRow.size))
    ).all()
    others = session.execute(
        update(BatchRow)
        .where(
            col(BatchRow.channel) == channel,
            col(BatchRow.state) == "pending",
            or_(col(BatchRow.next_attempt_at).is_(None), col(BatchRow.next_attempt_at) < HELD_UNTIL),
        )
        .values(last_error=reason, next_attempt_at=HELD_UNTIL, updated_at=now)
        .returning(col(BatchRow.size))
    ).all()
    _finish_attempt(session, claim, "held", now, error=error)
    return returned_sizes([*held, *others])
