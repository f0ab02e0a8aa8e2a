"""The one controllable clock (comms.clock.ManualClock, and the tests' FakeClock that records its sleeps)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from comms.clock import ManualClock
from tests.support.clock import FakeClock

START = datetime(2026, 12, 5, 22, 0, tzinfo=UTC)


def test_sleep_moves_wall_and_monotonic_time_and_is_recorded() -> None:
    """A sleep advances both clocks at once and the fake records the wait asked for."""
    clock = FakeClock(START)
    clock.sleep(1.5)
    assert clock() == START + timedelta(seconds=1.5) and clock.monotonic() == 1001.5 and clock.sleeps == [1.5]


def test_a_negative_sleep_does_not_move_time() -> None:
    """A negative wait is recorded but moves nothing."""
    clock = FakeClock(START)
    clock.sleep(-2)
    assert clock() == START and clock.monotonic() == 1000.0 and clock.sleeps == [-2]


def test_advance_takes_seconds_or_larger_units() -> None:
    """``advance(0.4)`` and ``advance(minutes=5)`` both move time forward by that much."""
    clock = ManualClock(START)
    clock.advance(0.4)
    clock.advance(minutes=5, hours=1)
    assert clock() == START + timedelta(hours=1, minutes=5, seconds=0.4)
    assert clock.monotonic() == pytest.approx(1000 + 3900.4)


def test_set_jumps_wall_time_and_monotonic_time_only_forward() -> None:
    """Setting the wall clock back leaves monotonic time where it was; setting it forward moves both."""
    clock = ManualClock(START)
    clock.set(START - timedelta(hours=1))
    assert clock() == START - timedelta(hours=1) and clock.monotonic() == 1000.0
    clock.set(START)
    assert clock.now == START and clock.monotonic() == 4600.0


def test_a_naive_start_is_refused() -> None:
    """Time inside comms is aware UTC: a naive start is refused."""
    with pytest.raises(ValueError, match="naive"):
        ManualClock(datetime(2026, 12, 5, 22, 0))
