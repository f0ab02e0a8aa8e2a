"""The queries on cutovers, their events and their threads that the services and the sender use.

Functions that take a ``Session`` run inside the caller's transaction (``comms.store.transaction``)
and leave the commit to it; functions that take an ``Engine`` are one transaction of their own.
Occurrences are ``comms.store.occurrences``; the incident rows are written by ``comms.store.incidents``, the read-only aggregates behind the
reports are in ``comms.store.reporting`` and ``comms.store.audit``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, bindparam, text
from sqlmodel import Session, col, select

from comms.errors import NotFoundError
from comms.store.occurrences import NewOccurrence, occurrence_row
from comms.store.tables import CutoverRow, DeliveryRow, EventRow, ThreadRow

__all__ = [
    "CutoverAdded",
    "add_cutover",
    "count_events",
    "cutovers_in_states",
    "find_cutover",
    "get_cutover",
    "get_cutover_by_name",
    "list_cutovers",
    "load_cutover",
    "record_event",
    "remember_thread",
    "set_cutover_kpis",
    "set_cutover_state",
    "thread_ref",
    "told_audiences",
]


def get_cutover(session: Session, cutover_id: int) -> CutoverRow:
    """The cutover with id ``cutover_id`` (it must exist: ids come from rows that point at it)."""
    row = session.get(CutoverRow, cutover_id)
    if row is None:
        raise NotFoundError(f"no cutover with id {cutover_id}")
    return row


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


def load_cutover(engine: Engine, name: str | None) -> CutoverRow:
    """``find_cutover`` in a short read of its own; the row stays readable after it."""
    with Session(engine) as session:
        return find_cutover(session, name)


def get_cutover_by_name(session: Session, name: str) -> CutoverRow | None:
    """The cutover called ``name`` or None."""
    return session.exec(select(CutoverRow).where(CutoverRow.name == name)).first()


def list_cutovers(session: Session) -> Sequence[CutoverRow]:
    """Every cutover, oldest first."""
    return session.exec(select(CutoverRow).order_by(col(CutoverRow.id))).all()


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


# -- writing cutovers -----------------------------------------------------------------------


@dataclass(frozen=True)
class CutoverAdded:
    """What ``add_cutover`` found: whether it wrote the cutover, and the start stored for that name."""

    created: bool
    start: datetime


def add_cutover(
    engine: Engine,
    *,
    name: str,
    plan_dir: str,
    start: datetime,
    state: str,
    occurrences: Sequence[NewOccurrence],
    now: datetime,
) -> CutoverAdded:
    """Store a cutover and its occurrences in one transaction; when ``name`` exists already, write nothing."""
    with Session(engine) as session:
        existing = get_cutover_by_name(session, name)
        if existing is not None:
            return CutoverAdded(created=False, start=existing.start)
        cutover = CutoverRow(name=name, plan_dir=plan_dir, start=start, state=state, created_at=now, updated_at=now)
        session.add(cutover)
        session.flush()
        assert cutover.id is not None
        for occurrence in occurrences:
            session.add(occurrence_row(cutover.id, occurrence, now=now))
        session.commit()
    return CutoverAdded(created=True, start=start)


def cutovers_in_states(session: Session, states: Sequence[str]) -> Sequence[CutoverRow]:
    """The cutovers whose state is one of ``states``."""
    return session.exec(select(CutoverRow).where(col(CutoverRow.state).in_(states))).all()


def set_cutover_state(
    session: Session,
    cutover: CutoverRow,
    *,
    state: str,
    stage: int | None,
    now: datetime,
    start: datetime | None = None,
) -> None:
    """Record the cutover's new state and stage (and a new T0 when given)."""
    if start is not None:
        cutover.start = start
    cutover.state = state
    cutover.stage = stage
    cutover.updated_at = now
    session.add(cutover)


def set_cutover_kpis(engine: Engine, cutover_name: str | None, kpis_json: str, *, now: datetime) -> None:
    """Store the migration's KPIs (a JSON object) on the cutover, replacing earlier ones."""
    with Session(engine) as session:
        cutover = find_cutover(session, cutover_name)
        cutover.metrics_json = kpis_json
        cutover.updated_at = now
        session.add(cutover)
        session.commit()


_COUNT_EVENTS = text("SELECT count(*) FROM event WHERE cutover_id = :cutover_id AND kind IN :kinds").bindparams(
    bindparam("kinds", expanding=True)
)


def count_events(session: Session, cutover_id: int, kinds: Sequence[str]) -> int:
    """How many events of the given kinds the cutover has recorded (the calendar SEQUENCE counts moves).

    Plain SQL compiled once: every email request of a message with a calendar invitation asks.
    """
    return int(session.execute(_COUNT_EVENTS, {"cutover_id": cutover_id, "kinds": list(kinds)}).scalar_one())
