"""Reading Retry-After (comms.core.times.parse_retry_after): delta-seconds, HTTP-dates, and anything else."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from comms.core.times import parse_retry_after

NOW = datetime(2026, 12, 5, 22, 0, tzinfo=UTC)


@pytest.mark.parametrize(("value", "seconds"), [("120", 120.0), (" 7 ", 7.0), ("0", 0.0), ("1.5", 1.5)])
def test_delta_seconds(value: str, seconds: float) -> None:
    """A number of seconds is that wait (surrounding space ignored, a fraction tolerated)."""
    assert parse_retry_after(value, now=NOW) == seconds


@pytest.mark.parametrize(
    "value",
    [
        "Sat, 05 Dec 2026 22:01:30 GMT",  # IMF-fixdate, the preferred form
        "Saturday, 05-Dec-26 22:01:30 GMT",  # obsolete RFC 850 form
        "Sat Dec  5 22:01:30 2026",  # obsolete asctime form
        "Sat, 05 Dec 2026 23:01:30 +0100",
    ],
)
def test_http_date_is_the_wait_until_that_instant(value: str) -> None:
    """An HTTP-date in any of RFC 9110's forms is the seconds from ``now`` until it."""
    assert parse_retry_after(value, now=NOW) == 90.0


def test_http_date_counts_from_the_given_now() -> None:
    """The wait is measured from the ``now`` passed in, not from the machine's clock."""
    later = datetime(2026, 12, 5, 22, 1, tzinfo=UTC)
    assert parse_retry_after("Sat, 05 Dec 2026 22:01:30 GMT", now=later) == 30.0


def test_http_date_in_the_past_is_no_wait() -> None:
    """A date already passed asks for no wait at all."""
    assert parse_retry_after("Sat, 05 Dec 2026 21:00:00 GMT", now=NOW) == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "-3", "1e3", "12 s", "Sat, 99 Dec 2026 22:01:30 GMT", "١٢"])
def test_anything_else_is_none(value: str | None) -> None:
    """No header, a negative or exponent number, words or an impossible date: no wait can be read."""
    assert parse_retry_after(value, now=NOW) is None
