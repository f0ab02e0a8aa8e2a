"""Every channel kind in one table: its adapter, settings, template parts, targets, envelope parts, dry run.

The factory, rendering, the template check, materialize, envelopes and readiness ask this table
instead of branching on the kind. A new channel is one module (its adapter and the functions
below) plus one ``ChannelSpec`` here, its ``Channel`` enum value (``comms.plan.fields``), the audience
field of the same name in ``comms.plan.audiences`` and, when its content is new, a type in ``comms.core.content``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from comms.channels.base import Channel, ChannelKind, EnvelopeExtras, EnvelopeFacts, PartRenderer, Target
from comms.channels.mail_send import MAX_RECIPIENTS
from comms.channels.outbox import EmailFile, OutboxWriter, SlackFile, StatuspageFile
from comms.channels.pacing import Pacer, monotonic_for
from comms.channels.sendgrid import EMAIL_PARTS, SendGridChannel, email_content, email_extras, email_targets
from comms.channels.slack import SlackChannel, slack_extras, slack_targets, slack_thread_scope
from comms.channels.slack_blocks import SLACK_PARTS, escape_slack, slack_content
from comms.channels.statuspage import (
    STATUSPAGE_PARTS,
    StatuspageChannel,
    statuspage_content,
    statuspage_extras,
    statuspage_targets,
    statuspage_thread_scope,
)
from comms.channels.webhook import (
    WEBHOOK_PARTS,
    WebhookChannel,
    WebhookFile,
    webhook_content,
    webhook_extras,
    webhook_targets,
)
from comms.clock import Clock
from comms.core.content import Content
from comms.plan.audiences import Audience
from comms.plan.models import Message

if TYPE_CHECKING:
    from comms.settings import Settings  # imported by the callers; kept off the import path of rendering

__all__ = ["AdapterFactory", "ChannelSpec", "OutboxFactory", "SPECS", "Sleep", "ThreadScope", "channel_spec"]

Sleep = Callable[[float], None]
AdapterFactory = Callable[["Settings", Clock, Sleep], Channel]
OutboxFactory = Callable[["Settings", Clock], OutboxWriter]
ThreadScope = Callable[[Message, int | None], str]


@dataclass(frozen=True)
class ChannelSpec:
    """What one channel kind is made of.

    ``credentials`` are the Settings fields that must all be set for the real adapter (else the
    outbox); ``parts`` maps each content part to its template files, preferred first; ``escape``
    is applied to every value a non-HTML template of the kind prints; ``per_audience`` is False
    for a channel sent once per message whatever the audiences (the status page), which then has
    no audience-specific templates; ``thread_scope`` names the slot a provider reference is kept
    under for later sends (None: sends do not thread).
    """

    kind: ChannelKind
    credentials: tuple[str, ...]
    adapter: AdapterFactory
    outbox: OutboxFactory
    parts: Mapping[str, tuple[str, ...]]
    content: Callable[[PartRenderer, Mapping[str, Any]], Content]
    targets: Callable[[Audience | None], Iterable[Target]]
    envelope: Callable[[EnvelopeFacts], EnvelopeExtras]
    escape: Callable[[str], str] | None = None
    per_audience: bool = True
    thread_scope: ThreadScope | None = None
    batch: int = 1
    """How many recipients one request carries, so how many the ledger writes into one batch."""

    @property
    def env_names(self) -> tuple[str, ...]:
        """The environment variables of the credentials."""
        return tuple(f"COMMS_{name.upper()}" for name in self.credentials)

    def configured(self, settings: Settings) -> bool:
        """Whether every credential is set (and not empty)."""
        return all(_is_set(getattr(settings, name)) for name in self.credentials)


def _is_set(value: object) -> bool:
    if value is None:
        return False
    reveal = getattr(value, "get_secret_value", None)
    return bool(reveal() if callable(reveal) else value)


def _statuspage_adapter(settings: Settings, clock: Clock, sleep: Sleep) -> Channel:
    """Statuspage paced to one request a second; with an injected clock the pacer reads that clock."""
    return StatuspageChannel(settings, pacer=Pacer(1.0, monotonic=monotonic_for(clock), sleep=sleep), clock=clock)


SPECS: Mapping[ChannelKind, ChannelSpec] = {
    spec.kind: spec
    for spec in (
        ChannelSpec(
            kind=ChannelKind.EMAIL,
            credentials=("sendgrid_api_key",),
            adapter=lambda settings, clock, sleep: SendGridChannel(settings, clock=clock),
            outbox=lambda settings, clock: EmailFile(
                sender=settings.email_from,
                sender_name=settings.email_from_name,
                reply_to=settings.email_reply_to,
                clock=clock,
                unsubscribe=settings.unsubscribe_links(),
            ),
            parts=EMAIL_PARTS,
            content=email_content,
            targets=email_targets,
            envelope=email_extras,
            batch=MAX_RECIPIENTS,
        ),
        ChannelSpec(
            kind=ChannelKind.SLACK,
            credentials=("slack_token",),
            adapter=lambda settings, clock, sleep: SlackChannel(settings, clock=clock),
            outbox=lambda settings, clock: SlackFile(),
            parts=SLACK_PARTS,
            content=slack_content,
            targets=slack_targets,
            envelope=slack_extras,
            escape=escape_slack,
            thread_scope=slack_thread_scope,
        ),
        ChannelSpec(
            kind=ChannelKind.STATUSPAGE,
            credentials=("statuspage_api_key", "statuspage_page_id"),
            adapter=_statuspage_adapter,
            outbox=lambda settings, clock: StatuspageFile(
                page_id=settings.statuspage_page_id, base_url=settings.statuspage_base_url
            ),
            parts=STATUSPAGE_PARTS,
            content=statuspage_content,
            targets=statuspage_targets,
            envelope=statuspage_extras,
            per_audience=False,
            thread_scope=statuspage_thread_scope,
        ),
        ChannelSpec(
            kind=ChannelKind.WEBHOOK,
            credentials=("webhook_secret",),
            adapter=lambda settings, clock, sleep: WebhookChannel(settings, clock=clock),
            outbox=lambda settings, clock: WebhookFile(clock=clock),
            parts=WEBHOOK_PARTS,
            content=webhook_content,
            targets=webhook_targets,
            envelope=webhook_extras,
        ),
    )
}
"""The channel kinds, in the order of the ``Channel`` enum."""


def channel_spec(kind: ChannelKind) -> ChannelSpec:
    """The spec of a channel kind (every enum value has one; a test checks it)."""
    return SPECS[ChannelKind(kind)]
