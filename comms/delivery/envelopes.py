"""Building the Envelope of a claimed batch: recipients, threading, calendar and status-page intent."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlmodel import Session

from comms.channels.base import Envelope, MaintenanceWindow, Receipt, Recipient, StatuspageIntent
from comms.core import jsoncodec
from comms.core.content import Content
from comms.plan.models import Channel, Message, Plan
from comms.store import repository as repo
from comms.store.tables import CutoverRow, OccurrenceRow


class DeliveryTarget(Protocol):
    """The columns of a claimed delivery an envelope needs (a DeliveryRow or a selected row)."""

    @property
    def recipient(self) -> str: ...
    @property
    def recipient_name(self) -> str | None: ...
    @property
    def idempotency_key(self) -> str: ...
    @property
    def channel(self) -> str: ...
    @property
    def audience(self) -> str: ...


@dataclass(frozen=True)
class ThreadSlot:
    """Where a provider reference of this send is kept (Slack thread root, status-page incident)."""

    channel: str
    scope: str
    target: str


def thread_scope(channel: Channel, message: Message, occurrence: OccurrenceRow) -> str:
    """The scope of the reference a send belongs to: one Slack root, the maintenance, or an incident."""
    if channel is Channel.SLACK:
        return f"incident:{occurrence.incident_id}" if occurrence.incident_id else "root"
    if occurrence.incident_id is not None:
        return f"incident:{occurrence.incident_id}"
    if message.statuspage is not None and message.statuspage.is_realtime:
        return f"realtime:{message.key}"
    return "maintenance"


def maintenance_window(plan: Plan, cutover: CutoverRow) -> MaintenanceWindow:
    """The cutover's maintenance window, for calendar invitations and the scheduled maintenance."""
    return MaintenanceWindow(
        uid=f"{cutover.name}@comms",
        title=cutover_title(plan),
        description=f"{plan.cutover.title}. Live status: {plan.cutover.status_page_url}",
        start=cutover.start,
        end=cutover.start + plan.cutover.window,
    )


def cutover_title(plan: Plan) -> str:
    """The maintenance's human title."""
    return f"Maintenance: {plan.cutover.title}"


def build_envelope(
    session: Session,
    plan: Plan,
    cutover: CutoverRow,
    occurrence: OccurrenceRow,
    content: Content,
    rows: Sequence[DeliveryTarget],
) -> tuple[Envelope, ThreadSlot | None]:
    """The envelope of a claimed batch, and the slot its receipt's reference is stored under."""
    assert cutover.id is not None
    message = plan.message(occurrence.message)
    channel = Channel(rows[0].channel)
    recipients = tuple(Recipient(r.recipient, r.idempotency_key, r.recipient_name) for r in rows)
    slot: ThreadSlot | None = None
    thread_ref: str | None = None
    intent: StatuspageIntent | None = None
    if channel is not Channel.EMAIL:
        slot = ThreadSlot(channel.value, thread_scope(channel, message, occurrence), rows[0].recipient)
        thread_ref = repo.thread_ref(
            session, cutover_id=cutover.id, channel=slot.channel, scope=slot.scope, target=slot.target
        )
    if channel is Channel.STATUSPAGE:
        action = message.statuspage
        assert action is not None
        settings = plan.schedule.statuspage
        override = (jsoncodec.loads(occurrence.context_json) or {}).get("statuspage_override") or {}
        intent = StatuspageIntent(
            status=override.get("status", action.status),
            incident_id=thread_ref,
            impact=override.get("impact", action.impact),
            component_status=override.get("component_status", action.component_status),
            component_ids=settings.components,
            window=maintenance_window(plan, cutover) if action.status == "scheduled" else None,
            remind_prior=settings.remind_prior,
            auto_in_progress=settings.auto_in_progress,
            auto_completed=settings.auto_completed,
        )
        thread_ref = None
    envelope = Envelope(
        cutover=cutover.name,
        message=occurrence.message,
        occurrence=occurrence.key,
        audience=rows[0].audience,
        content=content,
        recipients=recipients,
        thread_ref=thread_ref,
        broadcast=message.broadcast,
        calendar=maintenance_window(plan, cutover) if message.calendar_invite and channel is Channel.EMAIL else None,
        statuspage=intent,
    )
    return envelope, slot


def remember_ref(session: Session, cutover_id: int, slot: ThreadSlot | None, receipt: Receipt) -> None:
    """Keep the provider reference a send returned (a Slack thread root, a status-page incident) for later sends."""
    if slot is not None and receipt.thread_ref is not None:
        repo.remember_thread(
            session, cutover_id=cutover_id, channel=slot.channel, scope=slot.scope, target=slot.target,
            ref=receipt.thread_ref,
        )
