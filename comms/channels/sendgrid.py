"""Email through SendGrid's v3 Mail Send API, with the official ``sendgrid`` SDK as transport.

One request carries up to 1000 recipients, each in its own personalization so nobody sees another
address, each with its delivery key in ``custom_args`` (SendGrid's Event Webhook echoes it back).
The request body is ``comms.channels.mail_send``'s plain dict (the wire format), which the outbox
writes too.
"""

from __future__ import annotations

import http.client
import json
import logging
import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from comms.channels.base import (
    SUPPRESSED,
    ChannelKind,
    CheckRow,
    Envelope,
    EnvelopeExtras,
    EnvelopeFacts,
    Leaving,
    MaintenanceWindow,
    PartRenderer,
    Receipt,
    Reconciliation,
    Target,
    UnsubscribeIntent,
    header_value,
    not_watched,
)
from comms.channels.calendar import build_ics
from comms.channels.mail_send import MAX_RECIPIENTS, invite_attachment, mail_send_body, safe_name
from comms.clock import Clock, utc_now
from comms.core.content import EmailContent, one_line
from comms.core.times import parse_retry_after
from comms.errors import ChannelError, PermanentChannelError, TransientChannelError, is_read_timeout
from comms.plan.audiences import Audience
from comms.plan.models import Plan
from comms.plan.recipients import iter_email_recipients, read_suppression_list

if TYPE_CHECKING:
    from sendgrid import SendGridAPIClient

    from comms.settings import Settings

__all__ = ["DEFAULT_TIMEOUT", "EMAIL_PARTS", "SendGridChannel", "email_content", "email_extras", "email_targets"]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0
_SECRET = re.compile(r"(Bearer\s+)\S+|SG\.[A-Za-z0-9_\-.]+")

EMAIL_PARTS: Mapping[str, tuple[str, ...]] = {
    "subject": ("email.subject.j2",),
    "html": ("email.html.j2",),
    "text": ("email.text.j2",),
}
"""The template files of an email's parts."""


def email_content(part: PartRenderer, context: Mapping[str, Any]) -> EmailContent:
    """An email from its rendered parts: a one-line subject, the HTML and the text alternative."""
    return EmailContent(subject=one_line(part("subject")), html=part("html"), text=part("text") + "\n")


def email_targets(audience: Audience | None) -> Iterator[Target]:
    """An audience's email recipients, streamed; rows that cannot be sent to carry their problem.

    An address on the audience's suppression list is marked ``suppressed`` (never sent to). An audience
    with ``locales`` yields only the rows of its view's language (``Audience.reader_groups``).
    """
    if audience is None:
        return
    suppressed = read_suppression_list(audience)
    listed = f"{SUPPRESSED}unsubscribed (on {audience.unsubscribe.suppression_list})" if audience.unsubscribe else ""
    for row in iter_email_recipients(audience):
        if audience.locales and not audience.reads_row(row.locale):
            continue  # another language's view of the audience sends this row
        if suppressed and row.address.strip().lower() in suppressed:
            yield row.address, row.name, listed
            continue
        yield row.address, row.name, f"{row.problem} at {row.source}" if row.problem else None


def email_extras(facts: EnvelopeFacts) -> EnvelopeExtras:
    """An email carries the calendar invitation when its message asks for one, and end users' unsubscribe."""
    audience = facts.audience
    unsubscribe = None
    if audience is not None and audience.unsubscribe is not None:
        unsubscribe = UnsubscribeIntent(audience.key, audience.unsubscribe.group_id)
    return EnvelopeExtras(calendar=facts.window if facts.message.calendar_invite else None, unsubscribe=unsubscribe)


