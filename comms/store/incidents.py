"""The queries on incident and escalation-step rows that the incident and escalation services use.

Functions that take a ``Session`` run inside the caller's transaction (``comms.store.transaction``)
and leave the commit to it; functions that take an ``Engine`` read in a transaction of their own
and hand back rows that stay readable after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from comms.store.dialect import insert_ignoring_duplicates
from comms.store.incident_tables import EscalationStepRow, IncidentRow
from comms.store.repository import find_cutover
from comms.store.tables import CutoverRow

__all__ = [
    "IncidentHistory",
    "UnacknowledgedIncident",
    "add_incident",
    "add_step",
    "claim_step",
    "get_incident",
    "incident_histories",
    "incident_with_cutover",
    "link_step",
    "notified_slots",
    "record_acknowledgement",
    "record_incident_update",
    "record_resolution",
    "reread_incident",
    "unacknowledged_incidents",
]


@dataclass(frozen=True)
class UnacknowledgedIncident:
    """An incident nobody acknowledged or resolved yet, its plan folder and the notices already recorded."""

    incident: IncidentRow
    plan_dir: str
    notified: set[tuple[int, int]]


@dataclass(frozen=True)
class IncidentHistory:
    """An incident with its cutover, the notices already recorded and every step in time order."""

    incident: IncidentRow
    cutover: str
    plan_dir: str
    notified: set[tuple[int, int]]
    steps: list[EscalationStepRow] = field(default_factory=list)


def add_incident(
    session: Session,
    *,
    cutover_id: int,
    severity: str,
    summary: str,
    components_json: str,
    on_statuspage: bool,
    latest_update: str,
    now: datetime,
) -> IncidentRow:
    """Write a new open incident; the row returned has its id."""
    incident = IncidentRow(
        cutover_id=cutover_id,
        severity=severity,
        summary=summary,
        components_json=components_json,
        on_statuspage=on_statuspage,
        latest_update=latest_update,
        opened_at=now,
        acked_at=None,
        resolved_at=None,
        updated_at=now,
    )
    session.add(incident)
    session.flush()
    return incident


def get_incident(session: Session, incident_id: int) -> IncidentRow | None:
    """The incident with that id, or None."""
    return session.get(IncidentRow, incident_id)


def incident_with_cutover(
    session: Session, incident_id: int, *, for_update: bool = False
) -> tuple[IncidentRow, CutoverRow] | None:
    """The incident and its cutover, or None when there is no such incident.

    ``for_update`` locks the incident's row until the transaction ends (PostgreSQL; SQLite has one writer),
    so two people acknowledging at once are served one after the other: the second sees the first's ack.
    """
    incident = session.get(IncidentRow, incident_id, with_for_update=for_update or None)
    if incident is None:
        return None
    cutover = session.get(CutoverRow, incident.cutover_id)
    assert cutover is not None
    return incident, cutover


def reread_incident(session: Session, incident: IncidentRow) -> IncidentRow:
    """The incident as stored now (read again under the caller's write lock: an ack may have just landed)."""
    session.refresh(incident)
    return incident


def record_incident_update(session: Session, incident: IncidentRow, *, status: str, update: str, now: datetime) -> None:
    """Record the incident's new public status and latest update."""
    incident.status, incident.latest_update, incident.updated_at = status, update, now
    session.add(incident)


def record_acknowledgement(session: Session, incident: IncidentRow, *, by: str, now: datetime) -> None:
    """Record who acknowledged the incident, and when."""
    incident.acked_by, incident.acked_at, incident.updated_at = by, now, now
    session.add(incident)


def record_resolution(session: Session, incident: IncidentRow, *, update: str, now: datetime) -> None:
    """Record the incident resolved, with the update that says what fixed it."""
    incident.status, incident.latest_update = "resolved", update
    incident.resolved_at = incident.updated_at = now
    session.add(incident)


def add_step(
    session: Session, *, cutover_id: int, incident_id: int | None, kind: str, at: datetime, detail: str
) -> int:
    """Append an escalation step (opened, updated, acked, resolved); return its id."""
    step = EscalationStepRow(cutover_id=cutover_id, incident_id=incident_id, kind=kind, at=at, detail=detail)
    session.add(step)
    session.flush()
    assert step.id is not None
    return step.id


def claim_step(
    session: Session,
    *,
    cutover_id: int,
    incident_id: int | None,
    kind: str,
    at: datetime,
    detail: str,
    level: int | None = None,
    repeat: int | None = None,
    occurrence_id: int | None = None,
) -> int | None:
    """Insert a step unless its UNIQUE key is taken (ON CONFLICT DO NOTHING); its id, or None when someone else has it."""
    values = {
        "cutover_id": cutover_id,
        "incident_id": incident_id,
        "kind": kind,
        "at": at,
        "detail": detail,
        "level": level,
        "repeat": repeat,
        "occurrence_id": occurrence_id,
    }
    # RETURNING, not rowcount: an ORM-enabled INSERT reports rowcount -1 on PostgreSQL (psycopg)
    statement = insert_ignoring_duplicates(session, EscalationStepRow).values(**values)
    inserted = session.execute(statement.returning(EscalationStepRow.__table__.c.id)).first()  # type: ignore[attr-defined]
    return int(inserted[0]) if inserted is not None else None


def link_step(session: Session, step_id: int, occurrence_id: int) -> None:
    """Record the occurrence a step sent (its announcement or notice)."""
    step = session.get(EscalationStepRow, step_id)
    assert step is not None
    step.sent_occurrence_id = occurrence_id
    session.add(step)


def notified_slots(session: Session, incident_id: int) -> set[tuple[int, int]]:
    """The (level, repeat) notices already recorded for an incident."""
    rows = session.exec(
        select(EscalationStepRow.level, EscalationStepRow.repeat).where(
            EscalationStepRow.incident_id == incident_id, EscalationStepRow.kind == "notified"
        )
    ).all()
    return {(level, repeat or 0) for level, repeat in rows if level is not None}


def unacknowledged_incidents(engine: Engine, *, incident_id: int | None = None) -> list[UnacknowledgedIncident]:
    """Every incident neither acknowledged nor resolved (or just that one), oldest first, in one read."""
    with Session(engine) as session:
        query = select(IncidentRow).where(col(IncidentRow.acked_at).is_(None), col(IncidentRow.resolved_at).is_(None))
        if incident_id is not None:
            query = query.where(IncidentRow.id == incident_id)
        found = []
        for incident in session.exec(query.order_by(col(IncidentRow.id))).all():
            assert incident.id is not None
            cutover = session.get(CutoverRow, incident.cutover_id)
            assert cutover is not None
            found.append(UnacknowledgedIncident(incident, cutover.plan_dir, notified_slots(session, incident.id)))
        return found


def incident_histories(engine: Engine, *, cutover_name: str | None = None) -> list[IncidentHistory]:
    """Every incident (of one cutover when named; NotFoundError if it is not), oldest first, with its steps."""
    with Session(engine) as session:
        query = select(IncidentRow, CutoverRow).join(CutoverRow, col(CutoverRow.id) == IncidentRow.cutover_id)
        if cutover_name is not None:
            cutover = find_cutover(session, cutover_name)
            query = query.where(IncidentRow.cutover_id == cutover.id)
        histories = []
        for incident, cutover in session.exec(query.order_by(col(IncidentRow.id))).all():
            assert incident.id is not None
            histories.append(
                IncidentHistory(
                    incident=incident,
                    cutover=cutover.name,
                    plan_dir=cutover.plan_dir,
                    notified=notified_slots(session, incident.id),
                    steps=list(_steps(session, incident.id)),
                )
            )
        return histories


def _steps(session: Session, incident_id: int) -> Sequence[EscalationStepRow]:
    return session.exec(
        select(EscalationStepRow)
        .where(EscalationStepRow.incident_id == incident_id)
        .order_by(col(EscalationStepRow.at), col(EscalationStepRow.id))
    ).all()
