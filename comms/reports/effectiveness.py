"""How well the communication worked: delivery rates, timeliness against the plan, failures, escalations.

Every figure is an aggregate query over the delivery, attempt and occurrence tables (see
``comms.reports.metrics`` for the definitions), so the report of a million-delivery cutover holds a few
hundred rows, not a million. Lists that could grow with the audience (failure reasons, dead
letters) are capped and carry their full count.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import Engine, case, func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from comms.reports.effectiveness_model import (
    DeadLetter,
    EffectivenessReport,
    FailureEscalation,
    FailureReason,
    IncidentEscalation,
    RateLine,
    RetryLine,
    TimelinePoint,
    Timeliness,
)
from comms.reports.metrics import (
    OccurrenceLateness,
    as_utc,
    communication_metrics,
    occurrence_lateness,
    percentile,
    rate,
)
from comms.store import repository as repo
from comms.store.incident_tables import EscalationStepRow, IncidentRow
from comms.store.tables import AttemptRow, CutoverRow, DeliveryRow, OccurrenceRow

LIST_LIMIT = 100
"""Most failure reasons and dead letters listed (the totals count them all)."""
OPEN_STATES = ("pending", "in_flight")


def effectiveness_report(engine: Engine, *, cutover_name: str | None, now: datetime) -> EffectivenessReport:
    """The communication effectiveness of the named cutover (or the only one)."""
    with Session(engine) as session:
        cutover = repo.find_cutover(session, cutover_name)
        assert cutover.id is not None
        lateness = occurrence_lateness(session, cutover.id)
        failures, groups = _failures(session, cutover.id)
        dead_letters, dead_total = _dead_letters(session, cutover.id)
        return EffectivenessReport(
            cutover=cutover.name,
            state=cutover.state,
            stage=cutover.stage,
            start=cutover.start,
            generated_at=now,
            metrics=communication_metrics(session, cutover),
            by_channel=_rates(session, cutover.id, "channel"),
            by_audience=_rates(session, cutover.id, "audience"),
            timeliness=_timeliness(lateness),
            lateness=lateness,
            timeline=_timeline(session, cutover),
            failures=failures,
            failure_groups=groups,
            retries=_retries(session, cutover.id),
            dead_letters=dead_letters,
            dead_total=dead_total,
            incidents=_incidents(session, cutover.id),
            failure_escalations=_failure_escalations(session, cutover.id),
        )


def _rates(session: Session, cutover_id: int, by: str) -> list[RateLine]:
    key = col(DeliveryRow.channel) if by == "channel" else col(DeliveryRow.audience)
    rows = session.execute(
        sa_select(key, col(DeliveryRow.state), func.count())
        .where(col(DeliveryRow.cutover_id) == cutover_id)
        .group_by(key, col(DeliveryRow.state))
    ).all()
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for name, state, count in rows:
        counts[name][state] += int(count)
    return [
        RateLine(
            key=name,
            total=sum(states.values()),
            sent=states["sent"],
            dead=states["dead"],
            uncertain=states["uncertain"],
            missed=states["missed"],
            open=sum(states[s] for s in OPEN_STATES),
            cancelled=states["cancelled"],
            rate=rate(states["sent"], sum(states.values()) - states["cancelled"]),
        )
        for name, states in sorted(counts.items())
    ]


def _timeliness(lateness: list[OccurrenceLateness]) -> Timeliness:
    values = sorted(v for v in (item.seconds for item in lateness) if v is not None)
    on_time = sum(1 for item in lateness if item.on_time)
    return Timeliness(
        due=len(lateness),
        on_time=on_time,
        late=len(values) - on_time,
        not_sent=len(lateness) - len(values),
        on_time_rate=rate(on_time, len(lateness)),
        median_seconds=percentile(values, 50),
        p95_seconds=percentile(values, 95),
        max_seconds=round(values[-1], 1) if values else 0.0,
    )


def _timeline(session: Session, cutover: CutoverRow) -> list[TimelinePoint]:
    """Planned and actual send times per occurrence and audience (occurrences never sent: planned only)."""
    assert cutover.id is not None
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
        .where(col(DeliveryRow.cutover_id) == cutover.id)
        .group_by(col(DeliveryRow.occurrence_id), col(DeliveryRow.audience))
    ).all()
    groups: dict[int, list[tuple[str, datetime | None, datetime | None, int, int]]] = defaultdict(list)
    for occurrence_id, audience, first, last, sent, total in rows:
        groups[occurrence_id].append((audience, as_utc(first), as_utc(last), int(sent or 0), int(total)))
    points = []
    for occurrence in repo.occurrences(session, cutover.id):
        if occurrence.due_at is None or occurrence.id is None:
            continue
        audiences = groups.get(occurrence.id) or [
            (name, None, None, 0, 0) for name in occurrence.audiences_csv.split(",") if name
        ]
        for audience, first, last, sent, total in sorted(audiences, key=lambda item: item[0]):
            late = None if first is None else max((first - occurrence.due_at).total_seconds(), 0.0)
            point = (occurrence.key, occurrence.message, audience, occurrence.state, occurrence.due_at)
            points.append(TimelinePoint(*point, first, last, sent, total, late))
    return points


def _failures(session: Session, cutover_id: int) -> tuple[list[FailureReason], int]:
    error = col(DeliveryRow.last_error)
    base = (
        sa_select(error, col(DeliveryRow.channel), col(DeliveryRow.state), func.count().label("n"))
        .where(col(DeliveryRow.cutover_id) == cutover_id, error.is_not(None))
        .group_by(error, col(DeliveryRow.channel), col(DeliveryRow.state))
    )
    total = session.execute(sa_select(func.count()).select_from(base.subquery())).scalar_one()
    rows = session.execute(base.order_by(func.count().desc(), error).limit(LIST_LIMIT)).all()
    reasons = [FailureReason(str(reason), channel, state, int(count)) for reason, channel, state, count in rows]
    return reasons, int(total)


def _retries(session: Session, cutover_id: int) -> list[RetryLine]:
    rows = session.exec(
        select(AttemptRow.channel, AttemptRow.outcome, func.count())
        .where(AttemptRow.cutover_id == cutover_id)
        .group_by(col(AttemptRow.channel), col(AttemptRow.outcome))
    ).all()
    outcomes: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for channel, outcome, count in rows:
        outcomes[channel][outcome] += int(count)
    retried = dict(
        session.exec(
            select(DeliveryRow.channel, func.count())
            .where(DeliveryRow.cutover_id == cutover_id, DeliveryRow.state == "sent", col(DeliveryRow.attempts) > 1)
            .group_by(col(DeliveryRow.channel))
        ).all()
    )
    return [
        RetryLine(
            channel=channel,
            requests=sum(counts.values()),
            sent=counts["sent"],
            transient=counts["transient"],
            permanent=counts["permanent"],
            retried_deliveries=int(retried.get(channel, 0)),
        )
        for channel, counts in sorted(outcomes.items())
    ]


def _dead_letters(session: Session, cutover_id: int) -> tuple[list[DeadLetter], int]:
    total = session.exec(
        select(func.count()).where(DeliveryRow.cutover_id == cutover_id, DeliveryRow.state == "dead")
    ).one()
    rows = session.exec(
        select(DeliveryRow, OccurrenceRow.key)
        .join(OccurrenceRow, col(OccurrenceRow.id) == DeliveryRow.occurrence_id)
        .where(DeliveryRow.cutover_id == cutover_id, DeliveryRow.state == "dead")
        .order_by(col(DeliveryRow.id))
        .limit(LIST_LIMIT)
    ).all()
    letters = [
        DeadLetter(row.id or 0, key, row.audience, row.channel, row.recipient, row.attempts, row.last_error)
        for row, key in rows
    ]
    return letters, int(total)


def _incidents(session: Session, cutover_id: int) -> list[IncidentEscalation] | None:
    notices = {
        incident_id: (int(count), level)
        for incident_id, count, level in session.exec(
            select(EscalationStepRow.incident_id, func.count(), func.max(EscalationStepRow.level))
            .where(EscalationStepRow.cutover_id == cutover_id, EscalationStepRow.kind == "notified")
            .group_by(col(EscalationStepRow.incident_id))
        ).all()
    }
    incidents = session.exec(
        select(IncidentRow).where(IncidentRow.cutover_id == cutover_id).order_by(col(IncidentRow.id))
    ).all()
    return [
        IncidentEscalation(
            incident_id=row.id or 0,
            severity=row.severity,
            summary=row.summary,
            opened_at=row.opened_at,
            acked_by=row.acked_by,
            acked_at=row.acked_at,
            resolved_at=row.resolved_at,
            notices=notices.get(row.id, (0, None))[0],
            highest_level=notices.get(row.id, (0, None))[1],
            ack_seconds=None if row.acked_at is None else (row.acked_at - row.opened_at).total_seconds(),
        )
        for row in incidents
    ]


def _failure_escalations(session: Session, cutover_id: int) -> list[FailureEscalation] | None:
    rows = session.exec(
        select(EscalationStepRow)
        .where(
            EscalationStepRow.cutover_id == cutover_id,
            col(EscalationStepRow.kind).in_(("delivery_failure", "missed")),
        )
        .order_by(col(EscalationStepRow.at), col(EscalationStepRow.id))
    ).all()
    return [FailureEscalation(row.at, row.kind, row.detail) for row in rows]
