"""The data a template sees, built from the plan, T0, the audience and what triggered the send.

Only the keys a trigger really provides are present, so StrictUndefined catches a template
that uses, say, ``event.stage`` in a message that no stage event sends.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from comms.core.unsubscribe import UNSUBSCRIBE_TAG
from comms.plan.models import Audience, Message, Plan, Trigger

UTC_AUDIENCE: dict[str, str] = {
    "key": "status-page", "title": "Status page", "timezone": "UTC", "unsubscribe_url": "", "locale": "en"
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
) -> dict[str, Any]:
    """Assemble the whole template context for one render."""
    context: dict[str, Any] = {
        "cutover": cutover_view(plan, start, name=cutover_name),
        "audience": audience_view(audience),
        "message": {"key": message.key, "title": message.title},
        "occurrence": {"due_at": due_at, "sequence": sequence, "total": total},
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
    )


def _recurrences(plan: Plan, message: Message) -> int:
    assert message.every is not None and message.start is not None
    until = plan.cutover.window if message.until == "window_end" else message.until
    assert isinstance(until, timedelta)
    count, offset = 0, message.start
    while offset < until:
        count, offset = count + 1, offset + message.every
    return count
