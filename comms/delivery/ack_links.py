"""Each recipient's own ack link in an escalation email, filled in just before the email channel sends.

Escalation notices are rendered once per audience with a mark where the link goes
(``comms.core.content.ack_marks``). ``AckLinkedEmail`` wraps the email channel: for every recipient it
signs a token naming the incident, level and recipient (``comms.core.ack_tokens``) and hands the
channel the link as that recipient's substitution; SendGrid fills it per personalization, the outbox
writes one file per recipient. Without COMMS_ACK_SECRET and COMMS_PUBLIC_URL the mark says how to
acknowledge with the CLI instead.
"""

from __future__ import annotations

import html
from dataclasses import replace
from datetime import timedelta

from comms.channels.base import Channel, CheckRow, Envelope, Leaving, Receipt, Recipient, Reconciliation, not_watched
from comms.clock import Clock, utc_now
from comms.core.ack_tokens import ack_claim, sign_ack_token
from comms.core.content import ACK_MARK, EmailContent
from comms.core.times import format_utc
from comms.plan.models import Plan

__all__ = ["AckLinkedEmail"]


class AckLinkedEmail:
    """The email channel, with every escalation recipient's ack link filled in."""

    def __init__(
        self,
        inner: Channel,
        *,
        secret: bytes | None,
        public_url: str | None,
        valid_for: timedelta,
        clock: Clock = utc_now,
    ) -> None:
        self.inner = inner
        self.kind = inner.kind
        self.max_batch = inner.max_batch
        self.dry_run = inner.dry_run
        self._secret = secret
        self._base = public_url.rstrip("/") if public_url else None
        self._valid_for = valid_for
        self._clock = clock

    def __repr__(self) -> str:
        return f"AckLinkedEmail({self.inner!r})"

    def send(self, envelope: Envelope, leaving: Leaving = not_watched) -> Receipt:
        """Send with each recipient's link."""
        return self.inner.send(self.personalized(envelope), leaving)

    def reconcile(self, envelope: Envelope) -> Reconciliation:
        """Reconcile the personalized envelope (what was sent)."""
        return self.inner.reconcile(self.personalized(envelope))

    def probe(self, plan: Plan | None) -> list[CheckRow]:
        """The inner channel's readiness rows."""
        return self.inner.probe(plan)

    def personalized(self, envelope: Envelope) -> Envelope:
        """The envelope with every ack mark of its content given per recipient; unchanged without marks."""
        content = envelope.content
        if not isinstance(content, EmailContent):
            return envelope
        marks = {
            m.group(0): (m.group(1), int(m.group(2)), int(m.group(3)))
            for m in ACK_MARK.finditer(content.html + content.text)
        }
        if not marks:
            return envelope
        recipients = []
        for recipient in envelope.recipients:
            values = tuple(
                (mark, self._link(part, incident, level, recipient)) for mark, (part, incident, level) in marks.items()
            )
            recipients.append(recipient._replace(substitutions=values))
        return replace(envelope, recipients=tuple(recipients))

    def _link(self, part: str, incident_id: int, level: int, recipient: Recipient) -> str:
        if self._secret is None or self._base is None:
            command = f"comms incident ack {incident_id} --by <your name>"
            return (
                f"ask the comms lead to run <code>{html.escape(command)}</code>"
                if part == "html"
                else f"ask the comms lead to run: {command}"
            )
        claim = ack_claim(incident_id, level, recipient.address, now=self._clock(), valid_for=self._valid_for)
        url = f"{self._base}/ack/{sign_ack_token(claim, secret=self._secret)}"
        until = format_utc(claim.expires_at)
        if part == "html":
            return (
                f'<a href="{html.escape(url)}">Acknowledge incident #{incident_id}</a> '
                f"(a one-time link, valid until {until})"
            )
        return f"acknowledge incident #{incident_id} at {url} (a one-time link, valid until {until})"
