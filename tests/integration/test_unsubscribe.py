"""Unsubscribe end to end against the SendGrid fake: RFC 8058 headers, footer link, ASM group, suppression list."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fakes.sendgrid import FakeSendGrid
from sqlmodel import Session, select

from comms.bootstrap import Services, bootstrap
from comms.core.unsubscribe import UNSUBSCRIBE_TAG, verify_token
from comms.plan.loader import load_plan
from comms.plan.models import Plan
from comms.services.scheduling import schedule_cutover
from comms.store.tables import DeliveryRow
from tests.support.clock import FakeClock

from .builders import T0, make_settings

UNSUBSCRIBED = "grace.hopper@example.com"
READER = "ada.lovelace@example.com"
SECRET = "unsubscribe-signing-secret-0123456789"


def _plan(root: Path, *, group_id: int | None = None) -> Plan:
    path = root / "audiences" / "end-users.yaml"
    text = path.read_text(encoding="utf-8")
    if group_id is not None:
        text = text.replace("unsubscribe:\n", f"unsubscribe:\n  group_id: {group_id}\n")
    path.write_text(text, encoding="utf-8")
    (root / "audiences" / "end-users-unsubscribed.csv").write_text(f"email\n{UNSUBSCRIBED.upper()}\n", encoding="utf-8")
    return load_plan(root, check_templates=False)


def _send_advance_notice(
    tmp_path: Path, plan: Plan, sendgrid: FakeSendGrid, clock: FakeClock, **settings: Any
) -> Services:
    services = bootstrap(make_settings(tmp_path, sendgrid=sendgrid, **settings), clock=clock, sleep=clock.sleep)
    services.dispatcher.plans.put(plan)
    schedule_cutover(services.engine, plan, start=T0, now=clock())
    services.dispatcher.run_until_idle()  # the clock is at T-48h: the advance notice goes out
    return services


def _personalizations(sendgrid: FakeSendGrid) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Each accepted address -> (its personalization, the request body)."""
    return {p["to"][0]["email"]: (p, body) for body in sendgrid.accepted for p in body["personalizations"]}


def test_suppressed_address_is_never_sent_and_recorded_suppressed(
    tmp_path: Path, plan_copy: Path, sendgrid: FakeSendGrid, clock: FakeClock
) -> None:
    """An address on the suppression list (any case) is recorded 'suppressed' and never reaches SendGrid."""
    services = _send_advance_notice(tmp_path, _plan(plan_copy), sendgrid, clock)
    sent_to = _personalizations(sendgrid)
    assert READER in sent_to and UNSUBSCRIBED not in sent_to
    with Session(services.engine) as session:
        rows = session.exec(select(DeliveryRow).where(DeliveryRow.audience == "end-users")).all()
    states = {r.recipient: r.state for r in rows}
    assert states[UNSUBSCRIBED] == "suppressed" and states[READER] == "sent"
    assert sendgrid.violations == []


def test_end_user_email_carries_one_click_headers_and_its_own_link(
    tmp_path: Path, plan_copy: Path, sendgrid: FakeSendGrid, clock: FakeClock
) -> None:
    """With a public URL: List-Unsubscribe (signed URL + mailto), List-Unsubscribe-Post, the link in the footer."""
    _send_advance_notice(
        tmp_path, _plan(plan_copy), sendgrid, clock, public_url="https://comms.example.com", unsubscribe_secret=SECRET
    )
    personalization, body = _personalizations(sendgrid)[READER]
    headers = personalization["headers"]
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url, mailto = (part.strip(" <>") for part in headers["List-Unsubscribe"].split(","))
    assert url.startswith("https://comms.example.com/unsubscribe/") and mailto.startswith("mailto:support@example.com")
    assert verify_token(SECRET.encode(), url.rsplit("/", 1)[1]) == ("end-users", READER)
    assert personalization["substitutions"] == {UNSUBSCRIBE_TAG: url}
    html = next(c["value"] for c in body["content"] if c["type"] == "text/html")
    assert f'<a href="{UNSUBSCRIBE_TAG}">Unsubscribe</a>' in html
    assert sendgrid.violations == []


def test_without_a_public_url_the_unsubscribe_is_a_mailto_without_one_click(
    tmp_path: Path, plan_copy: Path, sendgrid: FakeSendGrid, clock: FakeClock
) -> None:
    """No COMMS_PUBLIC_URL: List-Unsubscribe is the mailto alone and no List-Unsubscribe-Post (RFC 8058 wants HTTPS)."""
    _send_advance_notice(tmp_path, _plan(plan_copy), sendgrid, clock)
    personalization, _ = _personalizations(sendgrid)[READER]
    assert personalization["headers"] == {
        "List-Unsubscribe": "<mailto:support@example.com?subject=unsubscribe%20end-users>"
    }
    assert personalization["substitutions"][UNSUBSCRIBE_TAG].startswith("mailto:")


def test_suppression_group_is_sent_as_asm(
    tmp_path: Path, plan_copy: Path, sendgrid: FakeSendGrid, clock: FakeClock
) -> None:
    """An audience's group_id becomes the request's asm.group_id, accepted by the validating fake."""
    _send_advance_notice(tmp_path, _plan(plan_copy, group_id=4242), sendgrid, clock)
    _, body = _personalizations(sendgrid)[READER]
    assert body["asm"] == {"group_id": 4242} and sendgrid.violations == []


def test_staff_emails_carry_no_unsubscribe(
    tmp_path: Path, plan_copy: Path, sendgrid: FakeSendGrid, clock: FakeClock
) -> None:
    """Staff audiences (no 'unsubscribe' block) get operational mail without headers, link or asm."""
    _send_advance_notice(
        tmp_path,
        _plan(plan_copy, group_id=4242),
        sendgrid,
        clock,
        public_url="https://c.example.com",
        unsubscribe_secret=SECRET,
    )
    personalization, body = _personalizations(sendgrid)["oncall@example.com"]
    assert "headers" not in personalization and "substitutions" not in personalization and "asm" not in body
    text = next(c["value"] for c in body["content"] if c["type"] == "text/plain")
    assert "Unsubscribe" not in text and UNSUBSCRIBE_TAG not in text


@pytest.mark.parametrize("token", ["", "abc", "abc.def", "ZW5kLXVzZXJzCmFkYUBleGFtcGxlLmNvbQ.AAAAAAAAAAAAAAAAAAAAAA"])
def test_forged_tokens_are_refused(token: str) -> None:
    """A token without a valid signature names nobody."""
    assert verify_token(SECRET.encode(), token) is None
