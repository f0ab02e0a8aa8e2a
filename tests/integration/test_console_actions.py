"""The comms lead's actions in the console: confirmed, recorded with who did it, sent by the one sender."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, select

from comms.services.incidents import list_incidents
from comms.store.repository import load_cutover
from comms.store.tables import EventRow
from comms.web.views import cutover_names
from tests.integration.test_console_pages import _login
from tests.support.console_server import ConsoleServer, start_console


@pytest.fixture
def console(tmp_path: Path, database_url: str) -> Iterator[ConsoleServer]:
    server = start_console(tmp_path, database_url=database_url)
    yield server
    server.stop()


@pytest.fixture
def client(console: ConsoleServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=console.url, timeout=30) as client:
        _login(client)
        yield client


def _name(console: ConsoleServer) -> str:
    return cutover_names(console.services.engine)[0]


def _csrf(client: httpx.Client, path: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get(path).text)
    assert found is not None
    return found.group(1)


def _state(console: ConsoleServer) -> str:
    return load_cutover(console.services.engine, None).state


def test_go_asks_for_confirmation_first(console: ConsoleServer, client: httpx.Client) -> None:
    """/actions/confirm shows a confirmation form and changes nothing."""
    name = _name(console)
    csrf = _csrf(client, f"/cutovers/{name}")
    page = client.post("/actions/confirm", data={"csrf": csrf, "action": "go", "cutover": name, "by": "Dana"})
    assert page.status_code == 200 and 'id="confirm"' in page.text and "Dana" in page.text
    assert _state(console) == "planned"


def test_a_confirmed_go_is_recorded_with_who_and_sent(console: ConsoleServer, client: httpx.Client) -> None:
    """The confirmed go moves the cutover to go, names Dana in the event, and the go decision is sent."""
    name = _name(console)
    console.clock.advance(hours=22)  # T-2h: inside the plan's go window (T0 is a day after the fixture's now)
    csrf = _csrf(client, f"/cutovers/{name}")
    done = client.post(
        "/actions/do", data={"csrf": csrf, "action": "go", "cutover": name, "by": "Dana", "confirmed": "yes"}
    )
    assert done.status_code == 200 and 'id="done"' in done.text
    assert _state(console) == "go"
    with Session(console.services.engine) as session:
        event = session.exec(select(EventRow).where(EventRow.kind == "go")).one()
    assert json.loads(event.payload_json)["by"] == "Dana (console)"
    assert list(console.outbox.rglob("go-decision*"))


def test_an_action_without_the_csrf_token_is_refused(console: ConsoleServer, client: httpx.Client) -> None:
    """A POST without the session's CSRF token answers 403 and changes nothing."""
    answer = client.post(
        "/actions/do", data={"action": "go", "cutover": _name(console), "by": "Dana", "confirmed": "yes"}
    )
    assert answer.status_code == 403
    assert _state(console) == "planned"


def test_an_action_without_login_is_refused(console: ConsoleServer) -> None:
    """Without a session the action redirects to the login page and changes nothing."""
    with httpx.Client(base_url=console.url, timeout=10) as anonymous:
        answer = anonymous.post(
            "/actions/do", data={"action": "go", "cutover": _name(console), "by": "Eve", "confirmed": "yes"}
        )
    assert answer.status_code == 303
    assert _state(console) == "planned"


def test_an_unconfirmed_action_does_nothing(console: ConsoleServer, client: httpx.Client) -> None:
    """/actions/do without confirmed=yes answers 400 and changes nothing."""
    csrf = _csrf(client, f"/cutovers/{_name(console)}")
    answer = client.post("/actions/do", data={"csrf": csrf, "action": "go", "cutover": _name(console), "by": "Dana"})
    assert answer.status_code == 400
    assert _state(console) == "planned"


def test_a_refused_action_says_why(console: ConsoleServer, client: httpx.Client) -> None:
    """Complete on a planned cutover is refused by the same rules as the CLI (409, the reason shown)."""
    csrf = _csrf(client, f"/cutovers/{_name(console)}")
    answer = client.post(
        "/actions/do",
        data={"csrf": csrf, "action": "complete", "cutover": _name(console), "by": "Dana", "confirmed": "yes"},
    )
    assert answer.status_code == 409
    assert _state(console) == "planned"


def test_incidents_open_and_resolve_from_the_console_name_who(console: ConsoleServer, client: httpx.Client) -> None:
    """Open then resolve an incident in the console; its history names Dana on both steps."""
    name = _name(console)
    csrf = _csrf(client, f"/cutovers/{name}")
    opened = client.post(
        "/actions/do",
        data={
            "csrf": csrf,
            "action": "incident-open",
            "cutover": name,
            "by": "Dana",
            "severity": "sev2",
            "summary": "Search is slow",
            "confirmed": "yes",
        },
    )
    assert opened.status_code == 200, opened.text
    resolved = client.post(
        "/actions/do",
        data={
            "csrf": csrf,
            "action": "incident-resolve",
            "incident": "1",
            "by": "Dana",
            "message": "Index rebuilt",
            "confirmed": "yes",
        },
    )
    assert resolved.status_code == 200, resolved.text
    services = console.services
    view = list_incidents(services.engine, services.dispatcher.plans, now=services.clock())[0]
    assert view.state == "resolved"
    details = [step.detail for step in view.history if step.kind in ("opened", "resolved")]
    assert details and all("(by Dana (console))" in detail for detail in details)
