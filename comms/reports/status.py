"""Where a cutover stands: its state, T0, the next messages due, and per occurrence what its deliveries did.

Delivery counts come from one GROUP BY over the delivery table, so the status of a cutover with a
million recipients costs one index scan. A delivery is counted once, in the first bucket that fits:

- ``sent``, ``dead``, ``uncertain``, ``missed``, ``cancelled``, ``covered``, ``suppressed``, ``in_flight``: its
  state (``covered``: the person got this message through an audience whose copy won; ``suppressed``:
  unsubscribed, never sent to);
- ``retrying``: pending after at least one failed attempt (waiting for its next try);
- ``pending``: pending and not tried yet.

Incidents and escalations come from ``comms.store.incident_tables`` when it is installed;
without it they are ``None`` (shown as "not available"), never an error.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any

from comms.core.delivery_events import COUNTED_OUTCOMES
from comms.core.events import CutoverState, releases_held
from comms.core.times import format_duration, format_offset, iso_utc
from comms.reports.metrics import ESCALATION_KINDS
from comms.store import occurrences as occurrence_store
from comms.store import provider_events, reporting
from comms.store import repository as repo
from comms.store.engine import Engine
from comms.store.tables import CutoverRow, OccurrenceRow
from comms.store.transaction import Transaction, transaction

__all__ = [
    "CutoverStatus",
    "DELIVERY_BUCKETS",
    "DeliveryCounts",
    "EscalationLine",
    "IncidentLine",
    "NextMessage",
    "OccurrenceStatus",
    "STATE_LABELS",
    "cutover_status",
    "describe_state",
    "relative_text",
]

STATE_LABELS = {
    "planned": "planned",
    "go": "go",
    "in_progress": "in progress",
    "completed": "completed",
    "rolled_back": "rolled back",
    "postponed": "postponed",
    "cancelled": "cancelled",
}
DELIVERY_BUCKETS = (
    "sent",
    "pending",
    "in_flight",
    "retrying",
    "dead",
    "uncertain",
    "missed",
    "cancelled",
    "covered",
    "suppressed",
)


@dataclass
class DeliveryCounts:
    """Deliveries per bucket (see the module docstring)."""

    sent: int = 0
    pending: int = 0
    in_flight: int = 0
    retrying: int = 0
    dead: int = 0
    uncertain: int = 0
    missed: int = 0
    cancelled: int = 0
    covered: int = 0
    suppressed: int = 0
    """Unsubscribed addresses, never sent to."""

    @property
    def total(self) -> int:
        """Every delivery counted."""
        return sum(getattr(self, f.name) for f in fields(self))

    def add(self, bucket: str, count: int) -> None:
        """Add ``count`` deliveries to ``bucket``."""
        setattr(self, bucket, getattr(self, bucket) + count)

    def to_json(self) -> dict[str, int]:
        """The buckets and the total."""
        return {**{f.name: getattr(self, f.name) for f in fields(self)}, "total": self.total}


@dataclass(frozen=True)
class NextMessage:
    """A time-based occurrence not sent yet."""

    key: str
    message: str
    due_at: datetime
    state: str
    waits_for_go: bool
    in_seconds: float
    offset: str

    @property
    def relative(self) -> str:
        """``in 2h``, ``5m ago`` or ``now``."""
        return relative_text(self.in_seconds)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "key": self.key,
            "message": self.message,
            "due_at": iso_utc(self.due_at),
            "offset": self.offset,
            "in_seconds": round(self.in_seconds),
            "relative": self.relative,
            "state": self.state,
            "waits_for_go": self.waits_for_go,
        }


@dataclass(frozen=True)
class OccurrenceStatus:
    """One occurrence and its deliveries by channel."""

    key: str
    message: str
    trigger: str
    state: str
    due_at: datetime | None
    next_retry_at: datetime | None
    channels: dict[str, DeliveryCounts]
    why: str | None = None
    """Why it was cancelled or missed instead of sent (a phase that was over, an event), when recorded."""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "key": self.key,
            "message": self.message,
            "trigger": self.trigger,
            "state": self.state,
            "due_at": iso_utc(self.due_at) if self.due_at else None,
            "next_retry_at": iso_utc(self.next_retry_at) if self.next_retry_at else None,
            "channels": {name: counts.to_json() for name, counts in self.channels.items()},
            "why": self.why,
        }


@dataclass(frozen=True)
class IncidentLine:
    """An incident not resolved yet."""

    id: int
    severity: str
    state: str
    status: str
    summary: str
    opened_at: datetime
    acked_by: str | None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "id": self.id,
            "severity": self.severity,
            "state": self.state,
            "status": self.status,
            "summary": self.summary,
            "opened_at": iso_utc(self.opened_at),
            "acked_by": self.acked_by,
        }


@dataclass(frozen=True)
class EscalationLine:
    """An escalation notice recorded for the cutover."""

    at: datetime
    kind: str
    incident_id: int | None
    level: int | None
    detail: str

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "at": iso_utc(self.at),
            "kind": self.kind,
            "incident_id": self.incident_id,
            "level": self.level,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class CutoverStatus:
    """The whole status view of one cutover at ``now``."""

    cutover: str
    state: str
    stage: int | None
    start: datetime
    now: datetime
    next_messages: list[NextMessage]
    occurrences: list[OccurrenceStatus]
    totals: DeliveryCounts
    incidents: list[IncidentLine] | None = None
    escalations: list[EscalationLine] | None = field(default=None)
    provider_outcomes: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per audience, deliveries by the provider's word on them (SendGrid's events: delivered, bounced...)."""

    def provider_counts(self) -> dict[str, Any]:
        """Delivered, bounced, dropped and deferred deliveries (by SendGrid's events), with per-audience rates."""
        totals = {name: 0 for name in COUNTED_OUTCOMES}
        audiences: dict[str, dict[str, Any]] = {}
        for audience, outcomes in sorted(self.provider_outcomes.items()):
            reported = sum(outcomes.values())
            counted = {name: outcomes.get(name, 0) for name in COUNTED_OUTCOMES}
            for name, count in counted.items():
                totals[name] += count
            rates = {f"{name}_rate": round(count / reported, 4) if reported else 0.0 for name, count in counted.items()}
            audiences[audience] = {**counted, "reported": reported, **rates}
        return {**totals, "by_audience": audiences}

    @property
    def state_label(self) -> str:
        """``planned``, ``in progress at stage 25 %``, ``rolled back``..."""
        return describe_state(self.state, self.stage)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (times in ISO-8601 UTC)."""
        return {
            "cutover": self.cutover,
            "state": self.state,
            "state_label": self.state_label,
            "stage": self.stage,
            "start": iso_utc(self.start),
            "now": iso_utc(self.now),
            "t0_in_seconds": round((self.start - self.now).total_seconds()),
            "next": [item.to_json() for item in self.next_messages],
            "totals": self.totals.to_json(),
            "occurrences": [item.to_json() for item in self.occurrences],
            "incidents": None if self.incidents is None else [item.to_json() for item in self.incidents],
            "escalations": None if self.escalations is None else [item.to_json() for item in self.escalations],
            "provider_events": self.provider_counts(),
        }


def describe_state(state: str, stage: int | None) -> str:
    """A cutover state in words, with the traffic stage while in progress."""
    label = STATE_LABELS.get(state, state)
    if state == CutoverState.IN_PROGRESS.value and stage is not None:
        return f"{label} at stage {stage} %"
    return label


def relative_text(seconds: float) -> str:
    """``in 2h30m``, ``5m ago`` or ``now`` (within a minute)."""
    if abs(seconds) < 60:
        return "now"
    text = format_duration(timedelta(seconds=abs(seconds)), smallest="m")
    return f"in {text}" if seconds > 0 else f"{text} ago"


def cutover_status(engine: Engine, *, cutover_name: str | None, now: datetime, next_limit: int = 5) -> CutoverStatus:
    """The status of the named cutover (or the only one); NotFoundError when none is scheduled."""
    with transaction(engine) as tx:
        cutover = repo.find_cutover(tx, cutover_name)
        assert cutover.id is not None
        occurrences = occurrence_store.occurrences(tx, cutover.id)
        counts = _delivery_counts(tx, cutover.id)
        retries = reporting.next_retries(tx, cutover.id)
        totals = DeliveryCounts()
        lines = []
        for occurrence in occurrences:
            assert occurrence.id is not None
            by_channel = counts.get(occurrence.id, {})
            for channel_counts in by_channel.values():
                for bucket in DELIVERY_BUCKETS:
                    totals.add(bucket, getattr(channel_counts, bucket))
            lines.append(
                OccurrenceStatus(
                    key=occurrence.key,
                    message=occurrence.message,
                    trigger=occurrence.trigger,
                    state=occurrence.state,
                    due_at=occurrence.due_at,
                    next_retry_at=retries.get(occurrence.id),
                    channels=dict(sorted(by_channel.items())),
                    why=occurrence.ended_reason,
                )
            )
        return CutoverStatus(
            cutover=cutover.name,
            state=cutover.state,
            stage=cutover.stage,
            start=cutover.start,
            now=now,
            next_messages=_next_messages(cutover, occurrences, now=now, limit=next_limit),
            occurrences=lines,
            totals=totals,
            incidents=_open_incidents(tx, cutover.id),
            escalations=_escalations(tx, cutover.id),
            provider_outcomes=provider_events.outcome_counts(tx, cutover.id),
        )


def _delivery_counts(tx: Transaction, cutover_id: int) -> dict[int, dict[str, DeliveryCounts]]:
    result: dict[int, dict[str, DeliveryCounts]] = defaultdict(dict)
    for group in reporting.delivery_groups(tx, cutover_id):
        bucket = "retrying" if group.state == "pending" and group.tried else group.state
        if bucket not in DELIVERY_BUCKETS:
            bucket = "pending"
        result[group.occurrence_id].setdefault(group.channel, DeliveryCounts()).add(bucket, group.count)
    return result


def _next_messages(
    cutover: CutoverRow, occurrences: Sequence[OccurrenceRow], *, now: datetime, limit: int
) -> list[NextMessage]:
    released = releases_held(CutoverState(cutover.state))
    waiting = [
        (o.due_at, o)
        for o in occurrences
        if o.state in ("pending", "held") and not o.materialized and o.due_at is not None
    ]
    waiting.sort(key=lambda item: (item[0], item[1].id or 0))
    return [
        NextMessage(
            key=o.key,
            message=o.message,
            due_at=due_at,
            state=o.state,
            waits_for_go=o.state == "held" or (o.hold_until_go and not released),
            in_seconds=(due_at - now).total_seconds(),
            offset=format_offset(due_at - cutover.start),
        )
        for due_at, o in waiting[:limit]
    ]


def _open_incidents(tx: Transaction, cutover_id: int) -> list[IncidentLine] | None:
    rows = reporting.incidents_of(tx, cutover_id, unresolved_only=True)
    return [
        IncidentLine(
            id=row.id or 0,
            severity=row.severity,
            state=row.state,
            status=row.status,
            summary=row.summary,
            opened_at=row.opened_at,
            acked_by=row.acked_by,
        )
        for row in rows
    ]


def _escalations(tx: Transaction, cutover_id: int) -> list[EscalationLine] | None:
    rows = reporting.escalation_steps(tx, cutover_id, kinds=ESCALATION_KINDS)
    return [EscalationLine(row.at, row.kind, row.incident_id, row.level, row.detail) for row in rows]
