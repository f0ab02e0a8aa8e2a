"""Quiet hours (comms.core.quiet_hours): the shift out of an audience's night, DST-safe, and the split it makes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from comms.channels.registry import SPECS
from comms.core.quiet_hours import SHARED_CHANNELS, parse_quiet_hours, quiet_end, shifted_due
from comms.core.timeline import build_timeline
from comms.plan.fields import Channel
from comms.plan.models import Plan

NIGHT = parse_quiet_hours("22:00-07:00")
NEW_YORK = "America/New_York"


def test_quiet_hours_must_be_a_start_end_span() -> None:
    """'22:00-07:00' parses; another shape or an empty span is refused."""
    assert str(NIGHT) == "22:00-07:00"
    for bad in ("22-07", "22:00 to 07:00", "25:00-07:00", "07:00-07:00"):
        with pytest.raises(ValueError):
            parse_quiet_hours(bad)


def test_end_moves_with_the_autumn_dst_change() -> None:
    """01:30 EDT on 1 Nov 2026 (clocks go back that night): the quiet hours end at 07:00 EST = 12:00 UTC."""
    assert quiet_end(datetime(2026, 11, 1, 5, 30, tzinfo=UTC), NIGHT, NEW_YORK) == datetime(
        2026, 11, 1, 12, 0, tzinfo=UTC
    )


def test_end_moves_with_the_spring_dst_change() -> None:
    """23:00 EST on 7 Mar 2026 (clocks go forward that night): the quiet hours end at 07:00 EDT = 11:00 UTC."""
    assert quiet_end(datetime(2026, 3, 8, 4, 0, tzinfo=UTC), NIGHT, NEW_YORK) == datetime(2026, 3, 8, 11, 0, tzinfo=UTC)


def test_outside_quiet_hours_nothing_moves() -> None:
    """17:00 in New York is not quiet: the due time stays."""
    due = datetime(2026, 12, 5, 22, 0, tzinfo=UTC)
    assert quiet_end(due, NIGHT, NEW_YORK) is None and shifted_due(due, timedelta(hours=6), NIGHT, NEW_YORK) == due


def test_waiting_past_the_lateness_bound_sends_at_once() -> None:
    """Due at 01:00 with 1h of lateness allowed: waiting until 07:00 would miss it, so it goes at once."""
    due = datetime(2026, 12, 5, 6, 0, tzinfo=UTC)  # 01:00 EST
    assert shifted_due(due, timedelta(hours=1), NIGHT, NEW_YORK) == due
    assert shifted_due(due, timedelta(hours=6), NIGHT, NEW_YORK) == datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def test_shared_channels_are_the_registrys_once_per_message_kinds() -> None:
    """The core's list of channels sent once for all audiences matches the registry's per_audience=False kinds."""
    assert SHARED_CHANNELS == {kind.value for kind, spec in SPECS.items() if not spec.per_audience}


def test_timeline_shows_the_end_users_reminder_after_their_night(default_plan: Plan) -> None:
    """T0 09:00 UTC: the reminder (T-24h, 04:00 in New York) is split; end users get theirs at 07:00 their time."""
    t0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    by_key = {o.key: o for o in build_timeline(default_plan, t0)}
    staff, users = by_key["reminder"], by_key["reminder~end-users"]
    assert staff.due_at == t0 - timedelta(hours=24) and "end-users" not in staff.audiences
    assert users.due_at == datetime(2026, 11, 1, 12, 0, tzinfo=UTC) and users.audiences == ("end-users",)
    assert users.max_lateness == timedelta(hours=1)  # 4h bound from 09:00 UTC, 3h used waiting
    assert users.channels == (Channel.EMAIL, Channel.SLACK)


def test_status_page_is_posted_once_by_the_part_that_keeps_the_planned_time(default_plan: Plan) -> None:
    """advance-notice at 04:00 New York time: the status page stays with the staff part, never with both."""
    t0 = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)
    parts = [o for o in build_timeline(default_plan, t0) if o.message == "advance-notice"]
    assert [p.key for p in parts] == ["advance-notice", "advance-notice~end-users"]
    assert [Channel.STATUSPAGE in p.channels for p in parts] == [True, False]


def test_urgent_messages_are_not_held(default_plan: Plan) -> None:
    """A message marked urgent goes at its planned time for everyone."""
    t0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    messages = tuple(
        m.model_copy(update={"urgent": True}) if m.key == "reminder" else m for m in default_plan.schedule.messages
    )
    plan = default_plan.model_copy(update={"schedule": default_plan.schedule.model_copy(update={"messages": messages})})
    keys = [o.key for o in build_timeline(plan, t0) if o.message == "reminder"]
    assert keys == ["reminder"]
