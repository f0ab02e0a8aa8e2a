"""The one pacer (comms.channels.pacing): per-key spacing on an injected clock and sleep."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from comms.channels.pacing import Pacer, monotonic_for
from comms.clock import utc_now
from tests.support.clock import FakeClock

START = datetime(2026, 12, 5, 22, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


def test_back_to_back_calls_are_one_interval_apart(clock: FakeClock) -> None:
    """The first call goes at once; each next one for the same key waits a full interval."""
    pacer = Pacer(1.0, monotonic=clock.monotonic, sleep=clock.sleep)
    waits = [pacer.wait("#cutover") for _ in range(3)]
    assert waits == [0.0, 1.0, 1.0] and clock.sleeps == [1.0, 1.0]


def test_keys_are_paced_independently(clock: FakeClock) -> None:
    """A post to one Slack channel never waits for another channel's slot."""
    pacer = Pacer(1.0, monotonic=clock.monotonic, sleep=clock.sleep)
    assert [pacer.wait(key) for key in ("#a", "#b", "#c")] == [0.0, 0.0, 0.0]
    assert pacer.wait("#a") == 1.0
    assert clock.sleeps == [1.0]


def test_time_already_passed_counts(clock: FakeClock) -> None:
    """A call 0.4 s after the last one waits only the rest of the interval; one after it waits none."""
    pacer = Pacer(1.0, monotonic=clock.monotonic, sleep=clock.sleep)
    pacer.wait("page")
    clock.advance(0.4)
    assert pacer.wait("page") == pytest.approx(0.6)
    clock.advance(5)
    assert pacer.wait("page") == 0.0


def test_a_wall_clock_pacer_follows_an_injected_clock(clock: FakeClock) -> None:
    """Paced on an injected wall clock, the waits are slept on that clock (the dispatcher's Slack pacing)."""
    pacer = Pacer(1.0, monotonic=monotonic_for(clock), sleep=clock.sleep)
    pacer.wait("#cutover")
    pacer.wait("#cutover")
    assert clock.sleeps == [1.0] and clock() == datetime(2026, 12, 5, 22, 0, 1, tzinfo=UTC)


def test_the_real_clock_is_paced_on_monotonic_time() -> None:
    """With the real clock a pacer counts monotonic seconds, which a wall-clock change cannot move."""
    assert monotonic_for(utc_now) is time.monotonic


def test_a_negative_interval_is_refused() -> None:
    """An interval below zero is a programming error."""
    with pytest.raises(ValueError, match="negative"):
        Pacer(-1.0)
