"""The one clock tests control: comms' ManualClock, recording every wait it was asked to sleep."""

from __future__ import annotations

from datetime import datetime

from comms.clock import ManualClock


class FakeClock(ManualClock):
    """An injected clock (wall and monotonic time); ``sleep(seconds)`` moves time forward and records the wait."""

    def __init__(self, start: datetime) -> None:
        super().__init__(start)
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        super().sleep(seconds)
