"""The audit trail as the store holds it: one record per delivery, streamed, and the content it sent.

The export is ONE SELECT read with ``yield_per``, so memory stays flat whatever the size of the
audience and the records are one consistent snapshot (SQLite gives a single statement a stable
view in WAL mode, while the worker keeps writing).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Engine
from sqlalchemy import select as sa_select
from sqlmodel import Session, col

from comms.store.reporting import as_utc
from comms.store.repository import find_cutover
from comms.store.tables import ContentRow, CutoverRow, DeliveryRow, OccurrenceRow, ProviderEventRow

__all__ = ["AuditRecord", "StoredContent", "iter_audit_records", "stored_content"]


class AuditRecord(NamedTuple):
    """One delivery with its occurrence and the hash of the content it was given."""

    delivery_id: int
    sent_at: datetime | None
    updated_at: datetime | None
    occurrence: str
    message: str
    audience: str
    channel: str
    recipient: str
    state: str
    attempts: int
    provider_id: str | None
    last_error: str | None
    content_sha256: str
    provider_event: str | None = None
    provider_event_at: datetime | None = None
    provider_outcome: str | None = None


@dataclass(frozen=True)
class StoredContent:
    """A delivery's audit record, the rendered content it sent (JSON) and its cutover's name."""

    record: AuditRecord
    body_json: str
    cutover: str


def _columns() -> tuple[Any, ...]:
    return (
        col(DeliveryRow.id),
        col(DeliveryRow.sent_at),
        col(DeliveryRow.updated_at),
        col(OccurrenceRow.key),
        col(OccurrenceRow.message),
        col(DeliveryRow.audience),
        col(DeliveryRow.channel),
        col(DeliveryRow.recipient),
        col(DeliveryRow.state),
        col(DeliveryRow.attempts),
        col(DeliveryRow.provider_id),
        col(DeliveryRow.last_error),
        col(ContentRow.sha256),
        col(ProviderEventRow.last_event),
        col(ProviderEventRow.last_event_at),
        col(ProviderEventRow.outcome),
    )


def _record(values: Sequence[Any]) -> AuditRecord:
    """A result row as a record: the id an int, every instant aware UTC."""
    record = AuditRecord(*values)
    return record._replace(
        delivery_id=int(record.delivery_id),
        sent_at=as_utc(record.sent_at),
        updated_at=as_utc(record.updated_at),
        provider_event_at=as_utc(record.provider_event_at),
    )


def iter_audit_records(engine: Engine, *, cutover_name: str | None, yield_per: int) -> Iterator[AuditRecord]:
    """Every delivery of the cutover in id order, read ``yield_per`` rows at a time (NotFoundError first)."""
    with Session(engine) as session:
        cutover = find_cutover(session, cutover_name)
        statement = (
            sa_select(*_columns())
            .join(OccurrenceRow, col(OccurrenceRow.id) == col(DeliveryRow.occurrence_id))
            .join(ContentRow, col(ContentRow.id) == col(DeliveryRow.content_id))
            .outerjoin(ProviderEventRow, col(ProviderEventRow.delivery_id) == col(DeliveryRow.id))
            .where(col(DeliveryRow.cutover_id) == cutover.id)
            .order_by(col(DeliveryRow.id))
            .execution_options(yield_per=yield_per)
        )
        for values in session.execute(statement):
            yield _record(values)


def stored_content(engine: Engine, delivery_id: int) -> StoredContent | None:
    """The audit record and stored content of one delivery, or None when there is no such delivery."""
    with Session(engine) as session:
        values = session.execute(
            sa_select(*_columns(), col(ContentRow.body_json), col(CutoverRow.name))
            .join(OccurrenceRow, col(OccurrenceRow.id) == col(DeliveryRow.occurrence_id))
            .join(ContentRow, col(ContentRow.id) == col(DeliveryRow.content_id))
            .join(CutoverRow, col(CutoverRow.id) == col(DeliveryRow.cutover_id))
            .outerjoin(ProviderEventRow, col(ProviderEventRow.delivery_id) == col(DeliveryRow.id))
            .where(col(DeliveryRow.id) == delivery_id)
        ).first()
    if values is None:
        return None
    *audit, body_json, cutover = values
    return StoredContent(_record(audit), body_json, cutover)
