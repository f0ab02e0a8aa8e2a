"""Incident services: open, update, acknowledge, resolve and list incidents of a cutover.

Each service records the incident's new state and an escalation step, and queues the matching
message (``incident-opened``, ``-updated``, ``-acknowledged``, ``-resolved``) due now, with the
occurrence's ``incident_id`` set so Slack threads every post of an incident under its first one
per channel and the status page updates the same incident. The caller dispatches the returned
occurrence ids (``Dispatcher.dispatch_now``). Escalation itself runs in the worker's tick
(``comms.services.escalations.EscalationTimers``); opening also queues the levels due at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from comms.core import jsoncodec
from comms.core.escalation import decide_escalation
from comms.core.times import iso_utc
from comms.errors import InputError, NotFoundError, StateError
from comms.plan.cache import PlanCache
from comms.plan.fields import Channel
from comms.plan.models import Message, Plan, SeverityPolicy, Trigger
from comms.services.escalations import add_occurrence, incident_context, notify_due_levels, severity_policy
from comms.store import incidents as incident_store
from comms.store import repository as repo
from comms.store.engine import Engine
from comms.store.incident_tables import IncidentRow
from comms.store.transaction import Transaction, transaction

__all__ = [
    "FIRST_UPDATE",
    "IncidentOutcome",
    "IncidentView",
    "StepView",
    "UPDATE_STATUSES",
    "acknowledge_incident",
    "list_incidents",
    "open_incident",
    "resolve_incident",
    "update_incident",
]

OPENED, UPDATED, ACKNOWLEDGED, RESOLVED = (
    "incident-opened",
    "incident-updated",
    "incident-acknowledged",
    "incident-resolved",
)
UPDATE_STATUSES = ("identified", "monitoring")
FIRST_UPDATE = "We are investigating."
"""The incident's ``update`` until someone posts one (templates print it as the latest news)."""


@dataclass(frozen=True)
class IncidentOutcome:
    """What a service did: the incident's state and the occurrences to dispatch now."""

    incident_id: int
    state: str
    status: str
    occurrences: list[int]


