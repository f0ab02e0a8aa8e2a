"""``POST /webhooks/sendgrid``: SendGrid's signed Event Webhook turned into each delivery's last provider event.

The signature is ECDSA P-256 over ``timestamp + body`` (``X-Twilio-Email-Event-Webhook-Signature`` and
``-Timestamp``), checked with the sendgrid package's ``EventWebhook`` against
COMMS_SENDGRID_WEBHOOK_PUBLIC_KEY; the timestamp must be within five minutes of the console's clock.
Anything else is 401/403 and changes nothing. Events are matched to deliveries by the
``delivery_key`` custom arg comms sends in every personalization; events for keys comms does not know
are counted, never an error; repeats and late arrivals change nothing (``comms.core.delivery_events``).
"""

from __future__ import annotations

import binascii
import json
import logging
from datetime import UTC, datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from comms.core.delivery_events import DeliveryEvent
from comms.delivery.sender import send_queued
from comms.errors import SettingsError
from comms.services.bounce_escalation import escalate_bounce_rates
from comms.store.provider_events import EventTally, record_delivery_events
from comms.web.context import Console

__all__ = [
    "PROVIDER",
    "ROUTES",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WINDOW_S",
    "event_webhook",
    "parse_events",
    "sendgrid_events",
]

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "x-twilio-email-event-webhook-signature"
TIMESTAMP_HEADER = "x-twilio-email-event-webhook-timestamp"
WINDOW_S = 300
PROVIDER = "sendgrid"


def event_webhook(public_key: str) -> Any:
    """SendGrid's verifier for a base64 public key as SendGrid shows it; SettingsError when it is not one."""
    from sendgrid.helpers.eventwebhook import EventWebhook

    try:
        return EventWebhook(public_key.strip())
    except (ValueError, TypeError) as exc:
        raise SettingsError(
            "COMMS_SENDGRID_WEBHOOK_PUBLIC_KEY: not a public key; paste the verification key exactly as "
            f"SendGrid's Mail Settings show it ({type(exc).__name__})"
        ) from None


async def sendgrid_events(request: Request) -> Response:
    """Verify the batch, then record each event on its delivery."""
    console: Console = request.app.state.console
    verifier = console.sendgrid_webhook
    if verifier is None:
        return JSONResponse({"error": "COMMS_SENDGRID_WEBHOOK_PUBLIC_KEY is not set"}, status_code=403)
    body = await request.body()
    signature = request.headers.get(SIGNATURE_HEADER, "")
    timestamp = request.headers.get(TIMESTAMP_HEADER, "")
    if not signature or not timestamp.isdigit():
        return JSONResponse({"error": "missing signature"}, status_code=401)
    if abs(console.now().timestamp() - int(timestamp)) > WINDOW_S:
        return JSONResponse({"error": "stale timestamp"}, status_code=401)
    try:
        genuine = verifier.verify_signature(body.decode("utf-8"), signature, timestamp)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        genuine = False
    if not genuine:
        log.warning("sendgrid event batch refused: bad signature")
        return JSONResponse({"error": "invalid signature"}, status_code=403)
    try:
        batch = json.loads(body)
    except ValueError:
        return JSONResponse({"error": "the body is not JSON"}, status_code=400)
    if not isinstance(batch, list):
        return JSONResponse({"error": "the body is not a list of events"}, status_code=400)
    events, unkeyed = parse_events(batch)
    tally = await run_in_threadpool(_record, console, events)
    return JSONResponse(
        {"applied": tally.applied, "unchanged": tally.unchanged + unkeyed[1], "unknown": tally.unknown + unkeyed[0]}
    )


def _record(console: Console, events: list[DeliveryEvent]) -> EventTally:
    """Store the events; when some changed a delivery, raise the bounce-rate escalations now due (sent by the one sender)."""
    services = console.services
    tally = record_delivery_events(services.engine, events, provider=PROVIDER, now=console.now())
    if tally.applied:
        notices = escalate_bounce_rates(services.engine, console.plans, now=console.now())
        if notices:
            send_queued(services.dispatcher, notices, ttl=services.settings.lease_seconds, wait=False)
    return tally


def parse_events(batch: list[Any]) -> tuple[list[DeliveryEvent], tuple[int, int]]:
    """The batch's events that name a delivery key, and how many named none / could not be read."""
    events: list[DeliveryEvent] = []
    no_key = unreadable = 0
    for item in batch:
        if not isinstance(item, dict):
            unreadable += 1
            continue
        key = item.get("delivery_key")
        kind = item.get("event")
        stamp = item.get("timestamp")
        if not isinstance(key, str) or not key:
            no_key += 1
            continue
        if not isinstance(kind, str) or not isinstance(stamp, int | float):
            unreadable += 1
            continue
        reason = item.get("reason") or item.get("response")
        sent_id = item.get("delivery_id")
        delivery_id = int(sent_id) if isinstance(sent_id, str) and sent_id.isdigit() and len(sent_id) < 19 else None
        at = datetime.fromtimestamp(stamp, tz=UTC)
        events.append(DeliveryEvent(key, kind, at, str(reason)[:500] if reason else None, delivery_id))
    return events, (no_key, unreadable)


ROUTES = [Route("/webhooks/sendgrid", sendgrid_events, methods=["POST"])]
