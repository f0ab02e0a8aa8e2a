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
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import BindParameter, Engine, bindparam, or_, text, update
from sqlmodel import Session, col, select

from comms.store import pacing_slots
from comms.store.dialect import insert_ignoring_duplicates, is_postgresql, stamped
from comms.store.tables import AttemptRow, BatchRow, ContentRow, DeliveryRow, OccurrenceRow, RecipientRow
from comms.store.types import sqlite_stamp

__all__ = [
    "Claim",
    "ClaimedDelivery",
    "FailureOutcome",
    "HELD_PREFIX",
    "HELD_UNTIL",
    "Lane",
    "LaneOf",
    "RecipientValues",
    "RetryDelay",
    "add_content",
    "attempt_outcome",
    "claim_batch",
    "claimed_rows",
    "count_batches",
    "find_content",
    "get_content",
    "hold_channel",
    "hold_channel_rows",
    "in_flight_claims",
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
    "write_recipients",
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


@dataclass(frozen=True)
class LaneOf:
    """Where new recipients go: one occurrence's rendered content for one audience on one channel."""

    cutover_id: int
    occurrence_id: int
    content_id: int
    audience: str
    channel: str


RecipientValues = tuple[str, str, str | None, str | None, str | None]
"""One recipient to write: idempotency key, address, name, and for an exception its state and why."""

_NEW_BATCH = stamped(
    "INSERT INTO delivery_batch (cutover_id, occurrence_id, content_id, audience, channel, state, size, attempts, "
    "last_error, updated_at) VALUES (:cutover_id, :occurrence_id, :content_id, :audience, :channel, :state, 0, 0, "
    ":reason, :now) RETURNING id",
    "now",
)
_RECIPIENT_COLUMNS = "batch_id, idempotency_key, recipient, recipient_name, state, last_error, updated_at, fallback_of"
_INSERT_RECIPIENTS = {
    "sqlite": f"INSERT OR IGNORE INTO recipient ({_RECIPIENT_COLUMNS}, attempts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)",
    "postgresql": f"INSERT INTO recipient ({_RECIPIENT_COLUMNS}, attempts) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s::timestamp, %s, 0) ON CONFLICT (idempotency_key) DO NOTHING",
}
_BATCH_IDS: BindParameter[list[int]] = bindparam("ids", expanding=True)
_SIZES = text(
    "UPDATE delivery_batch SET size = (SELECT count(*) FROM recipient "
    "WHERE recipient.batch_id = delivery_batch.id AND recipient.state IS NULL) WHERE id IN :ids"
).bindparams(_BATCH_IDS)
_EMPTY = text("UPDATE delivery_batch SET state = 'empty' WHERE id IN :ids AND size = 0").bindparams(_BATCH_IDS)
_PENDING_SIZE = text(
    "SELECT coalesce(sum(size), 0) FROM delivery_batch WHERE id IN :ids AND state = 'pending'"
).bindparams(_BATCH_IDS)


def write_recipients(
    session: Session,
    lane: LaneOf,
    recipients: Sequence[RecipientValues],
    *,
    batch_size: int,
    now: datetime,
    state: str = "pending",
    reason: str | None = None,
    fallback_of: int | None = None,
) -> list[int]:
    """Write recipients into new batches of ``batch_size`` (in ``state``, with ``reason``) in ``session``; return
    the batches' ids. A recipient whose key exists is skipped (a resumed materialization). Call
    ``count_batches`` once the chunk's exceptions are marked."""
    if not recipients:
        return []
    connection = session.connection()
    stamp = sqlite_stamp(now)
    values = {**asdict(lane), "state": state, "reason": reason, "now": now}
    batch_ids: list[int] = []
    rows: list[tuple[object, ...]] = []
    for start in range(0, len(recipients), batch_size):
        batch_id = int(connection.execute(_NEW_BATCH, values).scalar_one())
        batch_ids.append(batch_id)
        rows.extend(
            (batch_id, key, address, name, exception, error, stamp if exception else None, fallback_of)
            for key, address, name, exception, error in recipients[start : start + batch_size]
        )
    connection.exec_driver_sql(_INSERT_RECIPIENTS[connection.dialect.name], rows)
    return batch_ids


def count_batches(session: Session, batch_ids: Sequence[int]) -> int:
    """Count the recipients that follow each new batch (``empty`` when none does); return how many are pending."""
    if not batch_ids:
        return 0
    connection = session.connection()
    ids = {"ids": list(batch_ids)}
    connection.execute(_SIZES, ids)
    connection.execute(_EMPTY, ids)
    return int(connection.execute(_PENDING_SIZE, ids).scalar_one())


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
_CLAIMED_RECIPIENTS = text(
    "SELECT id, recipient, recipient_name, idempotency_key FROM recipient "
    "WHERE batch_id = :batch AND state IS NULL ORDER BY id"
)
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
            returned = connection.execute(_CLAIMED_RECIPIENTS, {"batch": batch_id}).all()
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


def _sizes(rows: Sequence[Any]) -> int:
    """The recipients of the batches a ``RETURNING size`` statement touched."""
    return sum(int(row[0]) for row in rows)


def record_sent(session: Session, claim: Claim, *, provider_id: str | None, now: datetime) -> int:
    """Mark the claimed batch sent (inside the caller's transaction); return how many recipients it holds."""
    connection = session.connection()
    sizes = connection.execute(_SENT, {"provider_id": provider_id, "now": now, "token": claim.token}).all()
    connection.execute(_ATTEMPT_SENT, {"now": now, "provider_id": provider_id, "attempt_id": claim.attempt_id})
    return _sizes(sizes)


def _claimed_batches(session: Session, claim: str) -> list[BatchRow]:
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
    batches = _claimed_batches(session, claim.token)
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
    return _sizes(sizes)


def claimed_rows(session: Session, claim: str) -> list[DeliveryRow]:
    """The deliveries a claim holds, in id order."""
    batch_ids = [batch.id for batch in _claimed_batches(session, claim)]
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
    for batch in _claimed_batches(session, claim):
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
        count = _sizes(sizes) + _requeue_exceptions(session, cutover_id, states, now=now)
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


HELD_UNTIL = datetime(9999, 12, 31, tzinfo=UTC)
"""The next attempt time of deliveries held for a person to act (``comms retry --held`` releases them)."""
HELD_PREFIX = "held: "

_ATTEMPT_SPLIT = stamped(
    "UPDATE attempt SET outcome = 'split', finished_at = :now, error = :error WHERE id = :id", "now"
)
_RELEASE_HELD = stamped(
    "UPDATE delivery_batch SET next_attempt_at = NULL, last_error = NULL, updated_at = :now "
    "WHERE cutover_id = :cutover AND state = 'pending' AND next_attempt_at >= :held RETURNING size",
    "now",
    "held",
)


def split_back(engine: Engine, claim: Claim, error: str, *, now: datetime) -> int:
    """The provider refused the batch over some of its recipients: back to pending, to be re-sent in halves
    (a smaller claim splits the batch)."""
    with engine.begin() as connection:
        sizes = connection.execute(_BACK_TO_PENDING, {"now": now, "claim": claim.token}).all()
        connection.execute(_ATTEMPT_SPLIT, {"now": now, "error": error[:2000], "id": claim.attempt_id})
    return _sizes(sizes)


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
    return _sizes([*held, *others])


def release_held(engine: Engine, *, cutover_id: int, now: datetime) -> int:
    """``comms retry --held``: held deliveries of the cutover are due again now."""
    with engine.begin() as connection:
        sizes = connection.execute(_RELEASE_HELD, {"now": now, "cutover": cutover_id, "held": HELD_UNTIL}).all()
    return _sizes(sizes)