@dataclass(frozen=True)
class StepView:
    """One escalation step as listed."""

    kind: str
    at: datetime
    detail: str
    level: int | None = None
    repeat: int | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "kind": self.kind,
            "at": iso_utc(self.at),
            "level": self.level,
            "repeat": self.repeat,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class IncidentView:
    """An incident as listed: its state, who acknowledged it, the next escalation and its history."""

    id: int
    cutover: str
    severity: str
    state: str
    status: str
    summary: str
    components: list[str]
    opened_at: datetime
    acked_by: str | None
    acked_at: datetime | None
    resolved_at: datetime | None
    next_escalation_at: datetime | None
    history: list[StepView] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (times in ISO-8601 UTC)."""
        return {
            "id": self.id,
            "cutover": self.cutover,
            "severity": self.severity,
            "state": self.state,
            "status": self.status,
            "summary": self.summary,
            "components": self.components,
            "opened_at": iso_utc(self.opened_at),
            "acked_by": self.acked_by,
            "acked_at": iso_utc(self.acked_at) if self.acked_at else None,
            "resolved_at": iso_utc(self.resolved_at) if self.resolved_at else None,
            "next_escalation_at": iso_utc(self.next_escalation_at) if self.next_escalation_at else None,
            "history": [step.to_json() for step in self.history],
        }


def open_incident(
    engine: Engine,
    plans: PlanCache,
    *,
    severity: str,
    summary: str,
    components: Sequence[str] = (),
    update: str | None = None,
    cutover_name: str | None = None,
    now: datetime,
    by: str | None = None,
) -> IncidentOutcome:
    """Record a new incident, queue ``incident-opened`` and the escalation levels due at once (``by``: who, for the history)."""
    summary = _required(summary, "--summary", "say what is wrong; every audience of the severity reads it")
    first_update = (update or "").strip() or FIRST_UPDATE
    names = [name.strip() for name in components if name.strip()]
    with transaction(engine) as tx:
        cutover = repo.find_cutover(tx, cutover_name)
        assert cutover.id is not None
        plan, _ = plans.get(cutover.plan_dir)
        policy = _policy(plan, severity)
        message = _message(plan, OPENED)
        on_statuspage = policy.statuspage_impact is not None and Channel.STATUSPAGE in policy.channels
        incident = incident_store.add_incident(
            tx,
            cutover_id=cutover.id,
            severity=severity,
            summary=summary,
            components_json=jsoncodec.dumps(names),
            on_statuspage=on_statuspage,
            latest_update=first_update,
            now=now,
        )
        override = {
            "status": message.statuspage.status if message.statuspage else "investigating",
            "impact": policy.statuspage_impact,
            "component_status": policy.component_status,
        }
        fired = _announce(
            tx,
            plan,
            policy,
            incident,
            message,
            "opened",
            _by(f"{severity} opened: {summary}", by),
            now=now,
            statuspage_override=override,
        )
        tx.commit()
        assert incident.id is not None
        incident_id = incident.id
    notices = notify_due_levels(engine, plans, now=now, incident_id=incident_id)
    return IncidentOutcome(incident_id, "open", "investigating", fired + notices)


def update_incident(
    engine: Engine,
    plans: PlanCache,
    incident_id: int,
    *,
    status: str,
    message: str,
    now: datetime,
    by: str | None = None,
) -> IncidentOutcome:
    """Post an update (identified, monitoring) to the incident's audiences, in its Slack threads and status-page incident."""
    if status not in UPDATE_STATUSES:
        raise InputError(
            f"--status: {status!r} is not an update status (choose {', '.join(UPDATE_STATUSES)}; "
            "use 'comms incident resolve' to resolve)"
        )
    text = _required(message, "--message", "say what changed")
    with transaction(engine) as tx:
        incident, plan, policy = _load(tx, plans, incident_id)
        if incident.state == "resolved":
            raise StateError(
                f"incident #{incident_id} was resolved at {_when(incident.resolved_at)}; "
                "open a new one with 'comms incident open' if the problem is back"
            )
        incident_store.record_incident_update(tx, incident, status=status, update=text, now=now)
        fired = _announce(
            tx,
            plan,
            policy,
            incident,
            _message(plan, UPDATED),
            "updated",
            _by(f"{status}: {text}", by),
            now=now,
            statuspage_override={"status": status},
        )
        tx.commit()
        return IncidentOutcome(incident_id, incident.state, incident.status, fired)


def acknowledge_incident(
    engine: Engine, plans: PlanCache, incident_id: int, *, by: str, now: datetime
) -> IncidentOutcome:
    """Record who acknowledged the incident: escalation stops, and the acknowledgement is announced."""
    who = _required(by, "--by", "name who takes the incident")
    with transaction(engine) as tx:
        incident, plan, policy = _load(tx, plans, incident_id)
        if incident.state == "resolved":
            raise StateError(f"incident #{incident_id} is already resolved; there is nothing to acknowledge")
        if incident.acked_at is not None:
            raise StateError(
                f"incident #{incident_id} was already acknowledged by {incident.acked_by} at {_when(incident.acked_at)}"
            )
        incident_store.record_acknowledgement(tx, incident, by=who, now=now)
        fired = _announce(
            tx, plan, policy, incident, _message(plan, ACKNOWLEDGED), "acked", f"acknowledged by {who}", now=now
        )
        tx.commit()
        return IncidentOutcome(incident_id, incident.state, incident.status, fired)


def resolve_incident(
    engine: Engine, plans: PlanCache, incident_id: int, *, message: str, now: datetime, by: str | None = None
) -> IncidentOutcome:
    """Resolve the incident: escalation stops, the resolution goes out and the status-page incident closes."""
    text = _required(message, "--message", "say what fixed it")
    with transaction(engine) as tx:
        incident, plan, policy = _load(tx, plans, incident_id)
        if incident.state == "resolved":
            raise StateError(f"incident #{incident_id} was already resolved at {_when(incident.resolved_at)}")
        incident_store.record_resolution(tx, incident, update=text, now=now)
        fired = _announce(tx, plan, policy, incident, _message(plan, RESOLVED), "resolved", _by(text, by), now=now)
        tx.commit()
        return IncidentOutcome(incident_id, incident.state, incident.status, fired)


