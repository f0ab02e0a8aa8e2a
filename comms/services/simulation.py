"""Rehearsal: run a whole cutover timeline on a simulated clock into a temporary database and the outbox.

The comms lead sees every message that would go out, when, to whom and on which channel, with
go, every traffic stage and completion (or a rollback at a chosen stage) played at realistic times.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from comms.bootstrap import Services, bootstrap
from comms.channels.factory import close_channels
from comms.channels.registry import SPECS
from comms.clock import ManualClock
from comms.core.timeline import build_timeline
from comms.plan.models import Plan, Trigger
from comms.services.scheduling import apply_event, schedule_cutover
from comms.settings import Settings
from comms.store.engine import Engine
from comms.store.reporting import occurrence_sends

__all__ = ["SentLine", "SimulatedEvent", "SimulationResult", "rehearsal_events", "simulate"]


@dataclass(frozen=True)
class SimulatedEvent:
    """An event played during the rehearsal."""

    at: datetime
    trigger: Trigger
    stage: int | None = None
    reason: str | None = None


@dataclass(frozen=True)
class SentLine:
    """One occurrence as it went out in the rehearsal."""

    key: str
    due_at: datetime | None
    sent_at: datetime | None
    state: str
    deliveries: dict[str, int]


@dataclass
class SimulationResult:
    """What the rehearsal sent, where its database and outbox are."""

    cutover: str
    start: datetime
    database_url: str | None
    """Where the rehearsal's database was kept; None when it was a temporary one, removed afterwards."""
    outbox_dir: Path
    events: list[SimulatedEvent] = field(default_factory=list)
    lines: list[SentLine] = field(default_factory=list)


def rehearsal_events(plan: Plan, start: datetime, *, rollback_at: int | None = None) -> list[SimulatedEvent]:
    """Go just after the T-2h final notice, stages over the middle third of the window, completion at its end.

    For the default 12-hour window the stages fall on T+4h..T+8h; one stage falls at the third.
    """
    events = [SimulatedEvent(start - timedelta(hours=2) + timedelta(minutes=10), Trigger.GO)]
    stages = plan.cutover.traffic_stages
    first, span = plan.cutover.window / 3, plan.cutover.window / 3
    for position, stage in enumerate(stages):
        at = start + first + span * position / max(len(stages) - 1, 1)
        events.append(SimulatedEvent(at, Trigger.STAGE, stage=stage))
        if rollback_at == stage:
            reason = f"Rehearsed rollback: error rate above the trigger at the {stage} % stage"
            events.append(SimulatedEvent(at + timedelta(minutes=20), Trigger.ROLLBACK, reason=reason))
            return events
    events.append(SimulatedEvent(start + plan.cutover.window, Trigger.COMPLETE))
    return events


def simulate(
    plan: Plan,
    *,
    start: datetime,
    rollback_at: int | None = None,
    outbox_dir: Path,
    database_url: str | None = None,
) -> SimulationResult:
    """Play the whole timeline; no real provider is ever called, whatever credentials are set.

    Without ``database_url`` the rehearsal runs in a temporary database that is removed afterwards
    (the result's ``database_url`` is then None); with it, the database is kept there.
    """
    if rollback_at is not None and rollback_at not in plan.cutover.traffic_stages:
        from comms.errors import InputError

        raise InputError(f"--rollback-at: {rollback_at} is not one of the stages {list(plan.cutover.traffic_stages)}")
    if database_url is not None:
        return _rehearse(plan, start=start, rollback_at=rollback_at, outbox_dir=outbox_dir, url=database_url)
    with tempfile.TemporaryDirectory(prefix="comms-rehearsal-") as folder:
        result = _rehearse(
            plan, start=start, rollback_at=rollback_at, outbox_dir=outbox_dir, url=f"sqlite:///{folder}/rehearsal.db"
        )
    result.database_url = None
    return result


def _rehearse(plan: Plan, *, start: datetime, rollback_at: int | None, outbox_dir: Path, url: str) -> SimulationResult:
    no_credentials = {name: None for spec in SPECS.values() for name in spec.credentials}
    settings = Settings(database_url=url, outbox_dir=outbox_dir, **no_credentials)
    timeline = build_timeline(plan, start)
    first_due = min(o.due_at for o in timeline if o.due_at is not None)
    clock = ManualClock(first_due - timedelta(minutes=1))
    services = bootstrap(settings, clock=clock, sleep=clock.sleep)
    try:
        return _play(services, plan, start=start, rollback_at=rollback_at, url=url, outbox_dir=outbox_dir)
    finally:
        close_channels(dict(services.channels))
        services.engine.dispose()


def _play(
    services: Services, plan: Plan, *, start: datetime, rollback_at: int | None, url: str, outbox_dir: Path
) -> SimulationResult:
    clock = services.clock
    assert isinstance(clock, ManualClock)
    timeline = build_timeline(plan, start)
    name = f"{plan.cutover.name}-rehearsal"
    schedule_cutover(services.engine, plan, start=start, now=clock(), name=name)
    result = SimulationResult(cutover=name, start=start, database_url=url, outbox_dir=outbox_dir)
    events = rehearsal_events(plan, start, rollback_at=rollback_at)
    instants = sorted({o.due_at for o in timeline if o.due_at is not None} | {e.at for e in events})
    for instant in instants:
        if instant > clock.now:
            clock.set(instant)
        for event in (e for e in events if e.at == instant):
            outcome = apply_event(
                services.engine,
                plan,
                cutover_name=name,
                event=event.trigger,
                now=clock(),
                stage=event.stage,
                reason=event.reason,
                by="rehearsal",
            )
            services.dispatcher.dispatch_now(outcome.fired)
            result.events.append(event)
        services.dispatcher.run_until_idle(horizon=timedelta(minutes=30))
    result.lines = _sent_lines(services.engine)
    return result


def _sent_lines(engine: Engine) -> list[SentLine]:
    return [
        SentLine(sends.occurrence.key, sends.occurrence.due_at, sends.first_sent_at, sends.occurrence.state, sends.sent)
        for sends in occurrence_sends(engine)
    ]
