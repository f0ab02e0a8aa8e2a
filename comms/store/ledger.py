"""The delivery ledger: claim a batch of deliveries, record its outcome. One short transaction each.

A batch is claimed (``in_flight`` with a token naming its lease owner, attempts + 1, an attempt row
``claimed``) and committed before its request leaves; the attempt is marked ``started`` just before the
request goes, so a crash tells batches that never left (back to pending) from those that may have
(reconciled, else uncertain). Its outcome is committed right after, found again by the token
(``ix_delivery_claim`` indexes only rows in flight). The success and claim paths run once per request
at up to a million recipients, so they are plain SQL through the driver: at 1000 rows a batch the ORM
cost more than SQLite itself. The failure paths are rare and use the ORM.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, or_, update
from sqlmodel import Session, col, select

from comms.store.tables import AttemptRow, DeliveryRow
from comms.store.types import sqlite_stamp

RetryDelay = Callable[[int, float | None], float]
"""Seconds until the next attempt after ``attempts`` failed ones, given the provider's Retry-After."""


@dataclass(frozen=True)
class Lane:
    """The deliveries of one occurrence to one audience on one channel: one rendered content."""

    occurrence_id: int
    audience: str
    channel: str
    content_id: int


@dataclass(frozen=True)
class ClaimedDelivery:
    """A claimed delivery, as the envelope needs it."""

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
    """What a failed request did to its batch."""

    retrying: int
    dead: list[DeliveryRow]


_CLAIM = """
UPDATE delivery SET state = 'in_flight', claim = ?, attempts = attempts + 1, updated_at = ?
WHERE id IN (
    SELECT id FROM delivery
    WHERE occurrence_id = ? AND audience = ? AND channel = ? AND content_id = ? AND state = 'pending'
      AND (next_attempt_at IS NULL OR next_attempt_at <= ?)
    ORDER BY next_attempt_at, id LIMIT ?
)
RETURNING id, recipient, recipient_name, idempotency_key
"""

_ATTEMPT = """
INSERT INTO attempt (cutover_id, occurrence_id, channel, audience, recipients, started_at, outcome, claim)
VALUES (?, ?, ?, ?, ?, ?, 'claimed', ?)
"""

_SENT = """
UPDATE delivery SET state = 'sent', provider_id = ?, sent_at = ?, claim = NULL, last_error = NULL, updated_at = ?
WHERE claim = ?
"""

_ATTEMPT_SENT = "UPDATE attempt SET outcome = 'sent', finished_at = ?, provider_id = ? WHERE id = ?"


def claim_batch(engine: Engine, lane: Lane, *, cutover_id: int, limit: int, token: str, now: datetime) -> Claim | None:
    """Claim up to ``limit`` ready deliveries of the lane (oldest retry first), or None when none is ready."""
    stamp = sqlite_stamp(now)
    with engine.begin() as connection:
        returned = connection.exec_driver_sql(
            _CLAIM,
            (token, stamp, lane.occurrence_id, lane.audience, lane.channel, lane.content_id, stamp, limit),
        ).all()
        if not returned:
            return None
        deliveries = sorted(
            (ClaimedDelivery(row[0], row[1], row[2], row[3], lane.channel, lane.audience) for row in returned),
            key=lambda delivery: delivery.id,
        )
        attempt = connection.exec_driver_sql(
            _ATTEMPT, (cutover_id, lane.occurrence_id, lane.channel, lane.audience, len(deliveries), stamp, token)
        )
        attempt_id = attempt.lastrowid
    assert attempt_id is not None
    return Claim(token, deliveries, attempt_id)


def mark_started(engine: Engine, claim: Claim, *, now: datetime) -> None:
    """The batch's request is about to leave: from now on a crash leaves it uncertain, not pending."""
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "UPDATE attempt SET outcome = 'started', started_at = ? WHERE id = ?", (sqlite_stamp(now), claim.attempt_id)
        )


def record_sent(connection: Connection, claim: Claim, *, provider_id: str | None, now: datetime) -> int:
    """Mark the claimed batch sent (inside the caller's transaction); return how many rows it marked."""
    stamp = sqlite_stamp(now)
    result = connection.exec_driver_sql(_SENT, (provider_id, stamp, stamp, claim.token))
    connection.exec_driver_sql(_ATTEMPT_SENT, (stamp, provider_id, claim.attempt_id))
    return int(result.rowcount)


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
    rows = session.exec(select(DeliveryRow).where(DeliveryRow.claim == claim.token)).all()
    dead: list[DeliveryRow] = []
    for row in rows:
        row.claim = None
        row.last_error = error[:2000]
        row.updated_at = now
        if permanent or row.attempts >= max_attempts:
            row.state = "dead"
            dead.append(row)
        else:
            row.state = "pending"
            row.next_attempt_at = now + timedelta(seconds=delay(row.attempts, retry_after))
        session.add(row)
    if retry_after and not permanent and rows:
        hold_channel(session, rows[0].channel, until=now + timedelta(seconds=retry_after))
    _finish_attempt(session, claim, "permanent" if permanent else "transient", now, error=error, retry_after=retry_after)
    return FailureOutcome(retrying=len(rows) - len(dead), dead=dead)


def record_uncertain(session: Session, claim: Claim, error: str, *, now: datetime) -> None:
    """The request may have been delivered and nobody can tell: keep the batch out of automatic retries."""
    session.execute(
        update(DeliveryRow)
        .where(col(DeliveryRow.claim) == claim.token)
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
        update(DeliveryRow)
        .where(
            col(DeliveryRow.channel) == channel,
            col(DeliveryRow.state) == "pending",
            or_(col(DeliveryRow.next_attempt_at).is_(None), col(DeliveryRow.next_attempt_at) < until),
        )
        .values(next_attempt_at=until)
    )


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
        connection.exec_driver_sql(
            "UPDATE delivery SET state = 'pending', claim = NULL, attempts = attempts - 1 WHERE claim = ?",
            (claim.token,),
        )
        connection.exec_driver_sql("DELETE FROM attempt WHERE id = ?", (claim.attempt_id,))


def in_flight_claims(engine: Engine) -> list[str]:
    """The distinct claim tokens of rows in flight (through the partial claim index)."""
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT DISTINCT claim FROM delivery WHERE claim IS NOT NULL AND state = 'in_flight'"
        ).all()
    return [str(row[0]) for row in rows]


def attempt_outcome(engine: Engine, claim: str) -> str | None:
    """The outcome of the attempt a claim made (``claimed`` means its request never left), if recorded."""
    with engine.connect() as connection:
        row = connection.exec_driver_sql(
            "SELECT outcome FROM attempt WHERE claim = ? ORDER BY id DESC LIMIT 1", (claim,)
        ).first()
    return str(row[0]) if row else None


def release_unsent(engine: Engine, claim: str, *, now: datetime) -> int:
    """A dead sender claimed this batch but its request never left: pending again, attempt marked unsent."""
    stamp = sqlite_stamp(now)
    with engine.begin() as connection:
        result = connection.exec_driver_sql(
            "UPDATE delivery SET state = 'pending', claim = NULL, attempts = max(attempts - 1, 0), updated_at = ? "
            "WHERE claim = ?",
            (stamp, claim),
        )
        connection.exec_driver_sql(
            "UPDATE attempt SET outcome = 'unsent', finished_at = ? WHERE claim = ? AND outcome = 'claimed'",
            (stamp, claim),
        )
    return int(result.rowcount)
