"""A generic signed webhook through httpx: each delivery is one JSON ``POST`` to one receiver URL.

The body names the cutover, message, occurrence, audience, due and sent times and carries the
rendered subject and text. ``X-Comms-Signature: sha256=<hex>`` is the HMAC-SHA256, keyed with
``COMMS_WEBHOOK_SECRET``, of ``"<X-Comms-Timestamp>.<body>"`` (the exact bytes sent). Receivers
dedupe on ``X-Comms-Delivery-Key``: a retry, and a re-send after a crash, carry the same key
(``docs/WEBHOOK.md``). A generic receiver cannot be asked what it received, so an unanswered
request reconciles as unknown and the delivery is recorded uncertain, as SendGrid's are.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from comms.channels.base import (
    ChannelKind,
    CheckRow,
    Envelope,
    EnvelopeExtras,
    EnvelopeFacts,
    Leaving,
    PartRenderer,
    Receipt,
    Reconciliation,
    Target,
    not_watched,
    single_target,
)
from comms.channels.outbox import digest, json_bytes, slug
from comms.clock import Clock, utc_now
from comms.core.content import WebhookContent, one_line
from comms.core.times import iso_utc, parse_retry_after
from comms.errors import ChannelError, PermanentChannelError, TransientChannelError
from comms.plan.audiences import Audience
from comms.plan.models import Plan

if TYPE_CHECKING:
    import httpx

    from comms.settings import Settings

__all__ = [
    "DEFAULT_TIMEOUT",
    "EVENT_HEADER",
    "KEY_HEADER",
    "MIN_SECRET_LENGTH",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "USER_AGENT",
    "WEBHOOK_PARTS",
    "WebhookChannel",
    "WebhookFile",
    "delivery_payload",
    "encode_body",
    "plan_webhook_urls",
    "shown_url",
    "signature",
    "webhook_content",
    "webhook_extras",
    "webhook_targets",
]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0
MIN_SECRET_LENGTH = 32
EVENT_HEADER = "X-Comms-Event"
KEY_HEADER = "X-Comms-Delivery-Key"
TIMESTAMP_HEADER = "X-Comms-Timestamp"
SIGNATURE_HEADER = "X-Comms-Signature"
USER_AGENT = "comms-webhook/1"
_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
_SECRET_REMEDY = "give the receiver the same secret as COMMS_WEBHOOK_SECRET"

WEBHOOK_PARTS: Mapping[str, tuple[str, ...]] = {
    "subject": ("webhook.subject.j2", "email.subject.j2"),
    "text": ("webhook.text.j2", "email.text.j2"),
}
"""A webhook's subject and text: its own templates where a message has them, else the email's."""


def webhook_content(part: PartRenderer, context: Mapping[str, Any]) -> WebhookContent:
    """A webhook delivery from its rendered parts: a one-line subject and the plain text."""
    return WebhookContent(subject=one_line(part("subject")), text=part("text") + "\n")


def webhook_targets(audience: Audience | None) -> Iterator[Target]:
    """The receiver URLs of an audience, one delivery each."""
    if audience is not None and audience.channels.webhook is not None:
        for url in audience.channels.webhook.urls:
            yield url, None, None


def webhook_extras(facts: EnvelopeFacts) -> EnvelopeExtras:
    """A webhook delivery has no thread, invitation or intent: the payload says it all."""
    return EnvelopeExtras()


def delivery_payload(envelope: Envelope, *, sent_at: datetime) -> dict[str, Any]:
    """The JSON a receiver gets for one delivery (also what the outbox writes)."""
    content, _ = single_target(envelope, WebhookContent, channel="webhook", target="webhook URL")
    return {
        "event": "delivery",
        "delivery_key": envelope.recipients[0].delivery_key,
        "cutover": envelope.cutover,
        "message": envelope.message,
        "occurrence": envelope.occurrence,
        "audience": envelope.audience,
        "due_at": iso_utc(envelope.due_at) if envelope.due_at is not None else None,
        "sent_at": iso_utc(sent_at),
        "subject": content.subject,
        "text": content.text,
    }


def encode_body(payload: Mapping[str, Any]) -> bytes:
    """The exact bytes sent: compact UTF-8 JSON."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">``, the X-Comms-Signature value."""
    mac = hmac.new(secret, str(timestamp).encode("ascii") + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def shown_url(url: str) -> str:
    """A receiver URL for logs and errors: scheme, host and path, never the query."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def plan_webhook_urls(plan: Plan) -> list[str]:
    """Every receiver URL of the plan's audiences, each once."""
    urls = (url for a in plan.audiences.values() if a.channels.webhook for url in a.channels.webhook.urls)
    return list(dict.fromkeys(urls))


