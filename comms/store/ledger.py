"""The delivery ledger: claim a batch of deliveries, record its outcome. One short transaction each.

A batch is claimed (``in_flight`` with a token naming its lease owner, attempts + 1, an attempt row
``claimed``) and committed before its request leaves; the attempt is marked ``started`` just before the
request goes, so a crash tells batches that never left (back to pending) from those that may have
(reconciled, else uncertain). Its outcome is committed right after, found again by the token
(``ix_delivery_claim`` indexes only rows in flight). The success and claim paths run once per request
at up to a million recipients, so they are plain SQL (``text()``, compiled once; the delivery insert goes
through the driver): at 1000 rows a batch the ORM cost more than SQLite itself. The failure paths are
rare and use the ORM. On PostgreSQL a claim locks its rows with ``FOR UPDATE SKIP LOCKED``, so several
workers share a lane without claiming a row twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from sqlalchemy import Engine, or_, text, update
from sqlmodel import Session, col, select

from comms.store import pacing_slots
from comms.store.dialect import insert_ignoring_duplicates, is_postgresql, stamped
from comms.store.tables import AttemptRow, ContentRow, DeliveryRow, OccurrenceRow

__all__ = [
    "Claim",
    "ClaimedDelivery",
    "DeliveryValues",
    "FailureOutcome",
    "HELD_PREFIX",
    "HELD_UNTIL",
    "Lane",
    "RetryDelay",
    "add_content",
    "attempt_outcome",
    "claim_batch",
    "claimed_rows",
    "find_content",
    "get_content",
    "hold_channel",
    "hold_channel_rows",
    "in_flight_claims",
    "insert_deliveries",
    "mark_started",
    "record_failure",
    "record_sent",
    "record_uncertain",
    "release_claim",
    "release_held",
    "release_unsent",
    "retry_deliveries",
    "settle_reconciled",
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
    """What a failed request did to its batch."""

    retrying: int
    dead: list[DeliveryRow]


_CLAIM_SQL = """
UPDATE delivery SET state = 'in_flight', claim = :token, attempts = attempts + 1, updated_at = :now
WHERE id IN (
    SELECT id FROM delivery
    WHERE occurrence_id = :occurrence_id AND audience = :audience AND channel = :channel
      AND content_id = :content_id AND state = 'pending'
      AND (next_attempt_at IS NULL OR next_attempt_at <= :now)
    ORDER BY next_attempt_at{nulls}, id LIMIT :limit{lock}
)
RETURNING id, recipient, recipient_name, idempotency_key
"""
_CLAIM = {
    "sqlite": stamped(_CLAIM_SQL.format(nulls="", lock=""), "now"),
    # Several workers share a lane: each locks the rows it claims and skips those another is claiming.
    "postgresql": stamped(_CLAIM_SQL.format(nulls=" NULLS FIRST", lock=" FOR UPDATE SKIP LOCKED"), "now"),
}

_ATTEMPT = stamped(
    "INSERT INTO attempt (cutover_id, occurrence_id, channel, audience, recipients, started_at, outcome, claim) "
    "VALUES (:cutover_id, :occurrence_id, :channel, :audience, :recipients, :now, 'claimed', :token) RETURNING id",
    "now",
)

_SENT = stamped(
    "UPDATE delivery SET state = 'sent', provider_id = :provider_id, sent_at = :now, claim = NULL, last_error = NULL, "
    "updated_at = :now WHERE claim = :token",
    "now",
)

_ATTEMPT_SENT = stamped(
    "UPDATE attempt SET outcome = 'sent', finished_at = :now, provider_id = :provider_id WHERE id = :attempt_id", "now"
)

_DELIVERY_COLUMNS = (
    "cutover_id, occurrence_id, content_id, audience, channel, updated_at, idempotency_key, recipient, "
    "recipient_name, state, last_error, attempts"
)
_INSERT_DELIVERIES = {
    "sqlite": f"INSERT OR IGNORE INTO delivery ({_DELIVERY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
    "postgresql": f"INSERT INTO delivery ({_DELIVERY_COLUMNS}) "
    "VALUES (%s, %s, %s, %s, %s, %s::timestamp, %s, %s, %s, %s, %s, 0) ON CONFLICT (idempotency_key) DO NOTHING",
}

DeliveryValues = tuple[int, int, int, str, str, str, str, str, str | None, str, str | None]
"""One delivery row to write: cutover, occurrence, content ids, audience, channel, updated_at (as
``sqlite_stamp`` gives it), idempotency key, recipient, recipient name, state, last error."""


def insert_deliveries(session: Session, rows: Sequence[DeliveryValues]) -> None:
    """Insert delivery rows in ``session``, skipping any whose idempotency key exists (a resumed materialization)."""
    if rows:
        connection = session.connection()
        connection.exec_driver_sql(_INSERT_DELIVERIES[connection.dialect.name], list(rows))


def find_content(session: Session, occurrence_id: int, audience: str, channel: str) -> ContentRow | None:
    """The content already rendered for this occurrence, audience and channel, if any."""
    return session.exec(
        select(ContentRow).where(
            ContentRow.occurrence_id == occurrence_id,
            ContentRow.audience == audience,
            ContentRow.channel == channel,
        )
    ).first()


def get_content(session: Session, content_id: int) -> ContentRow:
    """The content with id ``content_id`` (deliveries point at it, so it exists)."""
    row = session.get(ContentRow, content_id)
    assert row is not None, f"content {content_id} is gone though deliveries point at it"
    return row


def add_content(session: Session, row: ContentRow) -> ContentRow:
    """Store a rendered content unless another worker stored the same one first; return the stored row."""
    values = row.model_dump(exclude={"id"})
    session.execute(insert_ignoring_duplicates(session, ContentRow).values(**values))
    stored = find_content(session, row.occurrence_id, row.audience, row.channel)
    assert stored is not None
    return stored


def claim_batch(engine: Engine, lane: Lane, *, cutover_id: int, limit: int, token: str, now: datetime) -> Claim | None:
    """Claim up to ``limit`` ready deliveries of the lane (oldest retry first), or None when none is ready."""
    where = {"occurrence_id": lane.occurrence_id, "audience": lane.audience, "channel": lane.channel}
    with engine.begin() as connection:
        returned = connection.execute(
            _CLAIM[connection.dialect.name],
            {"token": token, "now": now, "limit": limit, "content_id": lane.content_id, **where},
        ).all()
        if not returned:
            return None
        channel, audience = lane.channel, lane.audience
        deliveries = sorted(  # by id: the id comes first in the tuple
            [ClaimedDelivery(id_, recipient, name, key, channel, audience) for id_, recipient, name, key in returned]
        )
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


def record_sent(session: Session, claim: Claim, *, provider_id: str | None, now: datetime) -> int:
    """Mark the claimed batch sent (inside the caller's transaction); return how many rows it marked."""
    connection = session.connection()
    result = connection.execute(_SENT, {"provider_id": provider_id, "now": now, "token": claim.token})
    connection.execute(_ATTEMPT_SENT, {"now": now, "provider_id": provider_id, "attempt_id": claim.attempt_id})
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
    _finish_attempt(
        session, claim, "permanent" if permanent else "transient", now, error=error, retry_after=retry_after
    )
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
            text("UPDATE delivery SET state = 'pending', claim = NULL, attempts = attempts - 1 WHERE claim = :token"),
            {"token": claim.token},
        )
        connection.execute(text("DELETE FROM attempt WHERE id = :attempt_id"), {"attempt_id": claim.attempt_id})


