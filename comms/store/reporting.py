"""The read-only aggregates behind status, metrics, the effectiveness report and the rehearsal summary.

Each is a GROUP BY or an indexed scan over one cutover, so a million deliveries cost a few index
scans, never a million rows in memory. Functions that take a ``Session`` read inside the caller's
transaction (one snapshot for a whole report); datetimes come back aware UTC, whatever SQLite
hands back for an aggregate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import Engine, case, func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from comms.store.incident_tables import EscalationStepRow, IncidentRow
from comms.store.tables import AttemptRow, DeliveryRow, OccurrenceRow

__all__ = [
    "AudienceSends",
    "DeliveryGroup",
    "OccurrenceSends",
    "as_utc",
    "attempt_outcomes",
    "audience_sends",
    "dead_deliveries",
    "delivery_groups",
    "delivery_state_counts",
    "escalation_count",
    "escalation_steps",
    "failure_reasons",
    "first_sends",
    "incidents_of",
    "level_notices",
    "next_retries",
    "occurrence_sends",
    "retried_sent",
    "state_counts_by",
    "transient_attempts",
]


@dataclass(frozen=True)
class DeliveryGroup:
    """How many deliveries of one occurrence on one channel are in one state (``tried``: attempted at least once)."""

    occurrence_id: int
    channel: str
    state: str
    tried: bool
    count: int


@dataclass(frozen=True)
class AudienceSends:
    """The deliveries of one occurrence to one audience: first and last send, how many sent out of how many."""

    occurrence_id: int
    audience: str
    first_sent_at: datetime | None
    last_sent_at: datetime | None
    sent: int
    total: int


@dataclass(frozen=True)
class OccurrenceSends:
    """An occurrence, its sent deliveries per channel, and when the first of them went out."""

    occurrence: OccurrenceRow
    sent: dict[str, int]
    first_sent_at: datetime | None


def as_utc(value: datetime | str | None) -> datetime | None:
    """An aggregate's datetime as aware UTC (SQLite may hand back text or a naive value)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# -- metrics ------------------------------------------------------------------------------------


def delivery_state_counts(session: Session, cutover_id: int) -> dict[str, int]:
    """How many deliveries of the cutover are in each state."""
    rows = session.exec(
        select(DeliveryRow.state, func.count()).where(DeliveryRow.cutover_id == cutover_id).group_by(DeliveryRow.state)
    ).all()
    return {state: int(count) for state, count in rows}


def first_sends(
    session: Session, cutover_id: int, *, states: Sequence[str]
) -> list[tuple[OccurrenceRow, datetime | None]]:
    """The cutover's occurrences in ``states``, in due order, each with its first successful send (or None)."""
    first_sent = (
        select(DeliveryRow.occurrence_id, func.min(DeliveryRow.sent_at).label("first_sent"))
        .where(DeliveryRow.cutover_id == cutover_id, DeliveryRow.state == "sent")
        .group_by(col(DeliveryRow.occurrence_id))
        .subquery()
    )
    rows = session.exec(
        select(OccurrenceRow, first_sent.c.first_sent)
        .outerjoin(first_sent, first_sent.c.occurrence_id == OccurrenceRow.id)
        .where(OccurrenceRow.cutover_id == cutover_id, col(OccurrenceRow.state).in_(states))
        .order_by(col(OccurrenceRow.due_at), col(OccurrenceRow.id))
    ).all()
    return [(occurrence, as_utc(first)) for occurrence, first in rows]


def transient_attempts(session: Session, cutover_id: int) -> int:
    """Provider requests of the cutover that failed in a way worth retrying."""
    count = session.exec(
        select(func.count()).where(AttemptRow.cutover_id == cutover_id, AttemptRow.outcome == "transient")
    ).one()
    return int(count)


def escalation_count(session: Session, cutover_id: int, *, kinds: Sequence[str]) -> int:
    """Escalation steps of those kinds recorded for the cutover."""
    count = session.exec(
        select(func.count()).where(EscalationStepRow.cutover_id == cutover_id, col(EscalationStepRow.kind).in_(kinds))
    ).one()
    return int(count)


