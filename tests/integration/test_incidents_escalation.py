"""Escalation walked through on a controlled clock: levels on time, ack, repeats, restarts, two workers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from comms.bootstrap import Services, bootstrap
from comms.plan.fields import Channel
from comms.plan.loader import load_plan
from comms.services.incidents import acknowledge_incident, list_incidents, open_incident, resolve_incident
from comms.services.scheduling import schedule_cutover
from comms.settings import Settings
from comms.store.incident_tables import EscalationStepRow
from comms.store.tables import OccurrenceRow
from tests.support.clock import FakeClock
from tests.support.recording import RecordingChannel, recording_channels

REPO_ROOT = Path(__file__).resolve().parents[2]
PLAN = load_plan(REPO_ROOT, check_templates=False)  # loaded once; each test gets its own database
OPENED = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
T0 = OPENED + timedelta(days=15)  # the timeline stays quiet while incidents escalate


@dataclass
class World:
    """A database, a clock and one recording channel per kind; ``restart`` boots a new process on it."""

    database_url: str
    clock: FakeClock
    channels: dict[Channel, RecordingChannel]
    services: Services

    def boot(self) -> Services:
        """A fresh bootstrap (new dispatcher, new plan cache) on the same database."""
        settings = Settings(database_url=self.database_url, max_attempts=3)
        services = bootstrap(settings, clock=self.clock, sleep=self.clock.sleep, channels=self.channels)
        services.dispatcher.plans.put(PLAN)
        return services

    def at(self, minutes: float) -> None:
        """Move the clock to the incident's opening + minutes and let the worker tick until idle."""
        self.clock.set(OPENED + timedelta(minutes=minutes))
        self.services.dispatcher.run_until_idle()

    def notified(self) -> list[tuple[int | None, int | None]]:
        """(level, repeat) of every level notice recorded, in order."""
        with Session(self.services.engine) as session:
            steps = session.exec(
                select(EscalationStepRow)
                .where(EscalationStepRow.kind == "notified")
                .order_by(col(EscalationStepRow.id))
            ).all()
        return [(s.level, s.repeat) for s in steps]

    def notices_to(self, kind: Channel, address: str) -> int:
        """How many escalation notices reached one address or Slack channel."""
        return sum(
            1
            for e in self.channels[kind].sent
            if e.message == "escalation-notice"
            for r in e.recipients
            if r.address == address
        )


@pytest.fixture
def world(database_url: str) -> World:
    clock = FakeClock(OPENED - timedelta(hours=1))
    channels = recording_channels()
    w = World(database_url, clock, channels, services=None)  # type: ignore[arg-type]
    w.services = w.boot()
    schedule_cutover(w.services.engine, PLAN, start=T0, now=clock())
    clock.set(OPENED)
    return w


def _open(w: World, severity: str = "sev1") -> int:
    outcome = open_incident(
        w.services.engine,
        w.services.dispatcher.plans,
        severity=severity,
        summary="Sign-in fails for some users",
        components=["Authentication"],
        now=w.clock(),
    )
    w.services.dispatcher.dispatch_now(outcome.occurrences)
    return outcome.incident_id


def test_first_level_is_notified_when_the_incident_opens(world: World) -> None:
    """Opening a sev1 notifies level 1 (engineering) at once."""
    _open(world)
    assert world.notified() == [(1, 0)]
    assert world.notices_to(Channel.SLACK, "#cutover") == 1
    assert world.notices_to(Channel.EMAIL, "oncall@example.com") == 1


def test_level_direct_contacts_already_in_the_audience_get_one_notice(world: World) -> None:
    """Level 1's direct #cutover and oncall@ are engineering's own: they are told once, not twice."""
    _open(world)
    deliveries = [
        r.address for e in world.channels[Channel.EMAIL].sent if e.message == "escalation-notice" for r in e.recipients
    ]
    assert sorted(deliveries) == ["oncall@example.com", "platform-team@example.com"]


def test_second_level_is_not_notified_before_its_time(world: World) -> None:
    """At 14m59s only level 1 has gone out."""
    _open(world)
    world.at(14 + 59 / 60)
    assert world.notified() == [(1, 0)]


def test_second_level_is_notified_on_time_with_its_direct_email(world: World) -> None:
    """At 15m level 2 goes out, including its direct contact eng-manager@."""
    _open(world)
    world.at(15)
    assert world.notified() == [(1, 0), (2, 0)]
    assert world.notices_to(Channel.EMAIL, "eng-manager@example.com") == 1


