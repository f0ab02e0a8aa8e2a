"""Parsing and formatting of instants, durations, T0 offsets and Retry-After. Pure functions, no clock."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from comms.errors import InputError

__all__ = [
    "DurationUnit",
    "format_duration",
    "format_local",
    "format_offset",
    "format_utc",
    "iso_utc",
    "load_zone",
    "parse_duration",
    "parse_offset",
    "parse_retry_after",
    "parse_start",
    "to_local",
]

_DURATION = re.compile(r"^\s*(?:(\d+)w)?\s*(?:(\d+)d)?\s*(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+)s)?\s*$")
_OFFSET = re.compile(r"^\s*T\s*(?:([+-])\s*(.+))?$")
_DELTA_SECONDS = re.compile(r"^[0-9]+(?:\.[0-9]+)?$")
"""RFC 9110 delta-seconds is digits only; a decimal fraction (seen in the wild) is read too."""
DurationUnit = Literal["w", "d", "h", "m", "s"]
_UNITS: tuple[tuple[DurationUnit, str, int], ...] = (
    ("w", "week", 604800),
    ("d", "day", 86400),
    ("h", "hour", 3600),
    ("m", "minute", 60),
    ("s", "second", 1),
)


def parse_duration(text: str) -> timedelta:
    """Parse ``1w2d3h4m5s`` (any subset, in that order) into a timedelta."""
    match = _DURATION.match(str(text))
    if not match or not any(match.groups()):
        raise ValueError(f"invalid duration {text!r}: use forms like 2h, 30m, 1d, 1w, 1h30m")
    weeks, days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)


def parse_offset(text: str) -> timedelta:
    """Parse an offset from T0: ``T0``, ``T``, ``T-48h``, ``T+1w``."""
    raw = str(text).strip()
    if raw in ("T0", "T"):
        return timedelta(0)
    match = _OFFSET.match(raw)
    if not match or not match.group(1):
        raise ValueError(f"invalid offset {text!r}: use T0, T-48h, T+2h, T+1w")
    delta = parse_duration(match.group(2))
    return -delta if match.group(1) == "-" else delta


def format_offset(delta: timedelta) -> str:
    """Format a timedelta as an offset from T0 (``T-48h``, ``T+1w``, ``T0``)."""
    if delta == timedelta(0):
        return "T0"
    sign = "-" if delta < timedelta(0) else "+"
    return f"T{sign}{format_duration(abs(delta))}"


def format_duration(
    delta: timedelta,
    *,
    style: Literal["compact", "prose"] = "compact",
    largest: DurationUnit = "w",
    smallest: DurationUnit = "s",
) -> str:
    """Format a non-negative timedelta in the units from ``largest`` down to ``smallest`` (the rest dropped).

    ``compact``: ``1w``, ``2h30m``, ``0s``; ``prose``: ``1 hour 30 minutes``, ``0 minutes``. Zero is
    written in the smallest unit.
    """
    symbols = [symbol for symbol, _, _ in _UNITS]
    units = _UNITS[symbols.index(largest) : symbols.index(smallest) + 1]
    if not units:
        raise ValueError(f"largest unit {largest!r} is smaller than smallest unit {smallest!r}")
    rest = int(delta.total_seconds())
    parts = []
    for symbol, name, size in units:
        count, rest = divmod(rest, size)
        if count:
            parts.append(_unit_text(count, symbol, name, style))
    if not parts:
        symbol, name, _ = units[-1]
        return _unit_text(0, symbol, name, style)
    return ("" if style == "compact" else " ").join(parts)


def _unit_text(count: int, symbol: str, name: str, style: str) -> str:
    if style == "compact":
        return f"{count}{symbol}"
    return f"{count} {name}{'' if count == 1 else 's'}"


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (RFC 9110 10.2.3): delta-seconds or an HTTP-date.

    A date in the past is a wait of 0; a value that is neither form (or no header) is None. ``now`` is aware.
    """
    if value is None:
        return None
    text = value.strip()
    if _DELTA_SECONDS.match(text):
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" (RFC 5322: zone unknown); HTTP-dates are GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def load_zone(name: str) -> ZoneInfo:
    """Return the IANA zone ``name`` or raise ValueError naming it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as Europe/Berlin)") from exc


def parse_start(text: str, *, tz: str | None = None, option: str = "--start") -> datetime:
    """Parse a user-given T0 into aware UTC.

    ISO-8601 with an offset (``Z`` or ``+01:00``) stands alone; a naive time needs ``tz``.
    A naive local time that does not exist (DST gap) or is ambiguous (DST fold) is refused.
    """
    raw = text.strip()
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise InputError(f"{option}: {text!r} is not an ISO-8601 time (e.g. 2026-12-05T22:00:00Z)") from exc
    if value.tzinfo is not None:
        if tz is not None:
            raise InputError(f"{option}: {text!r} already has an offset; drop --tz or the offset")
        return value.astimezone(UTC)
    if tz is None:
        raise InputError(f"{option}: {text!r} has no time zone; add an offset (Z, +01:00) or pass --tz Europe/Berlin")
    try:
        zone = load_zone(tz)
    except ValueError as exc:
        raise InputError(f"--tz: {exc}") from exc
    return _localize(value, zone, option=option, text=text).astimezone(UTC)


def _localize(naive: datetime, zone: ZoneInfo, *, option: str, text: str) -> datetime:
    early = naive.replace(tzinfo=zone, fold=0)
    late = naive.replace(tzinfo=zone, fold=1)
    if early.utcoffset() != late.utcoffset():
        roundtrip = early.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
        if roundtrip != naive:
            raise InputError(f"{option}: {text!r} does not exist in {zone.key} (clocks skip it for DST)")
        raise InputError(f"{option}: {text!r} is ambiguous in {zone.key} (DST fold); give an offset")
    return early


def to_local(instant: datetime, zone_name: str) -> datetime:
    """Convert an aware instant to the given zone (DST-safe through zoneinfo)."""
    return instant.astimezone(load_zone(zone_name))


def format_local(instant: datetime, zone_name: str) -> str:
    """Human local time with its zone abbreviation, e.g. ``Sat 5 Dec 2026, 23:00 CET``."""
    local = to_local(instant, zone_name)
    return f"{local:%a} {local.day} {local:%b %Y}, {local:%H:%M} {local.tzname()}"


def format_utc(instant: datetime) -> str:
    """Human UTC time, e.g. ``Sat 5 Dec 2026, 22:00 UTC``."""
    value = instant.astimezone(UTC)
    return f"{value:%a} {value.day} {value:%b %Y}, {value:%H:%M} UTC"


def iso_utc(instant: datetime) -> str:
    """ISO-8601 in UTC with a ``Z`` suffix."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