# -- status ---------------------------------------------------------------------------------------


def delivery_groups(session: Session, cutover_id: int) -> list[DeliveryGroup]:
    """The cutover's deliveries counted by occurrence, channel, state and whether they were tried."""
    tried = case((col(DeliveryRow.attempts) > 0, 1), else_=0)
    rows = session.execute(  # five columns: more than sqlmodel's select is typed for
        sa_select(col(DeliveryRow.occurrence_id), col(DeliveryRow.channel), col(DeliveryRow.state), tried, func.count())
        .where(col(DeliveryRow.cutover_id) == cutover_id)
        .group_by(col(DeliveryRow.occurrence_id), col(DeliveryRow.channel), col(DeliveryRow.state), tried)
    ).all()
    return [
        DeliveryGroup(occurrence_id, channel, state, bool(was_tried), int(count))
        for occurrence_id, channel, state, was_tried, count in rows
    ]


def next_retries(session: Session, cutover_id: int) -> dict[int, datetime]:
    """Per occurrence with deliveries waiting for a retry, when the earliest of them is due."""
    rows = session.exec(
        select(DeliveryRow.occurrence_id, func.min(DeliveryRow.next_attempt_at))
        .where(DeliveryRow.cutover_id == cutover_id, DeliveryRow.state == "pending")
        .where(col(DeliveryRow.next_attempt_at).is_not(None))
        .group_by(col(DeliveryRow.occurrence_id))
    ).all()
    return {occurrence_id: when for occurrence_id, value in rows if (when := as_utc(value)) is not None}


def incidents_of(session: Session, cutover_id: int, *, unresolved_only: bool = False) -> Sequence[IncidentRow]:
    """The cutover's incidents (only those not resolved, if asked), oldest first."""
    query = select(IncidentRow).where(IncidentRow.cutover_id == cutover_id)
    if unresolved_only:
        query = query.where(col(IncidentRow.resolved_at).is_(None))
    return session.exec(query.order_by(col(IncidentRow.id))).all()


def escalation_steps(session: Session, cutover_id: int, *, kinds: Sequence[str]) -> Sequence[EscalationStepRow]:
    """The cutover's escalation steps of those kinds, in time order."""
    return session.exec(
        select(EscalationStepRow)
        .where(EscalationStepRow.cutover_id == cutover_id, col(EscalationStepRow.kind).in_(kinds))
        .order_by(col(EscalationStepRow.at), col(EscalationStepRow.id))
    ).all()


# -- effectiveness --------------------------------------------------------------------------------


def state_counts_by(
    session: Session, cutover_id: int, by: Literal["channel", "audience"]
) -> list[tuple[str, str, int]]:
    """(channel or audience, state, deliveries) for the cutover."""
    key = col(DeliveryRow.channel) if by == "channel" else col(DeliveryRow.audience)
    rows = session.execute(
        sa_select(key, col(DeliveryRow.state), func.count())
        .where(col(DeliveryRow.cutover_id) == cutover_id)
        .group_by(key, col(DeliveryRow.state))
    ).all()
    return [(name, state, int(count)) for name, state, count in rows]


def audience_sends(session: Session, cutover_id: int) -> list[AudienceSends]:
    """Per occurrence and audience, the first and last send and how many of how many deliveries were sent."""
    is_sent = col(DeliveryRow.state) == "sent"
    sent_at = case((is_sent, col(DeliveryRow.sent_at)))
    rows = session.execute(
        sa_select(
            col(DeliveryRow.occurrence_id),
            col(DeliveryRow.audience),
            func.min(sent_at),
            func.max(sent_at),
            func.sum(case((is_sent, 1), else_=0)),
            func.count(),
        )
        .where(col(DeliveryRow.cutover_id) == cutover_id)
        .group_by(col(DeliveryRow.occurrence_id), col(DeliveryRow.audience))
    ).all()
    return [
        AudienceSends(occurrence_id, audience, as_utc(first), as_utc(last), int(sent or 0), int(total))
        for occurrence_id, audience, first, last, sent, total in rows
    ]


