"""Acknowledging an escalation from its email's one-time link, against a real uvicorn server."""

from __future__ import annotations

import re
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path

import httpx
import pytest

from comms.services.escalations import notify_due_levels
from comms.services.incidents import list_incidents, open_incident
from tests.support.console_server import ConsoleServer, start_console

ACK_LINK = re.compile(r"http://127\.0\.0\.1:\d+/ack/[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+")


@pytest.fixture
def console(tmp_path: Path, database_url: str) -> Iterator[ConsoleServer]:
    server = start_console(tmp_path, database_url=database_url)
    yield server
    server.stop()


def escalation_links(outbox: Path) -> dict[str, str]:
    """Each escalation email's recipient and the ack link in its text part, from the outbox's .eml files."""
    links: dict[str, str] = {}
    for path in sorted(outbox.rglob("escalation*.eml")):
        mail = message_from_bytes(path.read_bytes(), policy=policy.default)
        text = mail.get_body(preferencelist=("plain",))
        assert text is not None
        found = ACK_LINK.findall(text.get_content())
        assert len(found) == 1, path.name
        links[str(mail["To"])] = found[0]
    return links


def _open_and_send(console: ConsoleServer) -> int:
    services = console.services
    outcome = open_incident(
        services.engine, services.dispatcher.plans, severity="sev1", summary="Sign-in fails", now=services.clock()
    )
    services.dispatcher.dispatch_now(outcome.occurrences)
    return outcome.incident_id


def _incident(console: ConsoleServer, incident_id: int) -> dict[str, object]:
    services = console.services
    views = list_incidents(services.engine, services.dispatcher.plans, now=services.clock())
    return next(view.to_json() for view in views if view.id == incident_id)


def _csrf(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found is not None, page.text
    return found.group(1)


def test_every_escalation_email_carries_its_own_link(console: ConsoleServer) -> None:
    """Each recipient of the level-1 notice gets a file with a link of their own."""
    _open_and_send(console)
    links = escalation_links(console.outbox)
    assert "oncall@example.com" in links
    assert len(set(links.values())) == len(links) >= 2


def test_opening_the_link_changes_nothing(console: ConsoleServer) -> None:
    """GET /ack/{token} shows the incident and an Acknowledge button; the incident stays open."""
    incident_id = _open_and_send(console)
    link = escalation_links(console.outbox)["oncall@example.com"]
    with httpx.Client(timeout=10) as client:
        page = client.get(link)
    assert page.status_code == 200
    assert "Sign-in fails" in page.text and 'id="acknowledge"' in page.text
    assert _incident(console, incident_id)["acked_by"] is None


def test_the_button_acknowledges_once_and_stops_escalation(console: ConsoleServer) -> None:
    """POST acknowledges as the recipient; level 2 is never queued; a replay says so and changes nothing."""
    incident_id = _open_and_send(console)
    link = escalation_links(console.outbox)["oncall@example.com"]
    with httpx.Client(timeout=10) as client:
        page = client.get(link)
        answer = client.post(link, data={"csrf": _csrf(page)})
        assert answer.status_code == 200
        assert "escalation has stopped" in answer.text
        acked = _incident(console, incident_id)
        assert acked["acked_by"] == "oncall@example.com (email link)"
        replay = client.post(link, data={"csrf": _csrf(page)})
    assert "already used" in replay.text
    assert _incident(console, incident_id)["acked_at"] == acked["acked_at"]
    services = console.services
    console.clock.advance(minutes=20)
    assert notify_due_levels(services.engine, services.dispatcher.plans, now=services.clock()) == []


def test_a_second_recipients_link_finds_it_already_acknowledged(console: ConsoleServer) -> None:
    """After one recipient acknowledged, another's link acknowledges nothing and names who did."""
    incident_id = _open_and_send(console)
    links = escalation_links(console.outbox)
    first = links.pop("oncall@example.com")
    other = next(iter(links.values()))
    with httpx.Client(timeout=10) as client:
        csrf = _csrf(client.get(first))
        client.post(first, data={"csrf": csrf})
        page = client.get(other)
        assert 'id="acknowledge"' not in page.text
        assert "Acknowledged by oncall@example.com" in page.text
        answer = client.post(other, data={"csrf": csrf})
    assert "already acknowledged by oncall@example.com" in answer.text
    assert _incident(console, incident_id)["acked_by"] == "oncall@example.com (email link)"


def test_a_forged_link_is_refused(console: ConsoleServer) -> None:
    """A link whose signature does not match answers 403 and acknowledges nothing."""
    incident_id = _open_and_send(console)
    link = escalation_links(console.outbox)["oncall@example.com"]
    body, _, signature = link.rpartition(".")
    forged = f"{body}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"
    with httpx.Client(timeout=10) as client:
        page = client.get(link)
        answer = client.post(forged, data={"csrf": _csrf(page)})
    assert answer.status_code == 403
    assert _incident(console, incident_id)["acked_by"] is None


def test_an_expired_link_is_refused(console: ConsoleServer) -> None:
    """Past its expiry (24 h by default) the link answers 403 and acknowledges nothing."""
    incident_id = _open_and_send(console)
    link = escalation_links(console.outbox)["oncall@example.com"]
    with httpx.Client(timeout=10) as client:
        page = client.get(link)
        console.clock.advance(1, hours=24)
        answer = client.post(link, data={"csrf": _csrf(page)})
    assert answer.status_code == 403
    assert "expired" in answer.text
    assert _incident(console, incident_id)["acked_by"] is None


def test_a_post_without_the_form_token_is_refused(console: ConsoleServer) -> None:
    """A cross-site POST (no CSRF token) to a genuine link answers 403 and acknowledges nothing."""
    incident_id = _open_and_send(console)
    link = escalation_links(console.outbox)["oncall@example.com"]
    with httpx.Client(timeout=10) as client:
        answer = client.post(link, data={})
    assert answer.status_code == 403
    assert _incident(console, incident_id)["acked_by"] is None
