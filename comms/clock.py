"""The only place comms reads the clock; everything else takes ``now`` as an argument (or a ManualClock)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

__all__ = ["Clock", "ManualClock", "ensure_utc", "utc_now"]

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """Return the current instant as an aware UTC datetime."""
    return datetime.now(UTC)


def ensure_utc(value: datetime) -> datetime:
    """Return ``value`` converted to UTC; refuse naive datetimes instead of guessing their zone."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value.isoformat()} has no time zone")
    return value.astimezone(UTC)


class ManualClock:
    """A clock that moves only when told to: ``sleep`` and ``advance`` move it at once, ``set`` jumps it.

    Wall time (calling it, or ``now``) and monotonic seconds (``monotonic()``) move together; a jump
    back in wall time leaves the monotonic seconds where they are. For rehearsals and tests.
    """

    def __init__(self, start: datetime, *, monotonic_start: float = 1000.0) -> None:
        self.now = ensure_utc(start)
        self.mono = monotonic_start

    def __call__(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        """Seconds that only go forward, for a pacer."""
        return self.mono

    def sleep(self, seconds: float) -> None:
        """Move time forward instead of waiting (a negative wait is none)."""
        self.advance(max(seconds, 0.0))

    def advance(self, seconds: float = 0.0, *, minutes: float = 0.0, hours: float = 0.0, days: float = 0.0) -> None:
        """Move wall and monotonic time forward by the sum of the given amounts."""
        self.set(self.now + timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds))

    def set(self, when: datetime) -> None:
        """Jump the wall clock to ``when``; monotonic time moves by the jump when it is forward."""
        when = ensure_utc(when)
        self.mono += max((when - self.now).total_seconds(), 0.0)
        self.now = when
