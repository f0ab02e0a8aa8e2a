"""Writing a message into the ledger: its rendered contents, and its recipients once, in batches.

A chunk of recipients becomes batches of one request's size (``delivery_batch``, pending unless the
occurrence ended while it was written); each recipient is one ``recipient`` row, appended in id order
with no index over its key (the writer skips who is written already, ``lane_addresses``). Its
exceptions (invalid, unsubscribed, covered) carry their state; ``count_batches`` then sets how many
recipients follow each batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import BindParameter, bindparam, text
from sqlmodel import Session, select

from comms.store.dialect import insert_ignoring_duplicates, stamped
from comms.store.tables import ContentRow
from comms.store.types import sqlite_stamp

__all__ = [
    "LaneOf",
    "RecipientValues",
    "add_content",
    "count_batches",
    "find_content",
    "get_content",
    "lane_addresses",
    "write_recipients",
]


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
    "sqlite": f"INSERT INTO recipient ({_RECIPIENT_COLUMNS}, attempts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)",
    "postgresql": f"INSERT INTO recipient ({_RECIPIENT_COLUMNS}, attempts) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s::timestamp, %s, 0)",
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
    the batches' ids, then ``count_batches`` them. The caller leaves out who is written already
    (``lane_addresses``): nothing in the table refuses a repeat."""
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


_LANE_ADDRESSES = text(
    "SELECT r.recipient FROM delivery_batch AS b JOIN recipient AS r ON r.batch_id = b.id "
    "WHERE b.occurrence_id = :occurrence_id AND b.audience = :audience AND b.channel = :channel"
)


def lane_addresses(session: Session, occurrence_id: int, audience: str, channel: str) -> set[str]:
    """The addresses (lower case, as keys fold them) the lane already has: a resumed writer skips them."""
    rows = session.connection().execute(
        _LANE_ADDRESSES, {"occurrence_id": occurrence_id, "audience": audience, "channel": channel}
    )
    return {str(address).lower() for (address,) in rows}


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
