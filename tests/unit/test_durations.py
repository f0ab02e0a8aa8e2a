"""The one duration formatter (comms.core.times.format_duration) and the presentations built on it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from comms.core.times import format_duration, format_offset
from comms.rendering import _humanize
from comms.reports.effectiveness_model import human_seconds
from comms.reports.status import relative_text


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(0), "0s"),
        (timedelta(seconds=5), "5s"),
        (timedelta(hours=2, minutes=30), "2h30m"),
        (timedelta(weeks=1), "1w"),
        (timedelta(weeks=1, days=2, hours=3, minutes=4, seconds=5), "1w2d3h4m5s"),
        (timedelta(seconds=90.9), "1m30s"),
    ],
)
def test_compact_is_the_default(delta: timedelta, text: str) -> None:
    """Compact style writes each non-zero unit from weeks to seconds, zero as ``0s``."""
    assert format_duration(delta) == text


def test_prose_hours_and_minutes_reads_as_words() -> None:
    """Prose style in hours and minutes spells durations out for people (escalation reasons)."""
    spelled = [
        format_duration(timedelta(minutes=m), style="prose", largest="h", smallest="m") for m in (0, 1, 45, 60, 125)
    ]
    assert spelled == ["0 minutes", "1 minute", "45 minutes", "1 hour", "2 hours 5 minutes"]


def test_units_outside_the_range_are_folded_or_dropped() -> None:
    """Above ``largest`` counts fold into it; below ``smallest`` they are dropped, not rounded."""
    assert format_duration(timedelta(days=2, hours=1, seconds=59), largest="h", smallest="m") == "49h"
    assert format_duration(timedelta(days=1, minutes=5, seconds=59), largest="d", smallest="m") == "1d5m"
    assert format_duration(timedelta(seconds=59), largest="d", smallest="m") == "0m"


def test_a_reversed_unit_range_is_refused() -> None:
    """Asking for seconds as the largest unit and hours as the smallest is a programming error."""
    with pytest.raises(ValueError, match="smaller than"):
        format_duration(timedelta(hours=1), largest="s", smallest="h")


def test_offsets_use_the_compact_form() -> None:
    """Offsets from T0 are signed compact durations."""
    assert [format_offset(timedelta(hours=h)) for h in (-48, -1, 0, 26)] == ["T-2d", "T-1h", "T0", "T+1d2h"]


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(weeks=2), "2 weeks"),
        (timedelta(hours=48), "48 hours"),
        (timedelta(hours=1), "1 hour"),
        (timedelta(minutes=30), "30 minutes"),
        (timedelta(minutes=1), "1 minute"),
        (timedelta(hours=1, minutes=30), "1h30m"),
        (timedelta(0), "0 hours"),
    ],
)
def test_template_filter_words_whole_units(delta: timedelta, text: str) -> None:
    """The templates' ``duration`` filter words whole weeks, hours or minutes and is compact otherwise."""
    assert _humanize(delta) == text


def test_report_seconds_and_relative_times() -> None:
    """Reports show short waits in seconds, longer ones compact, and times relative to now in minutes."""
    assert [human_seconds(v) for v in (None, 42.4, 119, 125)] == ["-", "42 s", "119 s", "2m5s"]
    assert [relative_text(s) for s in (30, 9030, -300.5)] == ["now", "in 2h30m", "5m ago"]