def in_flight_claims(engine: Engine) -> list[str]:
    """The distinct claim tokens of rows in flight (through the partial claim index)."""
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT DISTINCT claim FROM delivery WHERE claim IS NOT NULL AND state = 'in_flight'")
        ).all()
    return [str(row[0]) for row in rows]


def attempt_outcome(engine: Engine, claim: str) -> str | None:
    """The outcome of the attempt a claim made (``claimed`` means its request never left), if recorded."""
    with engine.connect() as connection:
        row = connection.execute(
            text("SELECT outcome FROM attempt WHERE claim = :claim ORDER BY id DESC LIMIT 1"), {"claim": claim}
        ).first()
    return str(row[0]) if row else None


_UNSENT = stamped(
    "UPDATE delivery SET state = 'pending', claim = NULL, "
    "attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, updated_at = :now WHERE claim = :claim",
    "now",
)
_ATTEMPT_UNSENT = stamped(
    "UPDATE attempt SET outcome = 'unsent', finished_at = :now WHERE claim = :claim AND outcome = 'claimed'", "now"
)


def release_unsent(engine: Engine, claim: str, *, now: datetime) -> int:
    """A dead sender claimed this batch but its request never left: pending again, attempt marked unsent."""
    with engine.begin() as connection:
        result = connection.execute(_UNSENT, {"now": now, "claim": claim})
        connection.execute(_ATTEMPT_UNSENT, {"now": now, "claim": claim})
    return int(result.rowcount)


def claimed_rows(session: Session, claim: str) -> list[DeliveryRow]:
    """The deliveries a claim holds, in id order."""
    return list(session.exec(select(DeliveryRow).where(DeliveryRow.claim == claim).order_by(col(DeliveryRow.id))).all())


