"""Building a real engine (SQLite file, dispatcher) with an injected clock and recording channels."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from comms.bootstrap import Services, bootstrap
from comms.plan.fields import Channel
from comms.plan.loader import load_plan
from comms.plan.models import Plan
from comms.settings import Settings
from tests.support.clock import FakeClock
from tests.support.recording import RecordingChannel, recording_channels

REPO_ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 12, 5, 22, 0, tzinfo=UTC)


@dataclass
class Harness:
    """Everything an engine test touches."""

    plan: Plan
    services: Services
    clock: FakeClock
    channels: dict[Channel, RecordingChannel]

    def at(self, offset: timedelta) -> None:
        """Move the clock to T0 + offset."""
        self.clock.set(T0 + offset)

    def run(self) -> None:
        """Send everything due now (waiting out retries on the fake clock)."""
        self.services.dispatcher.run_until_idle()


def make_harness(
    tmp_path: Path, *, max_attempts: int = 4, plan_root: Path = REPO_ROOT, database_url: str | None = None
) -> Harness:
    """A fresh database (a SQLite file under tmp_path unless given), a clock at T-49h, a recording channel per kind."""
    plan = load_plan(plan_root, check_templates=False)
    clock = FakeClock(T0 - timedelta(hours=49))
    channels = recording_channels()
    settings = Settings(
        database_url=database_url or f"sqlite:///{tmp_path}/comms.db",
        max_attempts=max_attempts,
        retry_base_seconds=5.0,
        retry_max_seconds=300.0,
    )
    services = bootstrap(settings, clock=clock, sleep=clock.sleep, channels=channels)
    return Harness(plan=plan, services=services, clock=clock, channels=channels)
