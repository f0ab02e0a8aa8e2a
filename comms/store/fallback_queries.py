"""The queries behind fallback deliveries: dead primaries without a stand-in, and writing the stand-ins."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, func, select

from comms.store.recipient_writes import LaneOf, RecipientValues, add_content, count_batches, write_recipients
from comms.store.tables import ContentRow, DeliveryRow, RecipientRow

__all__ = ["DeadPrimary", "add_fallback_deliveries", "audience_has_channel", "dead_primaries"]


@dataclass(frozen=True)
class DeadPrimary:
    """A delivery that died after being tried, on an audience's own channel."""

    id: int
    audience: str
    channel: str


def dead_primaries(session: Session, occurrence_id: int) -> list[DeadPrimary]:
    """The occurrence's dead deliveries that were tried (not refused before sending) and are no fallback themselves."""
    rows = session.exec(
        select(DeliveryRow.id, DeliveryRow.audience, DeliveryRow.channel)
        .where(
            DeliveryRow.occurrence_id == occurrence_id,
            DeliveryRow.state == "dead",
            col(DeliveryRow.attempts) > 0,
            col(DeliveryRow.fallback_of).is_(None),
        )
        .order_by(col(DeliveryRow.id))
    ).all()
    return [DeadPrimary(int(id_), audience, channel) for id_, audience, channel in rows if id_ is not None]


def audience_has_channel(session: Session, occurrence_id: int, audience: str, channel: str) -> bool:
    """Whether the occurrence already has deliveries to the audience on the channel (sent, planned or a fallback)."""
    found = session.exec(
        select(DeliveryRow.id).where(
            DeliveryRow.occurrence_id == occurrence_id, DeliveryRow.audience == audience, DeliveryRow.channel == channel
        )
    ).first()
    return found is not None


def add_fallback_deliveries(
    session: Session,
    *,
    cutover_id: int,
    occurrence_id: int,
    audience: str,
    channel: str,
    body_json: str,
    sha256: str,
    targets: Sequence[RecipientValues],
    batch_size: int,
    fallback_of: int,
    now: datetime,
) -> int:
    """Store the fallback's content and its recipients (key, address, name, exception state, problem) in pending
    batches; return how many were written (the caller commits)."""
    content = add_content(
        session,
        ContentRow(occurrence_id=occurrence_id, audience=audience, channel=channel, body_json=body_json, sha256=sha256),
    )
    assert content.id is not None
    lane = LaneOf(cutover_id, occurrence_id, content.id, audience, channel)
    batches = write_recipients(session, lane, targets, batch_size=batch_size, now=now, fallback_of=fallback_of)
    count_batches(session, batches)
    written = session.exec(
        select(func.count()).select_from(RecipientRow).where(col(RecipientRow.batch_id).in_(batches))
    )
    return int(written.one())
