"""``POST /slack/interactions``: the "Acknowledge" button of an escalation post, verified with Slack's signature.

slack_sdk's SignatureVerifier checks ``X-Slack-Signature`` (v0 HMAC-SHA256 with the signing secret) and
``X-Slack-Request-Timestamp`` within five minutes of the console's clock; anything else is 401 and
changes nothing. A genuine click acknowledges as ``comms incident ack`` does, by the Slack user; a
repeated click (or a replayed request) finds the incident acknowledged and changes nothing. The post
is then replaced (``chat.update``) with a line saying who acknowledged it, and no button.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import parse_qs

from slack_sdk.signature import Clock as SlackClock
from slack_sdk.signature import SignatureVerifier
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from comms.channels.slack_blocks import ACK_ACTION_ID, escape_slack
from comms.channels.slack_updates import update_slack_message
from comms.core.times import format_utc
from comms.delivery.sender import send_queued
from comms.errors import ChannelError, StateError
from comms.services.incidents import acknowledge_incident
from comms.web.context import Console

__all__ = ["ROUTES", "slack_interactions"]

log = logging.getLogger(__name__)


class _ConsoleClock(SlackClock):
    """Slack's replay window judged on the console's clock."""

    def __init__(self, console: Console) -> None:
        self._console = console

    def now(self) -> float:
        return self._console.now().timestamp()


async def slack_interactions(request: Request) -> Response:
    """Verify, acknowledge, update the post."""
    console: Console = request.app.state.console
    if not console.slack_signing_secret:
        return JSONResponse({"error": "COMMS_SLACK_SIGNING_SECRET is not set"}, status_code=403)
    body = await request.body()
    verifier = SignatureVerifier(console.slack_signing_secret, clock=_ConsoleClock(console))
    if not verifier.is_valid(
        body, request.headers.get("x-slack-request-timestamp"), request.headers.get("x-slack-signature")
    ):
        log.warning("slack interaction refused: bad or stale signature")
        return JSONResponse({"error": "invalid signature"}, status_code=401)
    try:
        payload = json.loads(parse_qs(body.decode("utf-8")).get("payload", [""])[0])
    except (ValueError, UnicodeDecodeError):
        return JSONResponse({"error": "no interaction payload"}, status_code=400)
    action = _ack_action(payload)
    if action is None:
        return Response(status_code=200)
    text = await run_in_threadpool(_acknowledge, console, payload, action)
    return JSONResponse({"text": text})


def _ack_action(payload: Any) -> tuple[int, int] | None:
    if not isinstance(payload, dict) or payload.get("type") != "block_actions":
        return None
    for action in payload.get("actions") or []:
        if isinstance(action, dict) and action.get("action_id") == ACK_ACTION_ID:
            incident, _, level = str(action.get("value", "")).partition(":")
            if incident.isdigit() and level.isdigit():
                return int(incident), int(level)
    return None


def _acknowledge(console: Console, payload: dict[str, Any], action: tuple[int, int]) -> str:
    services = console.services
    incident_id, level = action
    user = payload.get("user") or {}
    name = str(user.get("username") or user.get("name") or user.get("id") or "someone")
    by = f"@{name} (Slack)"
    now = console.now()
    try:
        outcome = acknowledge_incident(services.engine, console.plans, incident_id, by=by, now=now)
    except StateError as exc:
        return f"Nothing changed: {exc}."
    log.info("incident #%s acknowledged from Slack (level %s)", incident_id, level)
    if outcome.occurrences:
        send_queued(services.dispatcher, outcome.occurrences, ttl=services.settings.lease_seconds, wait=False)
    _replace_post(console, payload, user_id=str(user.get("id") or ""), name=name, when=format_utc(now))
    return f"Incident #{incident_id} acknowledged by {by}; escalation has stopped."


def _replace_post(console: Console, payload: dict[str, Any], *, user_id: str, name: str, when: str) -> None:
    container = payload.get("container") or {}
    message = payload.get("message") or {}
    channel = str(container.get("channel_id") or (payload.get("channel") or {}).get("id") or "")
    ts = str(container.get("message_ts") or message.get("ts") or "")
    if not channel or not ts:
        return
    who = f"<@{user_id}>" if user_id else escape_slack(name)
    blocks = [b for b in message.get("blocks") or [] if isinstance(b, dict) and b.get("type") != "actions"]
    blocks.append(
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": f":white_check_mark: Acknowledged by {who} at {when}"}],
        }
    )
    try:
        update_slack_message(
            console.services.settings,
            channel=channel,
            ts=ts,
            text=f"{message.get('text') or ''}\nAcknowledged by {name}",
            blocks=blocks,
        )
    except ChannelError as exc:
        log.warning("the acknowledged Slack post was not updated: %s", exc)


ROUTES = [Route("/slack/interactions", slack_interactions, methods=["POST"])]
