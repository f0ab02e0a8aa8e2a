"""Quiet hours end to end against the SendGrid fake, across the night New York's clocks go back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fakes.sendgrid import FakeSendGrid

from comms.bootstrap import Services, bootstrap
from comms.plan.loader import load_plan
from comms.plan.models import Trigger
from comms.services.scheduling import apply_event, schedule_cutover
from tests.support.clock import FakeClock

from .builders import make_settings

REPO_ROOT = Path(__file__).resolve().parents[2]
PLAN = load_plan(REPO_ROOT, check_templates=False)
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
REMINDER_DUE = T0 - timedelta(hours=24)  # 09:00 UTC on 1 Nov = 04:00 EST, the clocks went back at 02:00
QUIET_END = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)  # 07:00 EST (a fixed EDT offset would say 11:00 UTC)
END_USER = "ada.lovelace@example.com"
STAFF = "cto@example.com"
SCHEDULED_AT = T0 - timedelta(hours=60)  # before the first message: a T0 that close would miss some (refused)


@pytest.fixture
def services(tmp_path: Path, sendgrid: FakeSendGrid, database_url: str) -> tuple[Services, FakeClock]:
    clock = FakeClock(SCHEDULED_AT)
    built = bootstrap(
        make_settings(tmp_path, sendgrid=sendgrid, database_url=database_url), clock=clock, sleep=clock.sleep
    )
    built.dispatcher.plans.put(PLAN)
    schedule_cutover(built.engine, PLAN, start=T0, now=clock())
    return built, clock


def _reminders_to(sendgrid: FakeSendGrid, address: str) -> list[str]:
    return [
        body["custom_args"]["occurrence"]
        for body in sendgrid.accepted
        for p in body["personalizations"]
        if p["to"][0]["email"] == address and body["custom_args"]["message"] == "reminder"
    ]


def test_end_users_reminder_waits_for_seven_in_the_morning_across_dst(
    services: tuple[Services, FakeClock], sendgrid: FakeSendGrid
) -> None:
    """Staff get the reminder at 04:00 New York time; end users at 07:00 EST (12:00 UTC), not before."""
    built, clock = services
    clock.set(REMINDER_DUE)
    built.dispatcher.tick()
    assert _reminders_to(sendgrid, STAFF) == ["reminder"] and _reminders_to(sendgrid, END_USER) == []
    clock.set(QUIET_END - timedelta(minutes=1))  # 11:59 UTC: an hour past a naive 07:00 EDT, still quiet
    built.dispatcher.tick()
    assert _reminders_to(sendgrid, END_USER) == []
    clock.set(QUIET_END)
    built.dispatcher.tick()
    assert _reminders_to(sendgrid, END_USER) == ["reminder~end-users"]
    assert _reminders_to(sendgrid, STAFF) == ["reminder"] and sendgrid.violations == []


def test_reschedule_out_of_the_night_sends_end_users_with_everyone(
    services: tuple[Services, FakeClock], sendgrid: FakeSendGrid
) -> None:
    """Moved to a T0 whose reminder is at 17:00 New York time, the end users' part merges back: one send, on time."""
    built, clock = services
    clock.set(REMINDER_DUE - timedelta(hours=30))
    new_t0 = datetime(2026, 11, 9, 22, 0, tzinfo=UTC)
    apply_event(
        built.engine,
        PLAN,
        cutover_name=None,
        event=Trigger.RESCHEDULE,
        now=clock(),
        new_start=new_t0,
        reason="a week later",
    )
    clock.set(new_t0 - timedelta(hours=24))
    built.dispatcher.tick()
    assert _reminders_to(sendgrid, END_USER) == ["reminder"] and _reminders_to(sendgrid, STAFF) == ["reminder"]
    clock.set(new_t0 - timedelta(hours=12))
    built.dispatcher.tick()
    assert _reminders_to(sendgrid, END_USER) == ["reminder"]