def list_incidents(
    engine: Engine, plans: PlanCache, *, now: datetime, cutover_name: str | None = None
) -> list[IncidentView]:
    """Every incident (of one cutover when named), oldest first, with its history and next escalation."""
    views: list[IncidentView] = []
    for history in incident_store.incident_histories(engine, cutover_name=cutover_name):
        incident = history.incident
        assert incident.id is not None
        plan, _ = plans.get(history.plan_dir)
        policy = severity_policy(plan, incident.severity)
        next_at = None
        if policy is not None:
            next_at = decide_escalation(
                policy,
                opened_at=incident.opened_at,
                acknowledged=incident.state != "open",
                notified=history.notified,
                now=now,
            ).next_at
        views.append(
            IncidentView(
                id=incident.id,
                cutover=history.cutover,
                severity=incident.severity,
                state=incident.state,
                status=incident.status,
                summary=incident.summary,
                components=list(jsoncodec.loads(incident.components_json) or []),
                opened_at=incident.opened_at,
                acked_by=incident.acked_by,
                acked_at=incident.acked_at,
                resolved_at=incident.resolved_at,
                next_escalation_at=next_at,
                history=[StepView(s.kind, s.at, s.detail, s.level, s.repeat) for s in history.steps],
            )
        )
    return views


# -- helpers ------------------------------------------------------------------------------------


def _by(detail: str, by: str | None) -> str:
    """A history step's detail, naming who took the step when known."""
    return f"{detail} (by {by.strip()})" if by and by.strip() else detail


def _when(instant: datetime | None) -> str:
    return iso_utc(instant) if instant is not None else "an unknown time"


def _required(value: str, option: str, hint: str) -> str:
    text = value.strip()
    if not text:
        raise InputError(f"{option}: must not be empty ({hint})")
    return text


def _policy(plan: Plan, severity: str) -> SeverityPolicy:
    if plan.escalation is None:
        raise InputError("--severity: the plan has no schedules/escalation.yaml, so no severity is defined")
    policy = severity_policy(plan, severity)
    if policy is None:
        known = ", ".join(sorted(plan.escalation.severities))
        raise InputError(f"--severity: unknown severity {severity!r} (the plan defines {known})")
    return policy


def _message(plan: Plan, key: str) -> Message:
    try:
        return plan.message(key)
    except KeyError:
        raise InputError(
            f"the plan has no message '{key}' in schedules/cutover.yaml; add it to announce incidents"
        ) from None


def _load(tx: Transaction, plans: PlanCache, incident_id: int) -> tuple[IncidentRow, Plan, SeverityPolicy]:
    """The incident (its row locked for this change), its plan and its severity's policy."""
    found = incident_store.incident_with_cutover(tx, incident_id, for_update=True)
    if found is None:
        raise NotFoundError(f"no incident #{incident_id}; see 'comms incident list'")
    incident, cutover = found
    plan, _ = plans.get(cutover.plan_dir)
    return incident, plan, _policy(plan, incident.severity)


def _announce(
    tx: Transaction,
    plan: Plan,
    policy: SeverityPolicy,
    incident: IncidentRow,
    message: Message,
    kind: str,
    detail: str,
    *,
    now: datetime,
    statuspage_override: dict[str, Any] | None = None,
) -> list[int]:
    """Record the step and queue the message to the severity's audiences the message is for; return its id."""
    assert incident.id is not None
    step_id = incident_store.add_step(
        tx, cutover_id=incident.cutover_id, incident_id=incident.id, kind=kind, at=now, detail=detail
    )
    audiences = [name for name in policy.audiences if name in message.audiences]
    channels = [
        c for c in message.channels if c in policy.channels and (c is not Channel.STATUSPAGE or incident.on_statuspage)
    ]
    if not audiences or not channels:
        return []
    context: dict[str, Any] = {"incident": incident_context(incident)}
    if statuspage_override and Channel.STATUSPAGE in channels:
        context["statuspage_override"] = statuspage_override
    occurrence_id = add_occurrence(
        tx,
        cutover_id=incident.cutover_id,
        key=f"incident:{incident.id}/{kind}/{step_id}",
        message=message,
        trigger=Trigger.INCIDENT,
        audiences=audiences,
        channels=channels,
        context=context,
        now=now,
        incident_id=incident.id,
    )
    incident_store.link_step(tx, step_id, occurrence_id)
    return [occurrence_id]