def test_levels_then_repeats_follow_the_matrix(world: World) -> None:
    """sev1: levels at 0, 15 and 30 minutes, then the last level every 30 minutes."""
    _open(world)
    for minutes in (5, 15, 29, 30, 45, 59, 60, 75, 90):
        world.at(minutes)
    assert world.notified() == [(1, 0), (2, 0), (3, 0), (3, 1), (3, 2)]
    assert world.notices_to(Channel.SLACK, "#exec-updates") == 3


def test_acknowledgement_stops_the_escalation(world: World) -> None:
    """Acknowledged at 10m, no further level is notified, however long it stays open."""
    incident = _open(world)
    world.clock.set(OPENED + timedelta(minutes=10))
    outcome = acknowledge_incident(
        world.services.engine, world.services.dispatcher.plans, incident, by="Dana", now=world.clock()
    )
    world.services.dispatcher.dispatch_now(outcome.occurrences)
    for minutes in (15, 30, 60, 240):
        world.at(minutes)
    assert world.notified() == [(1, 0)]


def test_resolution_stops_the_escalation(world: World) -> None:
    """An incident resolved before anyone acknowledged it escalates no further."""
    incident = _open(world)
    world.clock.set(OPENED + timedelta(minutes=20))
    world.services.dispatcher.run_until_idle()
    resolve_incident(
        world.services.engine, world.services.dispatcher.plans, incident, message="Fixed", now=world.clock()
    )
    world.at(120)
    assert world.notified() == [(1, 0), (2, 0)]


def test_restart_mid_escalation_resumes_on_time_without_duplicates(world: World) -> None:
    """A new worker on the same database sends level 3 at 30m exactly, and nothing twice."""
    _open(world)
    world.at(15)
    world.services = world.boot()  # the worker restarts: no memory but the database
    world.at(16)
    world.at(29.9)
    assert world.notified() == [(1, 0), (2, 0)]
    world.at(30)
    world.at(31)
    assert world.notified() == [(1, 0), (2, 0), (3, 0)]
    assert world.notices_to(Channel.SLACK, "#exec-updates") == 1


def test_restart_after_downtime_sends_each_missed_level_once(world: World) -> None:
    """A worker down from 1m to 40m sends levels 2 and 3 once when it comes back, not before."""
    _open(world)
    world.clock.set(OPENED + timedelta(minutes=40))
    world.services = world.boot()
    world.services.dispatcher.run_until_idle()
    world.services.dispatcher.run_until_idle()
    assert world.notified() == [(1, 0), (2, 0), (3, 0)]
    assert world.notices_to(Channel.EMAIL, "eng-manager@example.com") == 1


def test_two_workers_ticking_together_notify_once(world: World) -> None:
    """Two processes ticking at the same instant record and send level 2 once."""
    _open(world)
    other = world.boot()
    world.clock.set(OPENED + timedelta(minutes=15))
    other.dispatcher.tick()
    world.services.dispatcher.tick()
    other.dispatcher.run_until_idle()
    world.services.dispatcher.run_until_idle()
    assert world.notified() == [(1, 0), (2, 0)]
    assert world.notices_to(Channel.EMAIL, "eng-manager@example.com") == 1


def test_sev3_stops_after_its_last_level(world: World) -> None:
    """sev3 has no repeat: level 2 at 4h, then nothing more."""
    _open(world, severity="sev3")
    for minutes in (60, 240, 600, 1440):
        world.at(minutes)
    assert world.notified() == [(1, 0), (2, 0)]


def test_sev3_level_one_goes_to_slack_only(world: World) -> None:
    """A level with channels [slack] sends no email."""
    _open(world, severity="sev3")
    assert world.notices_to(Channel.SLACK, "#cutover") == 1
    assert not [e for e in world.channels[Channel.EMAIL].sent if e.message == "escalation-notice"]


def test_notice_context_names_the_level_and_the_incident(world: World) -> None:
    """The level-2 notice carries escalation.level, its reason and the incident, as templates expect."""
    incident = _open(world)
    world.at(15)
    with Session(world.services.engine) as session:
        row = session.exec(
            select(OccurrenceRow).where(OccurrenceRow.key == f"escalation:incident-{incident}/level-2")
        ).one()
    assert row.trigger == "escalation" and row.incident_id == incident
    assert row.audiences_csv == "engineering"
    reason = f"Incident #{incident} (sev1) has not been acknowledged for 15 minutes"
    assert f'"reason": "{reason}"' in (row.context_json or "")


def test_list_shows_when_the_next_escalation_falls_due(world: World) -> None:
    """After opening, the list shows the next escalation at opening + 15 minutes."""
    _open(world)
    [view] = list_incidents(world.services.engine, world.services.dispatcher.plans, now=world.clock())
    assert view.next_escalation_at == OPENED + timedelta(minutes=15)
