"""Client-side pacing: at most one request per interval, with the clock and the sleep injected;
and reading the server's own pacing request, ``Retry-After``.

Statuspage allows one request per second per API token; a burst at T0 (maintenance in progress,
component status, Slack and email at once) must queue behind that limit instead of drawing 420s.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from datetime import datetime
from email.utils import parsedate_to_datetime

from comms.clock import ensure_utc, utc_now

Monotonic = Callable[[], float]
Sleep = Callable[[float], None]


class Pacer:
    """Spaces calls ``interval`` seconds apart; ``wait()`` blocks (through ``sleep``) until the next slot.

    Thread-safe: concurrent callers each get their own slot, one interval after the previous one.
    """

    def __init__(self, interval: float, *, monotonic: Monotonic = time.monotonic, sleep: Sleep = time.sleep) -> None:
        if interval < 0:
            raise ValueError("interval must not be negative")
        self.interval = interval
        self._monotonic = monotonic
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_slot: float | None = None

    def wait(self) -> float:
        """Block until this caller's slot; return how many seconds it waited."""
        with self._lock:
            now = self._monotonic()
            slot = now if self._next_slot is None else max(now, self._next_slot)
            self._next_slot = slot + self.interval
        delay = slot - now
        if delay > 0:
            self._sleep(delay)
        return delay

    def __repr__(self) -> str:
        return f"Pacer(interval={self.interval})"


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait: delta-seconds or an HTTP-date; None when absent or unreadable.

    A date is measured from ``now`` (the clock when not given); waits are never negative.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT
        return None
    return max(0.0, (ensure_utc(when) - ensure_utc(now or utc_now())).total_seconds())