def failure_reasons(session: Session, cutover_id: int, *, limit: int) -> tuple[list[tuple[str, str, str, int]], int]:
    """The commonest (error, channel, state, deliveries) first, at most ``limit`` of them, and how many there are."""
    error = col(DeliveryRow.last_error)
    base = (
        sa_select(error, col(DeliveryRow.channel), col(DeliveryRow.state), func.count().label("n"))
        .where(col(DeliveryRow.cutover_id) == cutover_id, error.is_not(None))
        .group_by(error, col(DeliveryRow.channel), col(DeliveryRow.state))
    )
    total = session.execute(sa_select(func.count()).select_from(base.subquery())).scalar_one()
    rows = session.execute(base.order_by(func.count().desc(), error).limit(limit)).all()
    return [(str(reason), channel, state, int(count)) for reason, channel, state, count in rows], int(total)


def attempt_outcomes(session: Session, cutover_id: int) -> list[tuple[str, str, int]]:
    """(channel, outcome, requests) over the cutover's provider requests."""
    rows = session.exec(
        select(AttemptRow.channel, AttemptRow.outcome, func.count())
        .where(AttemptRow.cutover_id == cutover_id)
        .group_by(col(AttemptRow.channel), col(AttemptRow.outcome))
    ).all()
    return [(channel, outcome, int(count)) for channel, outcome, count in rows]


def retried_sent(session: Session, cutover_id: int) -> dict[str, int]:
    """Per channel, the deliveries that were sent after more than one attempt."""
    rows = session.exec(
        select(DeliveryRow.channel, func.count())
        .where(DeliveryRow.cutover_id == cutover_id, DeliveryRow.state == "sent", col(DeliveryRow.attempts) > 1)
        .group_by(col(DeliveryRow.channel))
    ).all()
    return {channel: int(count) for channel, count in rows}


def dead_deliveries(session: Session, cutover_id: int, *, limit: int) -> tuple[list[tuple[DeliveryRow, str]], int]:
    """The first ``limit`` dead deliveries with their occurrence's key, and how many are dead."""
    total = session.exec(
        select(func.count()).where(DeliveryRow.cutover_id == cutover_id, DeliveryRow.state == "dead")
    ).one()
    rows = session.exec(
        select(DeliveryRow, OccurrenceRow.key)
        .join(OccurrenceRow, col(OccurrenceRow.id) == DeliveryRow.occurrence_id)
        .where(DeliveryRow.cutover_id == cutover_id, DeliveryRow.state == "dead")
        .order_by(col(DeliveryRow.id))
        .limit(limit)
    ).all()
    return [(row, key) for row, key in rows], int(total)


def level_notices(session: Session, cutover_id: int) -> dict[int, tuple[int, int | None]]:
    """Per incident, how many level notices were recorded and the highest level reached."""
    rows = session.exec(
        select(EscalationStepRow.incident_id, func.count(), func.max(EscalationStepRow.level))
        .where(EscalationStepRow.cutover_id == cutover_id, EscalationStepRow.kind == "notified")
        .group_by(col(EscalationStepRow.incident_id))
    ).all()
    return {incident_id: (int(count), level) for incident_id, count, level in rows if incident_id is not None}


# -- rehearsal --------------------------------------------------------------------------------------


def occurrence_sends(engine: Engine) -> list[OccurrenceSends]:
    """Every occurrence of the database in due order, with its sent deliveries per channel."""
    with Session(engine) as session:
        occurrences = session.exec(
            select(OccurrenceRow).order_by(col(OccurrenceRow.due_at), col(OccurrenceRow.id))
        ).all()
        result = []
        for occurrence in occurrences:
            counts = session.exec(
                select(DeliveryRow.channel, func.count(), func.min(DeliveryRow.sent_at))
                .where(DeliveryRow.occurrence_id == occurrence.id, DeliveryRow.state == "sent")
                .group_by(DeliveryRow.channel)
            ).all()
            first = min((row[2] for row in counts if row[2] is not None), default=None)
            result.append(OccurrenceSends(occurrence, {channel: count for channel, count, _ in counts}, first))
        return result