class _RedactAuthorization(logging.Filter):
    """python_http_client logs request headers (the API key) at DEBUG: blank them out."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "Bearer" in message or "SG." in message:
            record.msg = _SECRET.sub(lambda m: (m.group(1) or "") + "[redacted]", message)
            record.args = None
        return True


def _install_redaction() -> None:
    logger = logging.getLogger("python_http_client.client")
    if not any(isinstance(f, _RedactAuthorization) for f in logger.filters):
        logger.addFilter(_RedactAuthorization())


class SendGridChannel:
    """Email via SendGrid: HTML and text alternatives, one personalization per recipient."""

    kind = ChannelKind.EMAIL
    max_batch = MAX_RECIPIENTS
    dry_run = False

    def __init__(self, settings: Settings, *, clock: Clock = utc_now, timeout: float = DEFAULT_TIMEOUT) -> None:
        if not settings.sendgrid_configured or settings.sendgrid_api_key is None:
            raise ValueError("SendGridChannel needs COMMS_SENDGRID_API_KEY; use the outbox without it")
        from sendgrid import SendGridAPIClient

        _install_redaction()
        self._sg: SendGridAPIClient = SendGridAPIClient(
            settings.sendgrid_api_key.get_secret_value(), host=settings.sendgrid_host
        )
        self._host = settings.sendgrid_host
        self._from = {"email": settings.email_from, "name": safe_name(settings.email_from_name)}
        self._reply_to = settings.email_reply_to
        self._clock = clock
        self._timeout = timeout
        self._invites: dict[MaintenanceWindow, dict[str, str]] = {}
        self._unsubscribe = settings.unsubscribe_links()

    def __repr__(self) -> str:
        return f"SendGridChannel(host={self._host!r}, from={self._from['email']!r})"

    def send(self, envelope: Envelope, leaving: Leaving = not_watched) -> Receipt:
        """Post one Mail Send request for the envelope's recipients; return SendGrid's X-Message-Id."""
        body = self.build_request(envelope)
        count = len(envelope.recipients)
        leaving()
        try:
            response = self._sg.client.mail.send.post(request_body=body, timeout=self._timeout)
        except Exception as exc:  # the SDK raises urllib and python_http_client errors; sorted below
            raise self._map_error(exc, envelope) from exc
        message_id = header_value(response.headers, "X-Message-Id")
        log.info(
            "sendgrid accepted %s/%s for %d recipient(s) (x-message-id %s)",
            envelope.occurrence,
            envelope.audience,
            count,
            message_id,
        )
        return Receipt(provider_id=message_id)

    def reconcile(self, envelope: Envelope) -> Reconciliation:
        """SendGrid cannot be asked whether a message with a given key was accepted: always unknown."""
        return Reconciliation("unknown")

    def scopes(self) -> list[str]:
        """The API key's scopes (``GET /v3/scopes``), for the readiness check."""
        try:
            response = self._sg.client.scopes.get(timeout=self._timeout)
        except Exception as exc:
            raise self._map_error(exc, None) from exc
        data = json.loads(response.body or b"{}")
        scopes = data.get("scopes", []) if isinstance(data, dict) else []
        return [str(s) for s in scopes]

    def probe(self, plan: Plan | None) -> list[CheckRow]:
        """The key works and may send mail (the mail.send scope)."""
        name = "email: SendGrid key"
        try:
            scopes = self.scopes()
        except ChannelError as exc:
            return [CheckRow(name, "FAIL", str(exc))]
        if "mail.send" not in scopes:
            return [
                CheckRow(name, "FAIL", "the API key lacks the mail.send scope: give it Mail Send access in SendGrid")
            ]
        return [CheckRow(name, "PASS", f"key valid with mail.send ({len(scopes)} scopes)")]

    def build_request(self, envelope: Envelope) -> dict[str, Any]:
        """The Mail Send request body for an envelope (refusing what SendGrid would refuse)."""
        invite = self._invite(envelope.calendar) if envelope.calendar is not None else None
        return mail_send_body(
            envelope, sender=self._from, reply_to=self._reply_to, invite=invite, unsubscribe=self._unsubscribe
        )

    def _invite(self, window: MaintenanceWindow) -> dict[str, str]:
        """The .ics attachment of a window, built once per window (every batch of a message shares it)."""
        cached = self._invites.get(window)
        if cached is None:
            invite = build_ics(
                window, organizer_email=self._from["email"], organizer_name=self._from["name"], stamp=self._clock()
            )
            cached = invite_attachment(invite.data, content_type=invite.content_type, filename=invite.filename)
            if len(self._invites) >= 64:
                self._invites.clear()
            self._invites[window] = cached
        return dict(cached)

    def _map_error(self, exc: BaseException, envelope: Envelope | None) -> Exception:
        from python_http_client.exceptions import HTTPError

        what = f"sendgrid send of {envelope.occurrence}/{envelope.audience}" if envelope else "sendgrid request"
        if isinstance(exc, HTTPError):
            return self._map_status(exc.status_code, exc.body, exc.headers, what)
        if isinstance(exc, (OSError, http.client.HTTPException)):
            # URLError, timeouts, refused and dropped connections. After a read timeout the request may
            # have landed: the dispatcher then reconciles instead of retrying blindly.
            return TransientChannelError(
                f"{what}: connection failed ({type(exc).__name__}: {_scrub(exc)})", maybe_delivered=is_read_timeout(exc)
            )
        return TransientChannelError(f"{what}: unexpected {type(exc).__name__}: {_scrub(exc)}")

    def _map_status(self, status: int, raw: bytes | str | None, headers: Any, what: str) -> Exception:
        detail = _error_messages(raw)
        said = f": {detail}" if detail else ""
        if status == 429:
            return TransientChannelError(
                f"{what}: rate limited by SendGrid (429){said}", retry_after=self._reset_in(headers), status=status
            )
        if status >= 500 or status == 408:
            return TransientChannelError(f"{what}: SendGrid answered {status}{said}", status=status)
        remedies = {
            400: f"fix the message or addresses SendGrid rejected{said or ''}",
            401: "set COMMS_SENDGRID_API_KEY to a valid key",
            403: f"give the key the mail.send scope or verify the sender {self._from['email']} in SendGrid",
            404: f"check COMMS_SENDGRID_HOST ({self._host}): the endpoint does not exist there",
            413: "shrink the message: SendGrid takes at most 30 MB including attachments",
        }
        remedy = remedies.get(status, f"see SendGrid's answer{said or ' (no details given)'}")
        return PermanentChannelError(f"{what}: SendGrid refused it with {status}{said}", remedy=remedy, status=status)

    def _reset_in(self, headers: Any) -> float | None:
        retry_after = parse_retry_after(header_value(headers, "Retry-After"), now=self._clock())
        if retry_after is not None:
            return retry_after
        reset = header_value(headers, "X-RateLimit-Reset")
        if reset is None:
            return None
        try:
            return max(0.0, float(reset) - self._clock().timestamp())
        except ValueError:
            return None


def _error_messages(raw: bytes | str | None) -> str:
    """SendGrid's ``{"errors": [{"message", "field"}]}`` as one line."""
    if not raw:
        return ""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    try:
        data = json.loads(text)
    except ValueError:
        return _scrub(text.strip())[:300]
    errors = data.get("errors") if isinstance(data, dict) else None
    if not isinstance(errors, list):
        return _scrub(text.strip())[:300]
    parts = []
    for error in errors:
        if isinstance(error, dict):
            field = error.get("field")
            message = str(error.get("message", "")).strip()
            parts.append(f"{field}: {message}" if field else message)
    return "; ".join(p for p in parts if p)[:1000]


def _scrub(value: object) -> str:
    return _SECRET.sub(lambda m: (m.group(1) or "") + "[redacted]", str(value))