class WebhookChannel:
    """Signed JSON POSTs to receiver URLs; one envelope per URL."""

    kind = ChannelKind.WEBHOOK
    max_batch = 1
    dry_run = False

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock = utc_now,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not settings.webhook_configured or settings.webhook_secret is None:
            raise ValueError("WebhookChannel needs COMMS_WEBHOOK_SECRET; use the outbox without it")
        import httpx

        self._secret = settings.webhook_secret.get_secret_value().encode("utf-8")
        self._clock = clock
        self._http = httpx.Client(
            timeout=timeout, transport=transport, follow_redirects=False, headers={"User-Agent": USER_AGENT}
        )

    def __repr__(self) -> str:
        return "WebhookChannel(secret=[redacted])"

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()

    def send(self, envelope: Envelope, leaving: Leaving = not_watched) -> Receipt:
        """POST the signed delivery; the receipt holds the receiver's X-Request-Id, if it gives one."""
        body = encode_body(delivery_payload(envelope, sent_at=self._clock()))
        url = envelope.recipients[0].address
        key = envelope.recipients[0].delivery_key
        what = f"webhook {envelope.occurrence}/{envelope.audience} to {shown_url(url)}"
        leaving()
        response = self._post(url, body, {EVENT_HEADER: "delivery", KEY_HEADER: key}, what=what)
        status = response.status_code
        if not 200 <= status < 300:
            raise self._refusal(response, what)
        log.info("webhook delivered %s/%s to %s (%d)", envelope.occurrence, envelope.audience, shown_url(url), status)
        return Receipt(provider_id=response.headers.get("X-Request-Id"))

    def reconcile(self, envelope: Envelope) -> Reconciliation:
        """A generic receiver cannot be asked whether a delivery arrived: always unknown."""
        return Reconciliation("unknown")

    def probe(self, plan: Plan | None) -> list[CheckRow]:
        """The secret is long enough, and every receiver of the plan accepts a signed ping."""
        length = len(self._secret)
        if length < MIN_SECRET_LENGTH:
            rows = [
                CheckRow(
                    "webhook: secret",
                    "WARN",
                    f"COMMS_WEBHOOK_SECRET has {length} characters: use at least {MIN_SECRET_LENGTH} random ones "
                    "(python -c 'import secrets; print(secrets.token_hex(32))')",
                )
            ]
        else:
            rows = [CheckRow("webhook: secret", "PASS", f"COMMS_WEBHOOK_SECRET is set ({length} characters)")]
        for url in plan_webhook_urls(plan) if plan is not None else []:
            rows.append(self._ping_row(url, plan.cutover.name if plan else ""))
        return rows

    def _ping_row(self, url: str, cutover: str) -> CheckRow:
        name = f"webhook: {shown_url(url)}"
        payload = {"event": "ping", "cutover": cutover, "sent_at": iso_utc(self._clock())}
        try:
            response = self._post(url, encode_body(payload), {EVENT_HEADER: "ping"}, what=f"webhook ping {name}")
        except ChannelError as exc:
            return CheckRow(name, "FAIL", str(exc))
        status = response.status_code
        if 200 <= status < 300:
            parts = urlsplit(url)
            if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
                return CheckRow(name, "WARN", f"accepted a signed ping ({status}) over plain http: use https")
            return CheckRow(name, "PASS", f"accepted a signed ping ({status})")
        if status in (401, 403):
            return CheckRow(name, "FAIL", f"refused the signed ping ({status}): {_SECRET_REMEDY}")
        if status == 429 or status >= 500:
            return CheckRow(name, "WARN", f"answered the ping with {status}: deliveries now would be retried")
        return CheckRow(name, "FAIL", f"answered the ping with {status}: deliveries would be refused; check the URL")

    def _post(self, url: str, body: bytes, headers: dict[str, str], *, what: str) -> httpx.Response:
        import httpx

        timestamp = int(self._clock().timestamp())
        signed = {
            "Content-Type": "application/json",
            **headers,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: signature(self._secret, timestamp, body),
        }
        try:
            return self._http.post(url, content=body, headers=signed)
        except httpx.TransportError as exc:  # timeouts, refused and dropped connections
            raise TransientChannelError(
                f"{what}: no answer ({type(exc).__name__})",
                maybe_delivered=isinstance(exc, httpx.ReadTimeout),
            ) from exc

    def _refusal(self, response: httpx.Response, what: str) -> ChannelError:
        status = response.status_code
        said = _answer(response)
        if status in (408, 429) or status >= 500:
            wait = parse_retry_after(response.headers.get("Retry-After"), now=self._clock())
            return TransientChannelError(f"{what}: receiver answered {status}{said}", retry_after=wait, status=status)
        if 300 <= status < 400:
            target = shown_url(response.headers.get("Location", "")) if response.headers.get("Location") else "?"
            remedy = f"point the audience at the URL it redirects to ({target}): deliveries are not redirected"
        elif status in (401, 403):
            remedy = _SECRET_REMEDY
        elif status in (404, 405, 410):
            remedy = "check the webhook URL in the audience file"
        elif status == 413:
            remedy = "shorten the message: the receiver refused its size"
        else:
            remedy = "fix what the receiver refused" + (said or " (it gave no details)")
        return PermanentChannelError(f"{what}: receiver refused it with {status}{said}", remedy=remedy, status=status)


def _answer(response: httpx.Response) -> str:
    text = " ".join(response.text.split())[:200]
    return f": {text}" if text else ""


class WebhookFile:
    """The dry run of a webhook: the request a receiver would get, unsigned (there is no secret)."""

    max_batch = 1
    keyed = True

    def __init__(self, *, clock: Clock = utc_now) -> None:
        self._clock = clock

    def file_suffix(self, envelope: Envelope) -> str:
        url = envelope.recipients[0].address if envelope.recipients else ""
        return f".{slug(urlsplit(url).hostname or 'none')}-{digest(url)}.json"

    def thread_ref(self, envelope: Envelope) -> str | None:
        return None

    def data(self, envelope: Envelope) -> bytes:
        now = self._clock()
        payload = delivery_payload(envelope, sent_at=now)
        headers = {
            "Content-Type": "application/json",
            EVENT_HEADER: "delivery",
            KEY_HEADER: payload["delivery_key"],
            TIMESTAMP_HEADER: str(int(now.timestamp())),
        }
        return json_bytes(
            {"method": "POST", "url": envelope.recipients[0].address, "headers": headers, "json": payload}
        )
