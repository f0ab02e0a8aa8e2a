"""Building the Envelope of a claimed batch: recipients, threading, calendar and status-page intent."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from comms.channels.base import Envelope, EnvelopeFacts, MaintenanceWindow, Receipt, Recipient
from comms.channels.registry import channel_spec
from comms.core import jsoncodec
from comms.core.content import Content
from comms.plan.fields import Channel
from comms.plan.models import Message, Plan
from comms.store import repository as repo
from comms.store.tables import CutoverRow, OccurrenceRow
from comms.store.transaction import Transaction

__all__ = [
    "DeliveryTarget",
    "ThreadSlot",
    "WINDOW_CHANGES",
    "build_envelope",
    "cutover_title",
    "maintenance_window",
    "remember_ref",
    "thread_scope",
]


class DeliveryTarget(Protocol):
    """The columns of a claimed delivery an envelope needs (a DeliveryRow or a selected row)."""

    @property
    def id(self) -> int | None: ...
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


def thread_scope(channel: Channel, message: Message, occurrence: OccurrenceRow) -> str | None:
    """The scope of the reference a send belongs to (a Slack root, the maintenance, an incident); None: no thread."""
    scope = channel_spec(channel).thread_scope
    return scope(message, occurrence.incident_id) if scope is not None else None


WINDOW_CHANGES = ("reschedule", "cancel")
"""The events that change the maintenance window's calendar entry (each raises its SEQUENCE by one)."""


def maintenance_window(plan: Plan, cutover: CutoverRow, *, changes: int = 0) -> MaintenanceWindow:
    """The cutover's maintenance window, for calendar invitations and the scheduled maintenance.

    One UID per cutover; ``changes`` (reschedules and the cancel recorded so far) is its SEQUENCE,
    so each invitation after a move or a cancel supersedes the entry already in the reader's calendar.
    """
    return MaintenanceWindow(
        uid=f"{cutover.name}@comms",
        title=cutover_title(plan),
        description=f"{plan.cutover.title}. Live status: {plan.cutover.status_page_url}",
        start=cutover.start,
        end=cutover.start + plan.cutover.window,
        sequence=changes,
        cancelled=cutover.state == "cancelled",
    )


def cutover_title(plan: Plan) -> str:
    """The maintenance's human title."""
    return f"Maintenance: {plan.cutover.title}"


def build_envelope(
    tx: Transaction,
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
    recipients = tuple(Recipient(r.recipient, r.idempotency_key, r.recipient_name, (), r.id) for r in rows)
    slot: ThreadSlot | None = None
    thread_ref: str | None = None
    scope = thread_scope(channel, message, occurrence)
    if scope is not None:
        slot = ThreadSlot(channel.value, scope, rows[0].recipient)
        thread_ref = repo.thread_ref(
            tx, cutover_id=cutover.id, channel=slot.channel, scope=slot.scope, target=slot.target
        )
    context = jsoncodec.loads(occurrence.context_json) or {}
    changes = repo.count_events(tx, cutover.id, WINDOW_CHANGES) if message.calendar_invite else 0
    window = maintenance_window(plan, cutover, changes=changes)
    facts = EnvelopeFacts(plan, message, window, thread_ref, context, audience=plan.audiences.get(rows[0].audience))
    extras = channel_spec(channel).envelope(facts)
    envelope = Envelope(
        cutover=cutover.name,
        message=occurrence.message,
        occurrence=occurrence.key,
        audience=rows[0].audience,
        content=content,
        recipients=recipients,
        thread_ref=extras.thread_ref,
        broadcast=message.broadcast,
        calendar=extras.calendar,
        statuspage=extras.statuspage,
        due_at=occurrence.due_at,
        unsubscribe=extras.unsubscribe,
    )
    return envelope, slot


def remember_ref(tx: Transaction, cutover_id: int, slot: ThreadSlot | None, receipt: Receipt) -> None:
    """Keep the provider reference a send returned (a Slack thread root, a status-page incident) for later sends."""
    if slot is not None and receipt.thread_ref is not None:
        repo.remember_thread(
            tx,
            cutover_id=cutover_id,
            channel=slot.channel,
            scope=slot.scope,
            target=slot.target,
            ref=receipt.thread_ref,
        )
