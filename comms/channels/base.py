"""The channel port: one small Protocol, the envelope it takes, the receipt it returns, its check rows.

Adapters are thin: they turn an Envelope into vendor calls and raise TransientChannelError
(with ``retry_after``) or PermanentChannelError (with a ``remedy``). Retries, pacing across
sends and delivery state live above them, in ``comms.delivery.dispatcher`` and ``comms.store.ledger``.
What each channel kind contributes beyond the adapter (template parts, targets, envelope extras,
its dry-run file) is listed in ``comms.channels.registry``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NamedTuple, Protocol, TypeVar

from comms.core.content import Content
from comms.errors import PermanentChannelError
from comms.plan.audiences import Audience
from comms.plan.fields import Channel as ChannelKind
from comms.plan.models import Message, Plan

__all__ = [
    "Channel",
    "CheckRow",
    "CheckStatus",
    "Envelope",
    "EnvelopeExtras",
    "EnvelopeFacts",
    "Leaving",
    "MaintenanceWindow",
    "PartRenderer",
    "Receipt",
    "Recipient",
    "Reconciliation",
    "SUPPRESSED",
    "StatuspageIntent",
    "Target",
    "UnsubscribeIntent",
    "header_value",
    "single_target",
    "not_watched",
    "target_state",
]

CheckStatus = Literal["PASS", "WARN", "FAIL"]

PartRenderer = Callable[[str], str]
"""Renders one named template part of a message (stripped); a kind's content builder calls it per part."""

Target = tuple[str, str | None, str | None]
"""One delivery target of an audience: address, display name, and why it cannot be sent to (or None)."""

SUPPRESSED = "suppressed: "
"""How a target's problem starts when the address unsubscribed: recorded ``suppressed``, not ``dead``."""


def target_state(problem: str | None) -> str:
    """The delivery state a target starts in: pending, suppressed (unsubscribed) or dead (cannot be sent to)."""
    if problem is None:
        return "pending"
    return "suppressed" if problem.startswith(SUPPRESSED) else "dead"


@dataclass(frozen=True)
class CheckRow:
    """One readiness check: what was checked, how it went, and the detail a person acts on."""

    name: str
    status: CheckStatus
    detail: str
    dry_run: bool = False
    """A channel without credentials: it writes to the outbox instead of sending (a WARN that does not block)."""


class Recipient(NamedTuple):
    """One delivery target: an email address, a Slack channel, or the status page id.

    A tuple, not a dataclass: every request of a big send makes a thousand of them.
    """

    address: str
    delivery_key: str
    name: str | None = None
    substitutions: tuple[tuple[str, str], ...] = ()
    """Marks in the content replaced for this recipient alone (an escalation's ack link)."""
    delivery_id: int | None = None
    """The delivery's row id, carried in SendGrid's custom_args so its events find the row by id."""


@dataclass(frozen=True)
class MaintenanceWindow:
    """The maintenance window, for calendar invitations and the scheduled status-page maintenance.

    ``sequence`` is the iCalendar SEQUENCE: how many times the window was moved or called off
    (0 as first planned); ``cancelled`` turns the invitation into an iTIP CANCEL.
    """

    uid: str
    title: str
    description: str
    start: datetime
    end: datetime
    sequence: int = 0
    cancelled: bool = False


@dataclass(frozen=True)
class StatuspageIntent:
    """What a status-page send must do: create (no incident_id) or update an incident."""

    status: str
    incident_id: str | None = None
    impact: str | None = None
    component_status: str | None = None
    component_ids: tuple[str, ...] = ()
    window: MaintenanceWindow | None = None
    remind_prior: bool = True
    auto_in_progress: bool = False
    auto_completed: bool = False


@dataclass(frozen=True)
class UnsubscribeIntent:
    """An end-user email's unsubscribe: the audience its links name and its SendGrid suppression group."""

    audience: str
    group_id: int | None = None


