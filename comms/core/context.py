"""The data a template sees, built from the plan, T0, the audience and what triggered the send.

Only the keys a trigger really provides are present, so StrictUndefined catches a template
that uses, say, ``event.stage`` in a message that no stage event sends.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from comms.core.times import format_duration
from comms.core.unsubscribe import UNSUBSCRIBE_TAG
from comms.plan.audiences import Audience
from comms.plan.fields import Channel
from comms.plan.models import Message, Plan, Trigger

__all__ = [
    "SAMPLE_ESCALATION",
    "SAMPLE_INCIDENT",
    "SAMPLE_METRICS",
    "SAMPLE_START",
    "UTC_AUDIENCE",
    "audience_view",
    "build_context",
    "cutover_view",
    "relative",
    "sample_context",
    "sample_event",
    "sample_extra",
    "sample_targets",
    "send_view",
]

UTC_AUDIENCE: dict[str, str] = {
    "key": "status-page",
    "title": "Status page",
    "timezone": "UTC",
    "unsubscribe_url": "",
    "locale": "en",
}
"""The audience view of the public status page: one page for everyone, times in UTC."""


def cutover_view(plan: Plan, start: datetime, *, name: str | None = None) -> dict[str, Any]:
    """The ``cutover`` object of the context: names, window and the plan's facts."""
    spec = plan.cutover
    return {
        "name": name or spec.name,
        "title": spec.title,
        "start": start,
        "end": start + spec.window,
        "window": spec.window,
        "downtime_target": spec.downtime_target,
        "stages": list(spec.traffic_stages),
        "status_page_url": spec.status_page_url,
        "facts": dict(spec.facts),
    }


def audience_view(audience: Audience | None) -> dict[str, str]:
    """The ``audience`` object of the context (the status page's own view when None)."""
    if audience is None:
        return dict(UTC_AUDIENCE)
    view = {"key": audience.key, "title": audience.title, "timezone": audience.timezone}
    view["unsubscribe_url"] = UNSUBSCRIBE_TAG if audience.unsubscribe else ""
    view["locale"] = audience.locale or "en"
    return view


def relative(delta: timedelta) -> str:
    """A length of time as people say it, rounded to what matters: ``4 days 13 hours``, ``2 hours``, ``25 minutes``."""
    seconds = max(0, round(delta.total_seconds()))
    if seconds >= 86400:
        return format_duration(timedelta(hours=round(seconds / 3600)), style="prose", largest="d", smallest="h")
    if seconds >= 3600:
        return format_duration(timedelta(minutes=round(seconds / 60)), style="prose", largest="h", smallest="m")
    return format_duration(timedelta(minutes=max(1, round(seconds / 60))), style="prose", largest="m", smallest="m")


def send_view(
    plan: Plan,
    *,
    start: datetime,
    now: datetime,
    audiences: Sequence[str],
    channels: Sequence[Channel],
) -> dict[str, Any]:
    """The ``send`` object: what this send really does and when, computed at send time.

    ``reaches`` maps each audience of this send to the channels it is told on; ``statuspage`` says
    whether the status page is updated; ``starts_in`` / ``ends_in`` are relative ("4 days 13 hours"),
    None once T0 / the window's end has passed.
    """
    end = start + plan.cutover.window
    reaches: dict[str, list[str]] = {}
    for key in audiences:
        found = plan.audiences.get(key)
        if found is not None:
            reaches[key] = [c.value for c in channels if c in found.channels.kinds()]
    return {
        "now": now,
        "audiences": [key for key in audiences if key in plan.audiences],
        "channels": [c.value for c in channels],
        "reaches": reaches,
        "statuspage": any(Channel.STATUSPAGE.value in kinds for kinds in reaches.values()),
        "starts_in": relative(start - now) if now < start else None,
        "ends_in": relative(end - now) if now < end else None,
    }


def build_context(
    plan: Plan,
    *,
    start: datetime,
    message: Message,
    audience: Audience | None,
    cutover_name: str | None = None,
    due_at: datetime | None = None,
    sequence: int | None = None,
    total: int | None = None,
    event: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    now: datetime | None = None,
    audiences: Sequence[str] | None = None,
    channels: Sequence[Channel] | None = None,
) -> dict[str, Any]:
    """Assemble the whole template context for one render.

    ``now``, ``audiences`` and ``channels`` are the send's own (default: the due time and the message's).
    """
    context: dict[str, Any] = {
        "cutover": cutover_view(plan, start, name=cutover_name),
        "audience": audience_view(audience),
        "message": {"key": message.key, "title": message.title},
        "occurrence": {"due_at": due_at, "sequence": sequence, "total": total},
        "send": send_view(
            plan,
            start=start,
            now=now or due_at or start,
            audiences=message.audiences if audiences is None else audiences,
            channels=message.channels if channels is None else channels,
        ),
    }
    if event is not None:
        context["event"] = dict(event)
    if extra:
        context.update(extra)
    return context


SAMPLE_START = datetime(2026, 12, 5, 22, 0, tzinfo=UTC)
"""T0 used for validation renders and previews without --start."""


