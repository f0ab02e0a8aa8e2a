"""The narrow set of queries the services use; nothing else in comms writes SQL."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from comms.errors import NotFoundError
from comms.store.tables import CutoverRow, DeliveryRow, EventRow, OccurrenceRow, ThreadRow

ACTIVE_OCCURRENCE_STATES = ("pending", "dispatching")
OPEN_DELIVERY_STATES = ("pending", "in_flight")


def find_cutover(session: Session, name: str | None) -> CutoverRow:
    """The cutover called ``name``, or the only one when ``name`` is None."""
    if name is not None:
        row = session.exec(select(CutoverRow).where(CutoverRow.name == name)).first()
        if row is None:
            raise NotFoundError(f"--cutover: no cutover named {name!r}; run 'comms schedule' first")
        return row
    rows = session.exec(select(CutoverRow).order_by(col(CutoverRow.id))).all()
    if not rows:
        raise NotFoundError("no cutover is scheduled yet; run 'comms schedule --start T' first")
    if len(rows) > 1:
        names = ", ".join(r.name for r in rows)
        raise NotFoundError(f"several cutovers exist ({names}); choose one with --cutover NAME")
    return rows[0]


def get_cutover_by_name(session: Session, name: str) -> CutoverRow | None:
    """The cutover called ``name`` or None."""
    return session.exec(select(CutoverRow).where(CutoverRow.name == name)).first()


def list_cutovers(session: Session) -> Sequence[CutoverRow]:
    """Every cutover, oldest first."""
    return session.exec(select(CutoverRow).order_by(col(CutoverRow.id))).all()


def occurrences(session: Session, cutover_id: int) -> Sequence[OccurrenceRow]:
    """All occurrences of a cutover in due order (triggered ones by creation)."""
    statement = (
        select(OccurrenceRow)
        .where(OccurrenceRow.cutover_id == cutover_id)
        .order_by(col(OccurrenceRow.due_at), col(OccurrenceRow.id))
    )
    return session.exec(statement).all()


def due_occurrences(session: Session, now: datetime) -> Sequence[OccurrenceRow]:
    """Occurrences that are due (or being dispatched) at ``now``, across cutovers."""
    statement = (
        select(OccurrenceRow)
        .where(col(OccurrenceRow.state).in_(ACTIVE_OCCURRENCE_STATES))
        .where(col(OccurrenceRow.due_at) <= now)
        .order_by(col(OccurrenceRow.due_at), col(OccurrenceRow.id))
    )
    return session.exec(statement).all()


def next_due_at(session: Session) -> datetime | None:
    """The earliest due time of a pending occurrence, or of a delivery waiting for its retry."""
    occurrence_due = session.exec(select(func.min(OccurrenceRow.due_at)).where(OccurrenceRow.state == "pending")).one()
    ready_now = session.exec(
        select(func.min(OccurrenceRow.due_at))
        .join(DeliveryRow, col(DeliveryRow.occurrence_id) == OccurrenceRow.id)
        .where(DeliveryRow.state == "pending", col(DeliveryRow.next_attempt_at).is_(None))
    ).one()
    retry_due = session.exec(select(func.min(DeliveryRow.next_attempt_at)).where(DeliveryRow.state == "pending")).one()
    candidates = [value for value in (occurrence_due, ready_now, retry_due) if value is not None]
    return min(candidates) if candidates else None


def next_future_due_at(session: Session, now: datetime) -> datetime | None:
    """The earliest instant after ``now`` at which an occurrence or a retry becomes due."""
    occurrence_due = session.exec(
        select(func.min(OccurrenceRow.due_at)).where(OccurrenceRow.state == "pending", col(OccurrenceRow.due_at) > now)
    ).one()
    retry_due = session.exec(
        select(func.min(DeliveryRow.next_attempt_at)).where(
            DeliveryRow.state == "pending", col(DeliveryRow.next_attempt_at) > now
        )
    ).one()
    candidates = [value for value in (occurrence_due, retry_due) if value is not None]
    return min(candidates) if candidates else None


def record_event(session: Session, *, cutover_id: int, kind: str, payload_json: str, at: datetime) -> EventRow:
    """Append an event row."""
    row = EventRow(cutover_id=cutover_id, kind=kind, payload_json=payload_json, created_at=at)
    session.add(row)
    session.flush()
    return row


def thread_ref(session: Session, *, cutover_id: int, channel: str, scope: str, target: str) -> str | None:
    """The stored provider reference (Slack thread root, status-page incident) or None."""
    row = session.exec(
        select(ThreadRow).where(
            ThreadRow.cutover_id == cutover_id,
            ThreadRow.channel == channel,
            ThreadRow.scope == scope,
            ThreadRow.target == target,
        )
    ).first()
    return row.ref if row else None


def remember_thread(session: Session, *, cutover_id: int, channel: str, scope: str, target: str, ref: str) -> None:
    """Store a provider reference if none is stored yet for that scope and target."""
    if thread_ref(session, cutover_id=cutover_id, channel=channel, scope=scope, target=target) is None:
        session.add(ThreadRow(cutover_id=cutover_id, channel=channel, scope=scope, target=target, ref=ref))


def told_audiences(session: Session, cutover_id: int) -> set[str]:
    """Audiences that have at least one sent delivery in this cutover."""
    statement = (
        select(DeliveryRow.audience).where(DeliveryRow.cutover_id == cutover_id, DeliveryRow.state == "sent").distinct()
    )
    return set(session.exec(statement).all())


def set_occurrence_states(session: Session, ids: Sequence[int], state: str, *, at: datetime) -> None:
    """Move occurrences (and their open deliveries, when ending them) to ``state``."""
    if not ids:
        return
    session.execute(update(OccurrenceRow).where(col(OccurrenceRow.id).in_(ids)).values(state=state, finished_at=at))
    if state in ("cancelled", "missed"):
        session.execute(
            update(DeliveryRow)
            .where(col(DeliveryRow.occurrence_id).in_(ids), col(DeliveryRow.state) == "pending")
            .values(state=state, updated_at=at)
        )
