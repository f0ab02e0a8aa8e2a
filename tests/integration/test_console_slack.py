"""The Slack "Acknowledge" button: POST /slack/interactions signed as Slack signs, against a real server."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from fakes.slack import FakeSlack

from comms.services.escalations import notify_due_levels
from comms.services.incidents import list_incidents, open_incident
from tests.support.console_server import SLACK_SIGNING_SECRET, ConsoleServer, start_console

SLACK_TOKEN = "xoxb-console-tests"


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    fake = FakeSlack(token=SLACK_TOKEN)
    for name in ("cutover", "exec-updates", "customer-success", "support"):
        fake.add_channel(name)
    with fake:
        yield fake


@pytest.fixture
def console(tmp_path: Path, slack: FakeSlack) -> Iterator[ConsoleServer]:
    server = start_console(tmp_path, slack_api_url=slack.api_url, slack_token=SLACK_TOKEN)
    yield server
    server.stop()


def _escalation_post(console: ConsoleServer, slack: FakeSlack) -> tuple[int, str, dict[str, Any]]:
    services = console.services
    outcome = open_incident(
        services.engine, services.dispatcher.plans, severity="sev1", summary="Sign-in fails", now=services.clock()
    )
    services.dispatcher.dispatch_now(outcome.occurrences)
    channel = slack.channel("cutover")
    assert channel is not None
    posts = [m for m in channel.messages if any(b.get("type") == "actions" for b in m.get("blocks", []))]
    assert len(posts) == 1
    return outcome.incident_id, channel.id, posts[0]


def _payload(channel_id: str, message: dict[str, Any]) -> bytes:
    button = next(b for b in message["blocks"] if b["type"] == "actions")["elements"][0]
    payload = {
        "type": "block_actions",
        "user": {"id": "U0ALICE", "username": "alice", "name": "alice"},
        "container": {"type": "message", "channel_id": channel_id, "message_ts": message["ts"]},
        "channel": {"id": channel_id},
        "message": message,
        "actions": [
            {"action_id": button["action_id"], "block_id": "comms_ack", "value": button["value"], "type": "button"}
        ],
    }
    return urlencode({"payload": json.dumps(payload)}).encode("utf-8")


def _signed(body: bytes, *, timestamp: int, secret: str = SLACK_SIGNING_SECRET) -> dict[str, str]:
    stamp = str(timestamp)
    digest = hmac.new(secret.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


def _now(console: ConsoleServer) -> int:
    """The console clock's time, as Slack stamps a request sent now."""
    return int(console.services.clock().timestamp())


def _acked_by(console: ConsoleServer, incident_id: int) -> object:
    services = console.services
    views = list_incidents(services.engine, services.dispatcher.plans, now=services.clock())
    return next(v.acked_by for v in views if v.id == incident_id)


def _post(console: ConsoleServer, body: bytes, headers: dict[str, str]) -> httpx.Response:
    with httpx.Client(timeout=10) as client:
        return client.post(f"{console.url}/slack/interactions", content=body, headers=headers)


def test_escalation_posts_carry_an_acknowledge_button(console: ConsoleServer, slack: FakeSlack) -> None:
    """The level-1 post in #cutover has one actions block whose button names the incident and level."""
    incident_id, _, post = _escalation_post(console, slack)
    button = next(b for b in post["blocks"] if b["type"] == "actions")["elements"][0]
    assert button["text"]["text"] == "Acknowledge"
    assert button["value"] == f"{incident_id}:1"


def test_a_signed_click_acknowledges_by_the_slack_user_and_updates_the_post(
    console: ConsoleServer, slack: FakeSlack
) -> None:
    """A genuine click acks as @alice, stops escalation and replaces the post without its button."""
    incident_id, channel_id, post = _escalation_post(console, slack)
    body = _payload(channel_id, post)
    answer = _post(console, body, _signed(body, timestamp=_now(console)))
    assert answer.status_code == 200
    assert _acked_by(console, incident_id) == "@alice (Slack)"
    updated = next(m for m in slack.channels[channel_id].messages if m["ts"] == post["ts"])
    assert not any(b["type"] == "actions" for b in updated["blocks"])
    assert "Acknowledged by <@U0ALICE>" in json.dumps(updated["blocks"])
    console.clock.advance(minutes=20)
    services = console.services
    assert notify_due_levels(services.engine, services.dispatcher.plans, now=services.clock()) == []


def test_a_replayed_click_changes_nothing(console: ConsoleServer, slack: FakeSlack) -> None:
    """The same signed request sent twice acknowledges once; the second answer says nothing changed."""
    incident_id, channel_id, post = _escalation_post(console, slack)
    body = _payload(channel_id, post)
    headers = _signed(body, timestamp=_now(console))
    _post(console, body, headers)
    updates = len(slack.requests_to("/chat.update"))
    replay = _post(console, body, headers)
    assert replay.status_code == 200
    assert "Nothing changed" in replay.json()["text"]
    assert len(slack.requests_to("/chat.update")) == updates
    assert _acked_by(console, incident_id) == "@alice (Slack)"


def test_a_bad_signature_is_refused(console: ConsoleServer, slack: FakeSlack) -> None:
    """A request signed with another secret answers 401 and acknowledges nothing."""
    incident_id, channel_id, post = _escalation_post(console, slack)
    body = _payload(channel_id, post)
    answer = _post(console, body, _signed(body, timestamp=_now(console), secret="not-the-secret"))
    assert answer.status_code == 401
    assert _acked_by(console, incident_id) is None


def test_a_missing_signature_is_refused(console: ConsoleServer, slack: FakeSlack) -> None:
    """A request without Slack's headers answers 401 and acknowledges nothing."""
    incident_id, channel_id, post = _escalation_post(console, slack)
    answer = _post(console, _payload(channel_id, post), {"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 401
    assert _acked_by(console, incident_id) is None


def test_a_stale_timestamp_is_refused(console: ConsoleServer, slack: FakeSlack) -> None:
    """A correctly signed request more than five minutes old answers 401 and acknowledges nothing."""
    incident_id, channel_id, post = _escalation_post(console, slack)
    body = _payload(channel_id, post)
    stale = _now(console) - 301
    answer = _post(console, body, _signed(body, timestamp=stale))
    assert answer.status_code == 401
    assert _acked_by(console, incident_id) is None


def test_an_oversize_interaction_is_refused(console: ConsoleServer, slack: FakeSlack) -> None:
    """A body over 64 KB answers 413 even when signed."""
    body = b"payload=" + b"x" * (64 * 1024)
    assert _post(console, body, _signed(body, timestamp=_now(console))).status_code == 413