def settle_reconciled(
    session: Session, rows: Sequence[DeliveryRow], verdict: str, *, provider_id: str | None, error: str, now: datetime
) -> None:
    """Settle a dead sender's batch by what the provider said: ``sent``, ``not_sent`` (pending), else uncertain."""
    for row in rows:
        row.claim = None
        row.updated_at = now
        if verdict == "sent":
            row.state, row.sent_at = "sent", now
            row.provider_id = provider_id or row.provider_id
        elif verdict == "not_sent":
            row.state = "pending"
        else:
            row.state, row.last_error = "uncertain", error
        session.add(row)


def retry_deliveries(engine: Engine, *, cutover_id: int, states: Sequence[str], now: datetime) -> int:
    """Put uncertain (or dead) deliveries back to pending, and their finished occurrences back to dispatching."""
    with Session(engine) as session:
        result = session.execute(
            update(DeliveryRow)
            .where(col(DeliveryRow.cutover_id) == cutover_id, col(DeliveryRow.state).in_(states))
            .values(state="pending", next_attempt_at=None, attempts=0, claim=None, updated_at=now)
        )
        occurrence_ids = session.exec(
            select(DeliveryRow.occurrence_id)
            .where(DeliveryRow.cutover_id == cutover_id, DeliveryRow.state == "pending")
            .distinct()
        ).all()
        if occurrence_ids:
            session.execute(
                update(OccurrenceRow)
                .where(col(OccurrenceRow.id).in_(occurrence_ids), col(OccurrenceRow.state).in_(("done", "missed")))
                .values(state="dispatching", finished_at=None)
            )
        session.commit()
        return int(result.rowcount)  # type: ignore[attr-defined]


HELD_UNTIL = datetime(9999, 12, 31, tzinfo=UTC)
"""The next attempt time of deliveries held for a person to act (``comms retry --held`` releases them)."""
HELD_PREFIX = "held: "


_SPLIT = stamped(
    "UPDATE delivery SET state = 'pending', claim = NULL, "
    "attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, updated_at = :now WHERE claim = :claim",
    "now",
)
_ATTEMPT_SPLIT = stamped(
    "UPDATE attempt SET outcome = 'split', finished_at = :now, error = :error WHERE id = :id", "now"
)
_RELEASE_HELD = stamped(
    "UPDATE delivery SET next_attempt_at = NULL, last_error = NULL, updated_at = :now "
    "WHERE cutover_id = :cutover AND state = 'pending' AND next_attempt_at >= :held",
    "now",
    "held",
)


def split_back(engine: Engine, claim: Claim, error: str, *, now: datetime) -> int:
    """The provider refused the batch over some of its recipients: all back to pending, to be re-sent in halves."""
    with engine.begin() as connection:
        result = connection.execute(_SPLIT, {"now": now, "claim": claim.token})
        connection.execute(_ATTEMPT_SPLIT, {"now": now, "error": error[:2000], "id": claim.attempt_id})
    return int(result.rowcount)


def hold_channel_rows(session: Session, claim: Claim, channel: str, error: str, *, now: datetime) -> int:
    """A channel-wide refusal (bad key, missing scope): this batch and every pending row of the channel wait.

    They stay pending, with the reason and a next attempt time that never comes, until a person fixes
    the cause and runs ``comms retry --held``. Returns how many rows are held.
    """
    reason = (HELD_PREFIX + error)[:2000]
    held = session.execute(
        update(DeliveryRow)
        .where(col(DeliveryRow.claim) == claim.token)
        .values(
            state="pending",
            claim=None,
            attempts=DeliveryRow.attempts - 1,
            last_error=reason,
            updated_at=now,
            next_attempt_at=HELD_UNTIL,
        )
    )
    others = session.execute(
        update(DeliveryRow)
        .where(
            col(DeliveryRow.channel) == channel,
            col(DeliveryRow.state) == "pending",
            or_(col(DeliveryRow.next_attempt_at).is_(None), col(DeliveryRow.next_attempt_at) < HELD_UNTIL),
        )
        .values(last_error=reason, next_attempt_at=HELD_UNTIL, updated_at=now)
    )
    _finish_attempt(session, claim, "held", now, error=error)
    return int(held.rowcount) + int(others.rowcount)  # type: ignore[attr-defined]


def release_held(engine: Engine, *, cutover_id: int, now: datetime) -> int:
    """``comms retry --held``: held deliveries of the cutover are due again now."""
    with engine.begin() as connection:
        result = connection.execute(_RELEASE_HELD, {"now": now, "cutover": cutover_id, "held": HELD_UNTIL})
    return int(result.rowcount)