def sample_event(message: Message, plan: Plan) -> dict[str, Any] | None:
    """Representative event data for a message's trigger (None for time-based messages)."""
    trigger = message.event
    stages = list(plan.cutover.traffic_stages)
    stage = (message.stages or stages[1:2] or stages)[0]
    position = stages.index(stage) if stage in stages else 0
    samples: dict[Trigger, dict[str, Any]] = {
        Trigger.GO: {"decided_at": SAMPLE_START - timedelta(hours=2), "by": "Comms lead"},
        Trigger.NO_GO: {"reason": "Backup verification has not finished", "by": "Comms lead"},
        Trigger.STAGE: {
            "stage": stage,
            "previous_stage": stages[position - 1] if position > 0 else None,
            "next_stage": stages[position + 1] if position + 1 < len(stages) else None,
        },
        Trigger.COMPLETE: {"completed_at": SAMPLE_START + timedelta(hours=9)},
        Trigger.ROLLBACK: {"reason": "Error rate above 5 % at the 50 % stage", "stage": 50},
        Trigger.RESCHEDULE: {
            "reason": "Load test results need another review",
            "previous_start": SAMPLE_START - timedelta(days=7),
        },
        Trigger.CANCEL: {"reason": "The migration has been called off"},
    }
    return samples.get(trigger) if trigger else None


SAMPLE_METRICS: dict[str, Any] = {
    "deliveries_sent": 12840,
    "deliveries_total": 12852,
    "delivery_rate": 99.9,
    "on_time_rate": 98.7,
    "lateness_p95_seconds": 42.0,
    "dead": 3,
    "escalations": 1,
    "kpis": {"uptime": "99.95 %", "error_rate": "0.4 %", "p95_latency": "310 ms"},
}

SAMPLE_INCIDENT: dict[str, Any] = {
    "id": 7,
    "severity": "sev1",
    "summary": "Sign-in fails for some users after the 50 % traffic switch",
    "status": "investigating",
    "update": "We are rolling traffic back to the previous system.",
    "components": ["Authentication"],
    "opened_at": SAMPLE_START + timedelta(hours=6),
    "acked_by": "Dana (on-call)",
}

SAMPLE_ESCALATION: dict[str, Any] = {
    "level": 2,
    "reason": "Incident #7 (sev1) has not been acknowledged for 15 minutes",
    "incident": SAMPLE_INCIDENT,
}


def sample_extra(message: Message) -> dict[str, Any]:
    """Representative trigger-specific data beyond ``event`` (metrics, incident, escalation)."""
    extra: dict[str, Any] = {}
    if message.with_metrics:
        extra["metrics"] = SAMPLE_METRICS
    if message.event is Trigger.INCIDENT:
        extra["incident"] = SAMPLE_INCIDENT
    if message.event is Trigger.ESCALATION:
        extra["escalation"] = SAMPLE_ESCALATION
    if message.event is Trigger.ADHOC:
        extra["vars"] = {"summary": "Sample summary", "details": "Sample details"}
    return extra


def sample_context(
    plan: Plan,
    message: Message,
    audience: Audience | None,
    *,
    start: datetime = SAMPLE_START,
    variables: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A full context with representative data (the first recurrence of a recurring message)."""
    due_at = None
    if message.at is not None:
        due_at = start + message.at
    elif message.every is not None and message.start is not None:
        due_at = start + message.start
    extra = sample_extra(message)
    if variables:
        extra["vars"] = {**extra.get("vars", {}), **variables}
    audiences, channels = sample_targets(plan, message, severity=str(SAMPLE_INCIDENT["severity"]))
    return build_context(
        plan,
        start=start,
        message=message,
        audience=audience,
        due_at=due_at,
        sequence=1 if message.every else None,
        total=_recurrences(plan, message) if message.every else None,
        event=sample_event(message, plan),
        extra=extra,
        now=due_at or start + _SAMPLE_EVENT_TIMES.get(message.event or Trigger.TIME, timedelta(0)),
        audiences=audiences,
        channels=channels,
    )


_SAMPLE_EVENT_TIMES: dict[Trigger, timedelta] = {
    Trigger.GO: timedelta(hours=-2),
    Trigger.NO_GO: timedelta(hours=-2),
    Trigger.STAGE: timedelta(hours=5),
    Trigger.COMPLETE: timedelta(hours=9),
    Trigger.ROLLBACK: timedelta(hours=6),
    Trigger.RESCHEDULE: timedelta(days=-1),
    Trigger.CANCEL: timedelta(days=-1),
    Trigger.INCIDENT: timedelta(hours=6),
    Trigger.ESCALATION: timedelta(hours=6, minutes=15),
    Trigger.ADHOC: timedelta(days=-1),
}
"""When a sample send of an event-bound message happens, relative to T0 (the samples of ``sample_event``)."""


def sample_targets(plan: Plan, message: Message, *, severity: str) -> tuple[tuple[str, ...], tuple[Channel, ...]]:
    """The audiences and channels a sample send reaches: an incident message's come from its severity."""
    if message.event is Trigger.INCIDENT and plan.escalation is not None:
        policy = plan.escalation.severities.get(severity)  # type: ignore[call-overload]
        if policy is not None:
            return policy.audiences, policy.channels
    return message.audiences, message.channels


def _recurrences(plan: Plan, message: Message) -> int:
    assert message.every is not None and message.start is not None
    until = plan.cutover.window if message.until == "window_end" else message.until
    assert isinstance(until, timedelta)
    count, offset = 0, message.start
    while offset < until:
        count, offset = count + 1, offset + message.every
    return count
