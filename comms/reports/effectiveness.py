"""How well the communication worked: delivery rates, timeliness against the plan, failures, escalations.

Every figure is an aggregate query over the delivery, attempt and occurrence tables (see
``comms.reports.metrics`` for the definitions), so the report of a million-delivery cutover holds a few
hundred rows, not a million. Lists that could grow with the audience (failure reasons, dead
letters) are capped and carry their full count.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Literal

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
from comms.reports.metrics import OccurrenceLateness, communication_metrics, occurrence_lateness, percentile, rate
from comms.store import occurrences as occurrence_store
from comms.store import provider_events, reporting
from comms.store import repository as repo
from comms.store.engine import Engine
from comms.store.tables import CutoverRow
from comms.store.transaction import Transaction, transaction

__all__ = ["LIST_LIMIT", "OPEN_STATES", "effectiveness_report"]

LIST_LIMIT = 100
"""Most failure reasons and dead letters listed (the totals count them all)."""
OPEN_STATES = ("pending", "in_flight")


def effectiveness_report(engine: Engine, *, cutover_name: str | None, now: datetime) -> EffectivenessReport:
    """The communication effectiveness of the named cutover (or the only one)."""
    with transaction(engine) as tx:
        cutover = repo.find_cutover(tx, cutover_name)
        assert cutover.id is not None
        lateness = occurrence_lateness(tx, cutover.id)
        failures, groups = _failures(tx, cutover.id)
        dead_letters, dead_total = _dead_letters(tx, cutover.id)
        return EffectivenessReport(
            cutover=cutover.name,
            state=cutover.state,
            stage=cutover.stage,
            start=cutover.start,
            generated_at=now,
            metrics=communication_metrics(tx, cutover),
            by_channel=_rates(tx, cutover.id, "channel"),
            by_audience=_rates(tx, cutover.id, "audience"),
            timeliness=_timeliness(lateness),
            lateness=lateness,
            timeline=_timeline(tx, cutover),
            failures=failures,
            failure_groups=groups,
            retries=_retries(tx, cutover.id),
            dead_letters=dead_letters,
            dead_total=dead_total,
            incidents=_incidents(tx, cutover.id),
            failure_escalations=_failure_escalations(tx, cutover.id),
            provider_outcomes=provider_events.outcome_counts(tx, cutover.id),
        )


def _rates(tx: Transaction, cutover_id: int, by: Literal["channel", "audience"]) -> list[RateLine]:
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for name, state, count in reporting.state_counts_by(tx, cutover_id, by):
        counts[name][state] += count
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
            rate=rate(states["sent"], sum(states.values()) - states["cancelled"] - states["covered"]),
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


def _timeline(tx: Transaction, cutover: CutoverRow) -> list[TimelinePoint]:
    """Planned and actual send times per occurrence and audience (occurrences never sent: planned only)."""
    assert cutover.id is not None
    groups: dict[int, list[tuple[str, datetime | None, datetime | None, int, int]]] = defaultdict(list)
    for sends in reporting.audience_sends(tx, cutover.id):
        groups[sends.occurrence_id].append(
            (sends.audience, sends.first_sent_at, sends.last_sent_at, sends.sent, sends.total)
        )
    points = []
    for occurrence in occurrence_store.occurrences(tx, cutover.id):
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


def _failures(tx: Transaction, cutover_id: int) -> tuple[list[FailureReason], int]:
    rows, total = reporting.failure_reasons(tx, cutover_id, limit=LIST_LIMIT)
    return [FailureReason(reason, channel, state, count) for reason, channel, state, count in rows], total


def _retries(tx: Transaction, cutover_id: int) -> list[RetryLine]:
    outcomes: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for channel, outcome, count in reporting.attempt_outcomes(tx, cutover_id):
        outcomes[channel][outcome] += count
    retried = reporting.retried_sent(tx, cutover_id)
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


def _dead_letters(tx: Transaction, cutover_id: int) -> tuple[list[DeadLetter], int]:
    rows, total = reporting.dead_deliveries(tx, cutover_id, limit=LIST_LIMIT)
    letters = [
        DeadLetter(row.id or 0, key, row.audience, row.channel, row.recipient, row.attempts, row.last_error)
        for row, key in rows
    ]
    return letters, total


def _incidents(tx: Transaction, cutover_id: int) -> list[IncidentEscalation] | None:
    notices = reporting.level_notices(tx, cutover_id)
    incidents = reporting.incidents_of(tx, cutover_id)
    return [
        IncidentEscalation(
            incident_id=row.id or 0,
            severity=row.severity,
            summary=row.summary,
            opened_at=row.opened_at,
            acked_by=row.acked_by,
            acked_at=row.acked_at,
            resolved_at=row.resolved_at,
            notices=notices.get(row.id or 0, (0, None))[0],
            highest_level=notices.get(row.id or 0, (0, None))[1],
            ack_seconds=None if row.acked_at is None else (row.acked_at - row.opened_at).total_seconds(),
        )
        for row in incidents
    ]


def _failure_escalations(tx: Transaction, cutover_id: int) -> list[FailureEscalation] | None:
    rows = reporting.escalation_steps(tx, cutover_id, kinds=("delivery_failure", "missed"))
    return [FailureEscalation(row.at, row.kind, row.detail) for row in rows]
