"""Client-side pacing: at most one request per interval and key, with the clock and the sleep injected.

Providers limit bursts per target: Slack about one post per second per channel, Statuspage one request
per second per page (API token). A burst at T0 (maintenance in progress, component status, Slack and
email at once) must queue behind those limits instead of drawing 429s and 420s. One ``Pacer`` serves
every such limit: the key says what the limit is counted on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable

from comms.clock import Clock, utc_now

__all__ = ["Monotonic", "Pacer", "Sleep", "monotonic_for"]

Monotonic = Callable[[], float]
Sleep = Callable[[float], None]


class Pacer:
    """Spaces calls with the same key ``interval`` seconds apart; ``wait(key)`` sleeps until the key's next slot.

    Thread-safe: concurrent callers each get their own slot, one interval after the previous one for the key.
    Keys are independent: a wait for one never delays another.
    """

    def __init__(self, interval: float, *, monotonic: Monotonic = time.monotonic, sleep: Sleep = time.sleep) -> None:
        if interval < 0:
            raise ValueError("interval must not be negative")
        self.interval = interval
        self._monotonic = monotonic
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_slot: dict[Hashable, float] = {}

    def wait(self, key: Hashable = None) -> float:
        """Block until this caller's slot for ``key``; return how many seconds it waited."""
        with self._lock:
            now = self._monotonic()
            slot = max(now, self._next_slot.get(key, now))
            self._next_slot[key] = slot + self.interval
        delay = slot - now
        if delay > 0:
            self._sleep(delay)
        return delay

    def __repr__(self) -> str:
        return f"Pacer(interval={self.interval})"


def monotonic_for(clock: Clock) -> Monotonic:
    """The seconds a pacer should count for ``clock``: the monotonic clock for the real one, else its own.

    An injected clock (a test's, the rehearsal's) moves only when its ``sleep`` moves it, so a pacer must
    read that clock to see its waits pass.
    """
    if clock is utc_now:
        return time.monotonic
    return lambda: clock().timestamp()
