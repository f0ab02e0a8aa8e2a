"""Unsubscribing from an end-user email's link (RFC 8058 one-click), against a real uvicorn server."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, select

from comms.store.tables import DeliveryRow, UnsubscribeRow
from tests.support.console_server import ConsoleServer, start_console
from tests.support.plans import wall_clock_plan

ONE_CLICK = {"List-Unsubscribe": "One-Click"}


@pytest.fixture
def console(tmp_path: Path, database_url: str) -> Iterator[ConsoleServer]:
    now = datetime.now(UTC).replace(microsecond=0)
    t0 = now + timedelta(hours=47, minutes=59)
    server = start_console(tmp_path, now=now, t0=t0, plan_root=wall_clock_plan(), database_url=database_url)
    server.services.dispatcher.run_until_idle()  # the T-48h advance notice, into the outbox
    yield server
    server.stop()


def _end_user_mail(console: ConsoleServer) -> tuple[str, str, str]:
    """An end user's advance notice: its address, its List-Unsubscribe-Post header and its footer link."""
    for path in sorted(console.outbox.rglob("advance-notice.end-users*.eml")):
        mail = message_from_bytes(path.read_bytes(), policy=policy.default)
        text = mail.get_body(preferencelist=("plain",))
        assert text is not None
        links = re.findall(
            re.escape(console.url) + r"/unsubscribe/[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+", text.get_content()
        )
        assert links, path.name
        assert f"<{links[0]}>" in str(mail["List-Unsubscribe"])
        return mail["To"].addresses[0].addr_spec, str(mail["List-Unsubscribe-Post"]), links[0]
    raise AssertionError("no end-user advance notice in the outbox")


def _unsubscribed(console: ConsoleServer) -> list[tuple[str, str]]:
    with Session(console.services.engine) as session:
        return [(row.audience, row.address) for row in session.exec(select(UnsubscribeRow)).all()]


def test_the_link_asks_first_and_changes_nothing(console: ConsoleServer) -> None:
    """GET shows who is unsubscribed from what and a button; a mail scanner's prefetch records nothing."""
    address, post_header, link = _end_user_mail(console)
    assert post_header == "List-Unsubscribe=One-Click"
    page = httpx.get(link)
    assert page.status_code == 200 and address.lower() in page.text and 'name="List-Unsubscribe"' in page.text
    assert _unsubscribed(console) == []


def test_one_click_unsubscribes_once_and_later_emails_skip_the_address(console: ConsoleServer) -> None:
    """The one-click POST records the address; a replay changes nothing; the T-24h reminder is not sent to it."""
    address, _, link = _end_user_mail(console)
    done = httpx.post(link, data=ONE_CLICK)
    assert done.status_code == 200 and "Done:" in done.text
    again = httpx.post(link, data=ONE_CLICK)
    assert again.status_code == 200 and "Done:" not in again.text and "since" in again.text
    assert _unsubscribed(console) == [("end-users", address.lower())]

    console.clock.advance(hours=24)  # the reminder falls due
    console.services.dispatcher.run_until_idle()
    with Session(console.services.engine) as session:
        rows = session.exec(
            select(DeliveryRow).where(DeliveryRow.audience == "end-users", DeliveryRow.channel == "email")
        ).all()
    reminder = {row.recipient.lower(): row for row in rows if "reminder" in row.idempotency_key}
    assert reminder[address.lower()].state == "suppressed"
    assert "unsubscribed" in (reminder[address.lower()].last_error or "")
    assert {row.state for key, row in reminder.items() if key != address.lower()} == {"sent"}


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("/unsubscribe/not-a-token", ONE_CLICK),
        ("/unsubscribe/ZW5kLXVzZXJzCmFAZXhhbXBsZS5jb20.AAAAAAAAAAAAAAAAAAAAAA", ONE_CLICK),  # forged signature
        (None, {}),  # a valid link without List-Unsubscribe=One-Click
    ],
)
def test_bad_requests_are_refused_and_change_nothing(console: ConsoleServer, path: str | None, data: dict) -> None:
    _, _, link = _end_user_mail(console)
    response = httpx.post(console.url + path if path else link, data=data)
    assert response.status_code == 400
    assert "Traceback" not in response.text and _unsubscribed(console) == []
