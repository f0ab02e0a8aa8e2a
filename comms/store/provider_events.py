"""Provider delivery events stored per delivery: the last event and its outcome, counts for status and report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from comms.core.delivery_events import DeliveryEvent, DeliveryEventState, merge_event
from comms.store.tables import DeliveryRow, ProviderEventRow, ProviderEventTallyRow

__all__ = ["EventTally", "last_events", "outcome_counts", "record_delivery_events", "unknown_key_count"]

_CHUNK = 500


@dataclass(frozen=True)
class EventTally:
    """What one webhook batch did: events that changed a delivery, changed nothing, or named no delivery."""

    applied: int = 0
    unchanged: int = 0
    unknown: int = 0


def record_delivery_events(
    engine: Engine, events: Sequence[DeliveryEvent], *, provider: str, now: datetime
) -> EventTally:
    """Apply a batch of events in one transaction (idempotent: a repeated batch changes nothing)."""
    applied = unchanged = unknown = 0
    with Session(engine) as session:
        deliveries: dict[str, DeliveryRow] = {}
        keys = sorted({event.delivery_key for event in events})
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            rows = session.exec(select(DeliveryRow).where(col(DeliveryRow.idempotency_key).in_(chunk))).all()
            deliveries.update((row.idempotency_key, row) for row in rows)
        ids = [row.id for row in deliveries.values() if row.id is not None]
        stored: dict[int, ProviderEventRow] = {}
        for start in range(0, len(ids), _CHUNK):
            found = session.exec(
                select(ProviderEventRow).where(col(ProviderEventRow.delivery_id).in_(ids[start : start + _CHUNK]))
            ).all()
            stored.update((row.delivery_id, row) for row in found)
        for event in events:
            delivery = deliveries.get(event.delivery_key)
            if delivery is None or delivery.id is None:
                unknown += 1
                continue
            row = stored.get(delivery.id)
            current = DeliveryEventState(row.last_event, row.last_event_at, row.outcome, row.reason) if row else None
            merged = merge_event(current, event)
            if merged is None:
                unchanged += 1
                continue
            applied += 1
            if row is None:
                row = ProviderEventRow(
                    delivery_id=delivery.id,
                    cutover_id=delivery.cutover_id,
                    last_event=merged.last_event,
                    last_event_at=merged.last_event_at,
                    outcome=merged.outcome,
                    reason=merged.reason,
                    updated_at=now,
                )
                stored[delivery.id] = row
            else:
                row.last_event, row.last_event_at = merged.last_event, merged.last_event_at
                row.outcome, row.reason, row.updated_at = merged.outcome, merged.reason, now
            session.add(row)
        if unknown:
            tally = session.get(ProviderEventTallyRow, provider)
            if tally is None:
                tally = ProviderEventTallyRow(provider=provider, unknown_keys=0, updated_at=now)
            tally.unknown_keys += unknown
            tally.updated_at = now
            session.add(tally)
        session.commit()
    return EventTally(applied, unchanged, unknown)


def outcome_counts(session: Session, cutover_id: int) -> dict[str, dict[str, int]]:
    """Per audience, how many deliveries of the cutover have each provider outcome."""
    rows = session.exec(
        select(DeliveryRow.audience, ProviderEventRow.outcome, func.count())
        .join(DeliveryRow, col(DeliveryRow.id) == col(ProviderEventRow.delivery_id))
        .where(ProviderEventRow.cutover_id == cutover_id)
        .group_by(col(DeliveryRow.audience), col(ProviderEventRow.outcome))
    ).all()
    result: dict[str, dict[str, int]] = {}
    for audience, outcome, count in rows:
        result.setdefault(str(audience), {})[str(outcome)] = int(count)
    return result


def unknown_key_count(session: Session, provider: str) -> int:
    """How many events of ``provider`` named no known delivery."""
    tally = session.get(ProviderEventTallyRow, provider)
    return tally.unknown_keys if tally else 0


def last_events(session: Session, delivery_ids: Sequence[int]) -> dict[int, ProviderEventRow]:
    """The stored provider event of each of these deliveries (those that have one)."""
    result: dict[int, ProviderEventRow] = {}
    for start in range(0, len(delivery_ids), _CHUNK):
        rows = session.exec(
            select(ProviderEventRow).where(col(ProviderEventRow.delivery_id).in_(delivery_ids[start : start + _CHUNK]))
        ).all()
        result.update((row.delivery_id, row) for row in rows)
    return result