@dataclass(frozen=True)
class Envelope:
    """Everything one send needs: the rendered content, its targets and threading context.

    Email carries up to ``max_batch`` recipients; Slack, the status page and a webhook exactly one.
    ``thread_ref`` is the Slack thread root ts to reply under, when there is one; ``due_at`` is
    when the occurrence was due (None for sends outside a timeline).
    """

    cutover: str
    message: str
    occurrence: str
    audience: str | None
    content: Content
    recipients: tuple[Recipient, ...]
    thread_ref: str | None = None
    broadcast: bool = False
    calendar: MaintenanceWindow | None = None
    statuspage: StatuspageIntent | None = None
    due_at: datetime | None = None
    unsubscribe: UnsubscribeIntent | None = None


@dataclass(frozen=True)
class EnvelopeFacts:
    """What a channel kind may draw on to add its own parts to an envelope (see ``EnvelopeExtras``).

    ``thread_ref`` is the provider reference stored for the send's thread slot so far, and
    ``context`` the occurrence's stored extras (a status-page override, for one).
    """

    plan: Plan
    message: Message
    window: MaintenanceWindow
    thread_ref: str | None
    context: Mapping[str, Any]
    audience: Audience | None = None


@dataclass(frozen=True)
class EnvelopeExtras:
    """The kind-specific parts of an envelope: a thread to reply under, an invitation, a status-page intent."""

    thread_ref: str | None = None
    calendar: MaintenanceWindow | None = None
    statuspage: StatuspageIntent | None = None
    unsubscribe: UnsubscribeIntent | None = None


@dataclass(frozen=True)
class Receipt:
    """What the provider answered: its id for the send, and a reference later sends thread under."""

    provider_id: str | None
    thread_ref: str | None = None


@dataclass(frozen=True)
class Reconciliation:
    """Whether a send whose fate is unknown (a crash mid-request) reached the provider."""

    state: Literal["sent", "not_sent", "unknown"]
    receipt: Receipt | None = None


Leaving = Callable[[], None]
"""Called by ``Channel.send`` once the request is built, just before its first byte goes to the provider."""


def not_watched() -> None:
    """The default ``leaving``: nobody records when the request leaves."""


class Channel(Protocol):
    """A delivery channel. ``send`` raises a ChannelError subclass on failure, never returns False.

    ``send`` calls ``leaving()`` once, after building the request and before sending any of it: the sender
    records there that the request may have left (before it, a crash means nothing was sent). If
    ``leaving`` raises, nothing is sent and the error propagates.

    ``probe`` is the readiness check: it asks the provider whether credentials and the plan's
    targets work and answers rows; it never raises for a provider's answer, it reports it.
    """

    kind: ChannelKind
    max_batch: int
    dry_run: bool

    def send(self, envelope: Envelope, leaving: Leaving = not_watched) -> Receipt:
        """Deliver the envelope once; raise TransientChannelError or PermanentChannelError on failure."""
        ...

    def reconcile(self, envelope: Envelope) -> Reconciliation:
        """Find out whether an earlier, interrupted send of this envelope reached the provider."""
        ...

    def probe(self, plan: Plan | None) -> list[CheckRow]:
        """Readiness rows of this channel for the plan's targets (None: the plan did not validate)."""
        ...


ContentT = TypeVar("ContentT")


def single_target(envelope: Envelope, kind: type[ContentT], *, channel: str, target: str) -> tuple[ContentT, Recipient]:
    """The envelope's content and its one recipient, for a channel that takes one ``target`` a request.

    Raises PermanentChannelError for content rendered for another channel, or for several targets.
    """
    content = envelope.content
    if not isinstance(content, kind):
        raise PermanentChannelError(
            f"{channel} send of {envelope.occurrence} got {type(content).__name__}",
            remedy=f"route only rendered {kind.__name__} to the {channel} channel",
        )
    if len(envelope.recipients) != 1:
        raise PermanentChannelError(
            f"{channel} send of {envelope.occurrence} has {len(envelope.recipients)} targets; it takes exactly one",
            remedy=f"send one envelope per {target} (max_batch is 1)",
        )
    return content, envelope.recipients[0]


def header_value(headers: Any, name: str) -> str | None:
    """A response header by name, any case, from an SDK's headers (a mapping or an HTTP message); None if absent."""
    if not headers:
        return None
    value = headers.get(name) if hasattr(headers, "get") else None
    if value is None and hasattr(headers, "items"):
        value = next((v for k, v in headers.items() if str(k).lower() == name.lower()), None)
    if isinstance(value, list):
        value = value[0] if value else None
    return None if value is None else str(value)
