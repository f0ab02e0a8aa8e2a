"""The console's pages, login and JSON twins against a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from comms.web.views import cutover_names
from tests.support.console_server import CONSOLE_TOKEN, ConsoleServer, start_console


@pytest.fixture
def console(tmp_path: Path) -> Iterator[ConsoleServer]:
    server = start_console(tmp_path)
    yield server
    server.stop()


def _client(console: ConsoleServer) -> httpx.Client:
    return httpx.Client(base_url=console.url, follow_redirects=False, timeout=10)


def _login(client: httpx.Client, token: str = CONSOLE_TOKEN) -> httpx.Response:
    page = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    return client.post("/login", data={"csrf": csrf.group(1), "token": token, "next": "/"})


def test_healthz_answers_without_login(console: ConsoleServer) -> None:
    """GET /healthz is 200 'ok' with no session or token."""
    with _client(console) as client:
        answer = client.get("/healthz")
    assert answer.status_code == 200
    assert answer.text == "ok"


def test_pages_ask_for_login_first(console: ConsoleServer) -> None:
    """Without a session the cutover page redirects to /login."""
    with _client(console) as client:
        answer = client.get("/cutovers/checkout-v2")
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/login?next=/cutovers/")


def test_login_sets_a_strict_httponly_session_and_shows_the_cutover(console: ConsoleServer) -> None:
    """The right token starts an HttpOnly SameSite=Strict session; the cutover page then shows T0 per zone."""
    with _client(console) as client:
        answer = _login(client)
        assert answer.status_code == 303
        cookie = answer.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie
        assert CONSOLE_TOKEN not in cookie
        index = client.get("/")
        page = client.get(index.headers["location"])
    assert page.status_code == 200
    assert "State: <strong>planned</strong>" in page.text
    assert "Europe/Berlin" in page.text or "America/" in page.text
    assert 'id="timeline"' in page.text
    assert CONSOLE_TOKEN not in page.text


def test_a_wrong_token_is_refused(console: ConsoleServer) -> None:
    """A wrong token answers 401 and sets no session."""
    with _client(console) as client:
        answer = _login(client, token="guess")
    assert answer.status_code == 401
    assert "comms_session" not in answer.headers.get("set-cookie", "")


def test_login_without_the_csrf_token_is_refused(console: ConsoleServer) -> None:
    """A login POST without the form's CSRF token answers 403, even with the right console token."""
    with _client(console) as client:
        answer = client.post("/login", data={"token": CONSOLE_TOKEN, "next": "/"})
    assert answer.status_code == 403
    assert "comms_session" not in answer.headers.get("set-cookie", "")


def test_api_needs_the_bearer_token(console: ConsoleServer) -> None:
    """/api/cutovers/{name} is 401 without Authorization and JSON with the bearer token."""
    with _client(console) as client:
        assert client.get("/api/incidents").status_code == 401
        wrong = client.get("/api/cutovers/x", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        names = cutover_names(console.services.engine)
        answer = client.get(f"/api/cutovers/{names[0]}", headers={"Authorization": f"Bearer {CONSOLE_TOKEN}"})
    assert answer.status_code == 200
    data = answer.json()
    assert data["state"] == "planned"
    assert data["timeline"] and data["zones"]
    assert {"sent", "pending", "total"} <= set(data["totals"])


def test_oversize_bodies_are_refused(console: ConsoleServer) -> None:
    """A body over 64 KB answers 413 before any route reads it."""
    with _client(console) as client:
        answer = client.post(
            "/login", content=b"x" * (64 * 1024 + 1), headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
    assert answer.status_code == 413


def test_pages_forbid_framing_and_inline_scripts(console: ConsoleServer) -> None:
    """Every answer carries a strict Content-Security-Policy and X-Frame-Options DENY."""
    with _client(console) as client:
        answer = client.get("/login")
    assert "default-src 'self'" in answer.headers["content-security-policy"]
    assert answer.headers["x-frame-options"] == "DENY"


def test_healthz_is_503_when_the_database_does_not_answer(tmp_path: Path) -> None:
    """With the database file's folder gone and read-only, /healthz answers 503, never a traceback."""
    server = start_console(tmp_path)
    try:
        server.services.engine.dispose()
        (tmp_path / "comms.db").unlink()
        for suffix in ("-wal", "-shm"):
            (tmp_path / f"comms.db{suffix}").unlink(missing_ok=True)
        (tmp_path / "comms.db").mkdir()  # a folder where the database file was: SQLite cannot open it
        with _client(server) as client:
            answer = client.get("/healthz")
    finally:
        server.stop()
    assert answer.status_code == 503
