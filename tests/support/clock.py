"""A clock tests control: ``sleep`` advances it instead of waiting."""

from __future__ import annotations

from datetime import datetime, timedelta


class FakeClock:
    """An injected clock; ``sleep(seconds)`` moves time forward and records the wait."""

    def __init__(self, start: datetime) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += timedelta(seconds=max(seconds, 0))

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)

    def set(self, when: datetime) -> None:
        self.now = when
