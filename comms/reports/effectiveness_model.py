"""The shape of ``comms report``: the effectiveness report as plain data, and how it reads as JSON and text."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from comms.core.times import format_duration, iso_utc
from comms.reports.metrics import ON_TIME_SECONDS, OccurrenceLateness

__all__ = [
    "DeadLetter",
    "EffectivenessReport",
    "FailureEscalation",
    "FailureReason",
    "IncidentEscalation",
    "RateLine",
    "RetryLine",
    "TimelinePoint",
    "Timeliness",
    "human_seconds",
]


@dataclass(frozen=True)
class RateLine:
    """Deliveries of one channel or audience by outcome, and the share sent."""

    key: str
    total: int
    sent: int
    dead: int
    uncertain: int
    missed: int
    open: int
    cancelled: int
    rate: float
    """Sent over all deliveries but cancelled ones, in percent."""


@dataclass(frozen=True)
class TimelinePoint:
    """One occurrence for one audience: when it was planned and when it went out."""

    occurrence: str
    message: str
    audience: str
    state: str
    planned_at: datetime
    first_sent_at: datetime | None
    last_sent_at: datetime | None
    sent: int
    total: int
    lateness_seconds: float | None
    """First send minus planned time (never negative); None when nothing was sent."""


@dataclass(frozen=True)
class Timeliness:
    """On-time rate and lateness over the occurrences that came due."""

    due: int
    on_time: int
    late: int
    not_sent: int
    on_time_rate: float
    median_seconds: float
    p95_seconds: float
    max_seconds: float
    threshold_seconds: float = ON_TIME_SECONDS


@dataclass(frozen=True)
class FailureReason:
    """Deliveries that share a last error, per channel and state."""

    reason: str
    channel: str
    state: str
    count: int


@dataclass(frozen=True)
class RetryLine:
    """Provider requests of one channel by outcome, and deliveries that needed more than one try."""

    channel: str
    requests: int
    sent: int
    transient: int
    permanent: int
    retried_deliveries: int


@dataclass(frozen=True)
class DeadLetter:
    """A delivery that gave up."""

    delivery_id: int
    occurrence: str
    audience: str
    channel: str
    recipient: str
    attempts: int
    error: str | None


@dataclass(frozen=True)
class IncidentEscalation:
    """An incident, how far it escalated and how long it took someone to acknowledge it."""

    incident_id: int
    severity: str
    summary: str
    opened_at: datetime
    acked_by: str | None
    acked_at: datetime | None
    resolved_at: datetime | None
    notices: int
    highest_level: int | None
    ack_seconds: float | None
    """Time to acknowledge; None while unacknowledged."""


@dataclass(frozen=True)
class FailureEscalation:
    """A failed or missed message escalated to the delivery_failures contacts."""

    at: datetime
    kind: str
    detail: str


@dataclass(frozen=True)
class EffectivenessReport:
    """Everything ``comms report`` shows, as data."""

    cutover: str
    state: str
    stage: int | None
    start: datetime
    generated_at: datetime
    metrics: dict[str, Any]
    by_channel: list[RateLine]
    by_audience: list[RateLine]
    timeliness: Timeliness
    lateness: list[OccurrenceLateness]
    timeline: list[TimelinePoint]
    failures: list[FailureReason]
    failure_groups: int
    retries: list[RetryLine]
    dead_letters: list[DeadLetter]
    dead_total: int
    incidents: list[IncidentEscalation] | None
    failure_escalations: list[FailureEscalation] | None
    provider_outcomes: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per audience, deliveries by what the provider said of them (SendGrid's Event Webhook outcomes)."""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (times in ISO-8601 UTC)."""
        data: dict[str, Any] = _jsonable(asdict(self))
        data["lateness"] = [
            {**_jsonable(asdict(item)), "lateness_seconds": item.seconds, "on_time": item.on_time}
            for item in self.lateness
        ]
        return data


def _jsonable(value: Any) -> Any:
    """``value`` with every datetime as ISO-8601 UTC text."""
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value


def human_seconds(value: float | None) -> str:
    """``42 s`` under two minutes, ``2h5m`` above, ``-`` for nothing."""
    if value is None:
        return "-"
    return f"{value:.0f} s" if value < 120 else format_duration(timedelta(seconds=round(value)))
