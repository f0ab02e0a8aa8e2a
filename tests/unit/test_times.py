"""Parsing a user-given T0 and formatting local times across DST changes (comms.core.times)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from comms.core.times import format_local, format_utc, parse_duration, parse_offset, parse_start
from comms.errors import InputError


def test_start_with_z_is_utc() -> None:
    """An ISO time ending in Z is taken as UTC."""
    assert parse_start("2026-12-05T22:00:00Z") == datetime(2026, 12, 5, 22, 0, tzinfo=UTC)


def test_start_with_offset_is_converted_to_utc() -> None:
    """An explicit +01:00 offset is honoured and converted to UTC."""
    assert parse_start("2026-12-05T23:00:00+01:00") == datetime(2026, 12, 5, 22, 0, tzinfo=UTC)


def test_naive_start_with_tz_is_localized() -> None:
    """A naive time plus --tz is read as wall-clock time in that zone."""
    assert parse_start("2026-12-05T17:00:00", tz="America/New_York") == datetime(2026, 12, 5, 22, 0, tzinfo=UTC)


def test_naive_start_in_summer_uses_summer_offset() -> None:
    """A naive summer time is localized with the zone's daylight-saving offset."""
    assert parse_start("2027-07-03T22:00:00", tz="Europe/London") == datetime(2027, 7, 3, 21, 0, tzinfo=UTC)


def test_naive_start_without_tz_is_refused() -> None:
    """A naive time without --tz is refused instead of guessed."""
    with pytest.raises(InputError, match="no time zone"):
        parse_start("2026-12-05T22:00:00")


def test_offset_and_tz_together_are_refused() -> None:
    """A time that has an offset and a --tz as well is refused as contradictory."""
    with pytest.raises(InputError, match="already has an offset"):
        parse_start("2026-12-05T22:00:00Z", tz="Europe/Berlin")


def test_start_in_dst_gap_is_refused() -> None:
    """A local time the clocks skip (spring forward) is refused."""
    with pytest.raises(InputError, match="does not exist"):
        parse_start("2027-03-28T01:30:00", tz="Europe/London")


def test_start_in_dst_gap_new_york_is_refused() -> None:
    """02:30 on the US spring-forward day does not exist in New York and is refused."""
    with pytest.raises(InputError, match="does not exist"):
        parse_start("2027-03-14T02:30:00", tz="America/New_York")


def test_ambiguous_start_in_dst_fold_is_refused() -> None:
    """A local time that happens twice (fall back) is refused as ambiguous."""
    with pytest.raises(InputError, match="ambiguous"):
        parse_start("2027-10-31T01:30:00", tz="Europe/London")


def test_unknown_tz_is_refused() -> None:
    """An unknown --tz is refused with an InputError naming the option."""
    with pytest.raises(InputError, match="--tz"):
        parse_start("2026-12-05T22:00:00", tz="Mars/Olympus")


def test_garbage_start_is_refused() -> None:
    """Text that is not ISO-8601 is refused with an example of the expected form."""
    with pytest.raises(InputError, match="ISO-8601"):
        parse_start("next saturday")


def test_format_local_before_and_after_spring_forward() -> None:
    """Local times either side of the London spring-forward carry GMT then BST."""
    t0 = datetime(2027, 3, 28, 0, 30, tzinfo=UTC)
    assert format_local(t0, "Europe/London") == "Sun 28 Mar 2027, 00:30 GMT"
    assert format_local(t0 + timedelta(hours=2), "Europe/London") == "Sun 28 Mar 2027, 03:30 BST"


def test_format_utc_is_zone_independent() -> None:
    """format_utc prints the UTC wall clock whatever zone the instant carries."""
    assert format_utc(parse_start("2026-12-05T23:00:00+01:00")) == "Sat 5 Dec 2026, 22:00 UTC"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("T-48h", timedelta(hours=-48)), ("T0", timedelta(0)), ("T+1w", timedelta(weeks=1)), ("T+2h", timedelta(hours=2))],
)
def test_offsets_parse(text: str, expected: timedelta) -> None:
    """Plan offsets T-48h, T0, T+1w, T+2h parse to signed timedeltas."""
    assert parse_offset(text) == expected


def test_compound_duration_parses() -> None:
    """A compound duration such as 1h30m adds its parts."""
    assert parse_duration("1h30m") == timedelta(hours=1, minutes=30)
