"""The store side of escalation: level notices for open incidents, and failed deliveries escalated.

Two hooks plug into the Dispatcher (wired in ``comms.bootstrap``):

- ``EscalationTimers`` runs at the start of every tick. It reads each open incident and the
  notices already recorded, asks ``comms.core.escalation.decide_escalation`` what is due and writes
  an ``escalation-notice`` occurrence per due level. The timers are rows, not threads: a
  restarted worker resumes them from the database, on time.
- ``DeliveryFailureEscalation`` is the ``on_failure`` hook: a dead delivery or a missed message
  sends one notice to the plan's ``delivery_failures`` contacts, and never escalates the failure
  of an escalation notice (that is logged, so a broken channel cannot loop).

Both claim a UNIQUE escalation step (INSERT OR IGNORE) before writing the notice, in the same
transaction: whoever claims it first sends the notice; a second tick or process does nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from comms.clock import Clock
from comms.core import jsoncodec
from comms.core.content import ack_marks
from comms.core.escalation import DueNotice, decide_escalation, escalation_reason
from comms.core.times import format_duration
from comms.plan.cache import PlanCache
from comms.plan.fields import Channel
from comms.plan.models import EscalationLevel, Message, Plan, SeverityPolicy, Trigger
from comms.store import incidents as incident_store
from comms.store import occurrences as occurrence_store
from comms.store.engine import Engine
from comms.store.incident_tables import IncidentRow
from comms.store.occurrences import NewOccurrence
from comms.store.tables import CutoverRow, OccurrenceRow
from comms.store.transaction import Transaction, transaction

__all__ = [
    "DeliveryFailureEscalation",
    "ESCALATION_MESSAGE",
    "EscalationTimers",
    "add_occurrence",
    "due_now",
    "escalate_failure",
    "incident_context",
    "notice_targets",
    "notify_due_levels",
    "severity_policy",
]

log = logging.getLogger(__name__)

ESCALATION_MESSAGE = "escalation-notice"
"""The plan message every escalation notice is sent as."""


def incident_context(incident: IncidentRow) -> dict[str, Any]:
    """The ``incident`` object templates see (a snapshot taken when the message is queued)."""
    return {
        "id": incident.id,
        "severity": incident.severity,
        "summary": incident.summary,
        "status": incident.status,
        "update": incident.latest_update,
        "components": list(jsoncodec.loads(incident.components_json) or []),
        "opened_at": incident.opened_at,
        "acked_by": incident.acked_by,
    }


def add_occurrence(
    tx: Transaction,
    *,
    cutover_id: int,
    key: str,
    message: Message,
    trigger: Trigger,
    audiences: Sequence[str],
    channels: Sequence[Channel],
    context: dict[str, Any],
    now: datetime,
    incident_id: int | None = None,
) -> int:
    """Queue an occurrence due now (the dispatcher's next tick, or ``dispatch_now``, sends it); return its id."""
    occurrence = due_now(key, message, trigger, audiences, channels, context, now=now, incident_id=incident_id)
    return occurrence_store.add_occurrence(tx, cutover_id, occurrence, now=now)


def due_now(
    key: str,
    message: Message,
    trigger: Trigger,
    audiences: Sequence[str],
    channels: Sequence[Channel],
    context: dict[str, Any],
    *,
    now: datetime,
    incident_id: int | None = None,
) -> NewOccurrence:
    """An occurrence of ``message`` due now, with its context as the templates will see it."""
    return NewOccurrence(
        key=key,
        message=message.key,
        trigger=trigger.value,
        due_at=now,
        max_lateness_seconds=int(message.max_lateness.total_seconds()),
        audiences=tuple(audiences),
        channels=tuple(c.value for c in channels),
        context_json=jsoncodec.dumps(context),
        incident_id=incident_id,
    )


def severity_policy(plan: Plan, severity: str) -> SeverityPolicy | None:
    """The plan's policy for a severity, or None when the plan has no escalation matrix or no such severity."""
    if plan.escalation is None:
        return None
    return next((policy for name, policy in plan.escalation.severities.items() if name == severity), None)


def _escalation_message(plan: Plan) -> Message | None:
    try:
        return plan.message(ESCALATION_MESSAGE)
    except KeyError:
        return None


def notice_targets(
    plan: Plan, level: EscalationLevel, message: Message
) -> tuple[list[str], list[Channel], dict[str, list[str]]]:
    """Audiences, channels and direct contacts of a level's notice; direct ones the audiences already reach are dropped."""
    channels: list[Channel] = [c for c in level.channels if c in message.channels and c is not Channel.STATUSPAGE]
    audiences = [name for name in level.notify if name in plan.audiences]
    reached_emails: set[str] = set()
    reached_slack: set[str] = set()
    for name in audiences:
        kinds = plan.audiences[name].channels
        if kinds.email is not None:
            reached_emails.update(address.lower() for address in kinds.email.recipients)
        if kinds.slack is not None:
            reached_slack.update(kinds.slack.channels)
    direct: dict[str, list[str]] = {}
    if Channel.EMAIL in channels:
        emails = [e for e in dict.fromkeys(level.emails) if e.lower() not in reached_emails]
        if emails:
            direct[Channel.EMAIL.value] = emails
    if Channel.SLACK in channels:
        targets = [s for s in dict.fromkeys(level.slack) if s not in reached_slack]
        if targets:
            direct[Channel.SLACK.value] = targets
    return audiences, channels, direct


# -- level notices of open incidents ------------------------------------------------------------


class EscalationTimers:
    """A Dispatcher tick hook: notify every level of every open incident whose time has come."""

    def __init__(self, plans: PlanCache) -> None:
        self.plans = plans

    def __call__(self, engine: Engine, now: datetime) -> None:
        notify_due_levels(engine, self.plans, now=now)


def notify_due_levels(engine: Engine, plans: PlanCache, *, now: datetime, incident_id: int | None = None) -> list[int]:
    """Queue the escalation notices due at ``now`` (for one incident, or all open ones); return their ids."""
    work: list[tuple[int, int, Plan, SeverityPolicy, DueNotice]] = []
    for found in incident_store.unacknowledged_incidents(engine, incident_id=incident_id):
        incident = found.incident
        assert incident.id is not None
        plan, _ = plans.get(found.plan_dir)
        policy = severity_policy(plan, incident.severity)
        if policy is None:
            log.error("incident #%s: the plan has no escalation policy for %s", incident.id, incident.severity)
            continue
        decision = decide_escalation(
            policy, opened_at=incident.opened_at, acknowledged=False, notified=found.notified, now=now
        )
        work.extend((incident.id, incident.cutover_id, plan, policy, notice) for notice in decision.due)
    created: list[int] = []
    for incident_key, cutover_id, plan, policy, notice in work:
        occurrence_id = _notify_level(engine, plan, policy, incident_key, cutover_id, notice, now=now)
        if occurrence_id is not None:
            created.append(occurrence_id)
    return created


def _notify_level(
    engine: Engine,
    plan: Plan,
    policy: SeverityPolicy,
    incident_id: int,
    cutover_id: int,
    notice: DueNotice,
    *,
    now: datetime,
) -> int | None:
    message = _escalation_message(plan)
    if message is None:
        log.error(
            "incident #%s: the plan has no '%s' message; level %s not sent",
            incident_id,
            ESCALATION_MESSAGE,
            notice.level,
        )
        return None
    level = policy.levels[notice.level - 1]
    with transaction(engine) as tx:
        incident = incident_store.get_incident(tx, incident_id)
        assert incident is not None
        reason = escalation_reason(
            incident_id=incident_id,
            severity=incident.severity,
            opened_at=incident.opened_at,
            notice=notice,
            levels=len(policy.levels),
        )
        step_id = incident_store.claim_step(
            tx,
            cutover_id=cutover_id,
            incident_id=incident_id,
            kind="notified",
            level=notice.level,
            repeat=notice.repeat,
            at=now,
            detail=reason,
        )
        if step_id is None:
            tx.rollback()
            return None
        incident = incident_store.reread_incident(tx, incident)
        if incident.state != "open":
            tx.rollback()
            return None
        audiences, channels, direct = notice_targets(plan, level, message)
        view = incident_context(incident)
        context: dict[str, Any] = {
            "escalation": {
                "level": notice.level,
                "repeat": notice.repeat,
                "reason": reason,
                "incident": view,
                "ack": ack_marks(incident_id, notice.level),
            },
            "incident": view,
        }
        if direct:
            context["direct"] = direct
        key = f"escalation:incident-{incident_id}/level-{notice.level}"
        occurrence_id = add_occurrence(
            tx,
            cutover_id=cutover_id,
            key=key + (f"/repeat-{notice.repeat}" if notice.repeat else ""),
            message=message,
            trigger=Trigger.ESCALATION,
            audiences=audiences,
            channels=channels,
            context=context,
            now=now,
            incident_id=incident_id,
        )
        incident_store.link_step(tx, step_id, occurrence_id)
        tx.commit()
        log.info("incident #%s: level %s notified (%s)", incident_id, notice.level, reason)
        return occurrence_id


# -- automatic escalation of failed deliveries --------------------------------------------------


class DeliveryFailureEscalation:
    """The Dispatcher's ``on_failure`` hook: one notice to the delivery_failures contacts per failed occurrence."""

    def __init__(self, plans: PlanCache, *, clock: Clock) -> None:
        self.plans = plans
        self.clock = clock

    def __call__(self, tx: Transaction, cutover: CutoverRow, occurrence: OccurrenceRow, reason: str) -> None:
        """Escalate inside the dispatcher's transaction, so the failure and its escalation commit together.

        An error propagates: the dispatcher then records the failure alone and logs the lost escalation.
        """
        escalate_failure(tx, self.plans, cutover, occurrence, reason, now=self.clock())


def escalate_failure(
    tx: Transaction,
    plans: PlanCache,
    cutover: CutoverRow,
    occurrence: OccurrenceRow,
    reason: str,
    *,
    now: datetime,
    summary: str | None = None,
) -> int | None:
    """Record a failed occurrence and queue its notice (once); return the notice's id when one was queued.

    ``summary`` replaces the one-occurrence text when one notice stands for several (messages accepted
    as missed at schedule time). The caller commits. A failed escalation notice is recorded and
    logged, never escalated again.
    """
    assert cutover.id is not None and occurrence.id is not None
    kind = "missed" if reason == "missed" else "delivery_failure"
    plan, _ = plans.get(cutover.plan_dir)
    contacts = plan.escalation.delivery_failures if plan.escalation else None
    message = _escalation_message(plan)
    is_notice = occurrence.trigger == Trigger.ESCALATION.value or occurrence.message == ESCALATION_MESSAGE
    what = summary or _failure_text(occurrence, reason, missed=kind == "missed")
    detail = what
    if is_notice:
        detail += "; an escalation notice that fails is logged, not escalated again"
    elif contacts is None or message is None:
        detail += "; the plan names no delivery_failures contacts (or no escalation-notice message)"
    step_id = incident_store.claim_step(
        tx,
        cutover_id=cutover.id,
        incident_id=occurrence.incident_id,
        kind=kind,
        occurrence_id=occurrence.id,
        at=now,
        detail=detail,
    )
    if step_id is None:
        return None
    if is_notice or contacts is None or message is None:
        log.error("%s", detail)
        return None
    key = f"escalation:delivery-failure/{occurrence.id}"
    if occurrence_store.occurrence_id_by_key(tx, cutover.id, key) is not None:
        return None
    incident = incident_store.get_incident(tx, occurrence.incident_id) if occurrence.incident_id is not None else None
    view = incident_context(incident) if incident is not None else _failure_view(occurrence, kind, now=now)
    context: dict[str, Any] = {
        "escalation": {
            "level": 1,
            "repeat": 0,
            "kind": kind,
            "reason": what,
            "message": occurrence.message,
            "occurrence": occurrence.key,
            "incident": view,
        },
    }
    if incident is not None:
        context["incident"] = view
    audiences, channels, direct = notice_targets(plan, contacts, message)
    if direct:
        context["direct"] = direct
    notice_id = add_occurrence(
        tx,
        cutover_id=cutover.id,
        key=key,
        message=message,
        trigger=Trigger.ESCALATION,
        audiences=audiences,
        channels=channels,
        context=context,
        now=now,
    )
    incident_store.link_step(tx, step_id, notice_id)
    log.warning("escalated to the delivery_failures contacts: %s", what)
    return notice_id


def _failure_view(occurrence: OccurrenceRow, kind: str, *, now: datetime) -> dict[str, Any]:
    """The failure in the shape of an incident, for notice templates written for incidents.

    ``escalation.kind`` (delivery_failure, missed) tells a template that wants to word it apart.
    """
    missed = kind == "missed"
    return {
        "id": f"delivery-{occurrence.id}",
        "severity": "delivery",
        "summary": f"'{occurrence.message}' " + ("was not sent on time" if missed else "could not be delivered"),
        "status": "investigating",
        "update": (
            "The message was not sent; send it with 'comms send' if it still matters."
            if missed
            else "Fix the cause, then re-send with 'comms retry --dead' (see 'comms status')."
        ),
        "components": [occurrence.message],
        "opened_at": now,
        "acked_by": None,
    }


def _failure_text(occurrence: OccurrenceRow, reason: str, *, missed: bool) -> str:
    if missed:
        late = format_duration(timedelta(seconds=occurrence.max_lateness_seconds))
        return f"'{occurrence.message}' ({occurrence.key}) was not sent: it was more than {late} past its due time"
    return f"'{occurrence.message}' ({occurrence.key}) could not be delivered: {reason}"
