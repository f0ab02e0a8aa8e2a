"""Fixtures: the vendor fakes and a webhook receiver on 127.0.0.1, a manual clock, no COMMS_* from the env."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from fakes.sendgrid import FakeSendGrid
from fakes.slack import FakeSlack
from fakes.statuspage import FakeStatuspage
from fakes.webhook import FakeWebhookReceiver

from tests.support.clock import FakeClock

from .builders import NOW, PAGE_ID, SENDGRID_KEY, SLACK_TOKEN, STATUSPAGE_KEY, WEBHOOK_SECRET


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No COMMS_* variable of the developer's shell reaches the code under test."""
    for name in list(os.environ):
        if name.upper().startswith("COMMS_") and name.upper() != "COMMS_SPECS_DIR":
            monkeypatch.delenv(name)


@pytest.fixture
def clock() -> FakeClock:
    """Wall and monotonic time that only move when a test (or a pacer's sleep) moves them."""
    return FakeClock(NOW)


@pytest.fixture
def sendgrid() -> Iterator[FakeSendGrid]:
    """A validating SendGrid fake that knows the test key."""
    with FakeSendGrid(api_key=SENDGRID_KEY) as fake:
        yield fake  # type: ignore[misc]


@pytest.fixture
def slack(clock: FakeClock) -> Iterator[FakeSlack]:
    """A Slack fake with #cutover and #exec-updates (the bot is a member of both)."""
    fake = FakeSlack(token=SLACK_TOKEN, clock=lambda: clock().timestamp())
    fake.add_channel("cutover")
    fake.add_channel("exec-updates")
    with fake:
        yield fake


@pytest.fixture
def statuspage() -> Iterator[FakeStatuspage]:
    """A Statuspage fake with the test page and two components."""
    with FakeStatuspage(api_key=STATUSPAGE_KEY, page_id=PAGE_ID) as fake:
        yield fake  # type: ignore[misc]


@pytest.fixture
def webhook(clock: FakeClock) -> Iterator[FakeWebhookReceiver]:
    """A webhook receiver sharing the test secret, its replay window on the manual clock."""
    with FakeWebhookReceiver(secret=WEBHOOK_SECRET, clock=lambda: clock().timestamp()) as fake:
        yield fake  # type: ignore[misc]
