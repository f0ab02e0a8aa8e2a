"""A manual clock for adapters: wall time (``now``), monotonic time and a ``sleep`` that advances both."""

from __future__ import annotations

from datetime import datetime, timedelta


class ManualClock:
    """Time that moves only when told to, or when ``sleep`` is called (which records the wait)."""

    def __init__(self, start: datetime) -> None:
        self.current = start
        self.mono = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> datetime:
        return self.current

    def monotonic(self) -> float:
        return self.mono

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.current += timedelta(seconds=seconds)
