"""The event windows: when go, stages and complete may be recorded against T0, and the override."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from comms.core.events import check_event_time, event_window
from comms.errors import InputError
from comms.plan.loader import load_plan
from comms.plan.models import Trigger

PLAN = load_plan(Path(__file__).resolve().parents[2], check_templates=False)
T0 = datetime(2026, 12, 5, 22, 0, tzinfo=UTC)


def _check(event: Trigger, now: datetime, *, force: bool = False, reason: str | None = None) -> str | None:
    return check_event_time(PLAN, event, start=T0, now=now, force=force, reason=reason)


def test_go_window_defaults_to_six_hours_before_t0_until_window_end() -> None:
    """Go may be given from T-6h (4 h before the T-2h decision) until the window ends."""
    window = event_window(PLAN, Trigger.GO, start=T0)
    assert window is not None
    assert window.opens == T0 - timedelta(hours=6) and window.closes == T0 + PLAN.cutover.window


@pytest.mark.parametrize("offset", [timedelta(hours=-6), timedelta(hours=-2), timedelta(0), timedelta(hours=12)])
def test_go_inside_its_window_is_accepted(offset: timedelta) -> None:
    """Go inside the window is accepted and records no override."""
    assert _check(Trigger.GO, T0 + offset) is None


def test_go_four_and_a_half_days_early_is_refused_with_the_window() -> None:
    """The reported case: go 4.5 days before T0 is refused, the message naming the window."""
    with pytest.raises(InputError, match=r"from 2026-12-05T16:00:00Z until 2026-12-06T10:00:00Z"):
        _check(Trigger.GO, T0 - timedelta(days=4, hours=12))


def test_go_after_the_window_is_refused() -> None:
    """Go after the window has ended is refused."""
    with pytest.raises(InputError, match="'go' may be recorded"):
        _check(Trigger.GO, T0 + timedelta(hours=13))


@pytest.mark.parametrize("event", [Trigger.STAGE, Trigger.COMPLETE])
def test_stage_and_complete_only_after_t0(event: Trigger) -> None:
    """Stages and complete are refused before T0 and accepted from T0 on, even long after."""
    with pytest.raises(InputError, match="from 2026-12-05T22:00:00Z on"):
        _check(event, T0 - timedelta(minutes=1))
    assert _check(event, T0) is None
    assert _check(event, T0 + timedelta(days=2)) is None


@pytest.mark.parametrize("event", [Trigger.NO_GO, Trigger.ROLLBACK, Trigger.RESCHEDULE, Trigger.CANCEL])
def test_other_events_have_no_window(event: Trigger) -> None:
    """No-go, rollback, reschedule and cancel may be recorded at any time."""
    assert event_window(PLAN, event, start=T0) is None
    assert _check(event, T0 - timedelta(days=30)) is None


def test_force_with_reason_overrides_and_returns_the_window() -> None:
    """--force --reason records the event and says which window it overrode."""
    assert _check(Trigger.GO, T0 - timedelta(days=4), force=True, reason="dry run") == (
        "from 2026-12-05T16:00:00Z until 2026-12-06T10:00:00Z"
    )


def test_force_without_reason_is_refused() -> None:
    """--force alone is refused: an override needs a reason for the audit trail."""
    with pytest.raises(InputError, match="--force needs --reason"):
        _check(Trigger.STAGE, T0 - timedelta(days=1), force=True, reason=" ")
