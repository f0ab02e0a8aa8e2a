"""Provider delivery events stored per delivery: the last event and its outcome, counts for status and report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BindParameter, Engine, bindparam, func, text
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
        deliveries = _deliveries_named(session, events)
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


def _deliveries_named(session: Session, events: Sequence[DeliveryEvent]) -> dict[str, DeliveryRow]:
    """The deliveries the events name, by key: through the row id sent beside the key (an id whose row has
    another key names nothing), else, for sends from before ids were sent, by the key within its lane."""
    found: dict[str, DeliveryRow] = {}
    ids = sorted({event.delivery_id for event in events if event.delivery_id is not None})
    for start in range(0, len(ids), _CHUNK):
        rows = session.exec(select(DeliveryRow).where(col(DeliveryRow.id).in_(ids[start : start + _CHUNK]))).all()
        found.update((row.idempotency_key, row) for row in rows)
    named = {event.delivery_key: event.delivery_id for event in events}
    found = {key: row for key, row in found.items() if named.get(key, row.id) == row.id}
    by_lane: dict[tuple[str, ...], list[str]] = {}
    for key in sorted(k for k in named if k not in found):
        parts = key.split("|")  # cutover|occurrence|audience|channel|address (the cutover's name may hold a |)
        if len(parts) >= 5:
            by_lane.setdefault(("|".join(parts[:-4]), *parts[-4:-1]), []).append(key)
    for (cutover_name, occurrence, audience, channel), keys in by_lane.items():
        for start in range(0, len(keys), _CHUNK):
            lane = {"cutover": cutover_name, "occurrence": occurrence, "audience": audience, "channel": channel}
            row_ids = session.connection().execute(_IN_LANE, {**lane, "keys": keys[start : start + _CHUNK]}).all()
            if row_ids:
                rows = session.exec(select(DeliveryRow).where(col(DeliveryRow.id).in_([i for (i,) in row_ids]))).all()
                found.update((row.idempotency_key, row) for row in rows)
    return found


_KEYS: BindParameter[list[str]] = bindparam("keys", expanding=True)
_IN_LANE = text(
    "SELECT r.id FROM cutover AS c JOIN occurrence AS o ON o.cutover_id = c.id "
    "JOIN delivery_batch AS b ON b.occurrence_id = o.id AND b.audience = :audience AND b.channel = :channel "
    "JOIN recipient AS r ON r.batch_id = b.id "
    "WHERE c.name = :cutover AND o.key = :occurrence AND r.idempotency_key IN :keys"
).bindparams(_KEYS)
"""Recipients of one lane by key: the lane's rows are read, as the key has no index (old sends only)."""


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
