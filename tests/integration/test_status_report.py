"""Status and effectiveness figures on a store filled by a real run of the default plan.

The run (``run_scenario``, shared with the HTML, audit and CLI tests) drives the real dispatcher on a
fake clock with recording channels: T-48h with a transient email failure and a permanent Slack
failure, the T-24h reminder left past its lateness bound (missed), the T-2h notice sent 10 minutes
late, go, T0, stage 10, stage 25 with a status-page 429 still waiting for its retry, a sev2 incident
acknowledged after 12 minutes and a sev3 left open. Expected figures are read back from what the
channels received and from the rows, never typed in.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from comms.bootstrap import Services, bootstrap
from comms.errors import NotFoundError, PermanentChannelError, TransientChannelError
from comms.plan.fields import Channel
from comms.plan.loader import load_plan
from comms.plan.models import Plan, Trigger
from comms.reports.effectiveness import effectiveness_report
from comms.reports.effectiveness_model import EffectivenessReport
from comms.reports.metrics import communication_metrics
from comms.reports.status import CutoverStatus, OccurrenceStatus, cutover_status
from comms.services.incidents import acknowledge_incident, open_incident
from comms.services.scheduling import apply_event, schedule_cutover
from comms.settings import Settings
from comms.store import repository as repo
from comms.store.engine import make_engine
from comms.store.incident_tables import EscalationStepRow
from comms.store.tables import AttemptRow, DeliveryRow, OccurrenceRow
from tests.support.clock import FakeClock
from tests.support.recording import RecordingChannel

REPO_ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 12, 5, 22, 0, tzinfo=UTC)
FINAL_NOTICE_DELAY = timedelta(minutes=10)
ACK_DELAY = timedelta(minutes=12)
INCIDENT_AT = T0 + timedelta(hours=4, minutes=10)
SLACK_ERROR = "channel_not_found <script>alert('x')</script> & more"
STATUSPAGE_ERROR = "429 Too Many Requests"


@dataclass
class Scenario:
    """The services, clock, plan and recording channels of one real run, left as the run ended."""

    services: Services
    clock: FakeClock
    plan: Plan
    channels: dict[Channel, RecordingChannel]
    stage_25_key: str

    @property
    def engine(self) -> Engine:
        """The run's database."""
        return self.services.engine

    def sent_to(self, occurrence: str, channel: Channel) -> int:
        """Recipients the channel really received for the occurrence."""
        return sum(len(e.recipients) for e in self.channels[channel].sent if e.occurrence == occurrence)


def run_scenario(root: Path, database_url: str | None = None) -> Scenario:
    """Run the default plan from T-49h to T+4h22m with scripted failures (see the module docstring)."""
    clock = FakeClock(T0 - timedelta(hours=49))
    channels = {kind: RecordingChannel(kind) for kind in Channel}
    settings = Settings(database_url=database_url or f"sqlite:///{root}/c.db", max_attempts=3)
    services = bootstrap(settings, clock=clock, sleep=clock.sleep, channels=channels)
    plan = load_plan(REPO_ROOT, check_templates=False)
    schedule_cutover(services.engine, plan, start=T0, now=clock())

    def run_at(offset: timedelta) -> None:
        clock.set(T0 + offset)
        services.dispatcher.run_until_idle()

    def event(trigger: Trigger, **kwargs: object) -> str:
        outcome = apply_event(services.engine, plan, cutover_name=None, event=trigger, now=clock(), **kwargs)  # type: ignore[arg-type]
        services.dispatcher.dispatch_now(outcome.fired)
        with Session(services.engine) as session:
            return ",".join(
                row.key
                for row in session.exec(select(OccurrenceRow).where(col(OccurrenceRow.id).in_(outcome.fired))).all()
            )

    channels[Channel.EMAIL].failures.append(TransientChannelError("503 Service Unavailable", retry_after=30))
    channels[Channel.SLACK].failures.append(PermanentChannelError(SLACK_ERROR, remedy="invite the bot"))
    run_at(timedelta(hours=-48))
    run_at(timedelta(hours=-24) + timedelta(hours=5))  # past the reminder's 4h lateness bound: missed
    run_at(timedelta(hours=-2) + FINAL_NOTICE_DELAY)
    clock.set(T0 - timedelta(hours=1))
    event(Trigger.GO)
    run_at(timedelta(0))
    run_at(timedelta(hours=2))
    clock.set(T0 + timedelta(hours=3))
    event(Trigger.STAGE, stage=10)
    run_at(timedelta(hours=4))
    channels[Channel.STATUSPAGE].failures.append(TransientChannelError(STATUSPAGE_ERROR, retry_after=3600))
    stage_25 = event(Trigger.STAGE, stage=25)
    clock.set(INCIDENT_AT)
    opened = open_incident(
        services.engine, services.dispatcher.plans, severity="sev2", summary="Search is slow <b>bold</b>", now=clock()
    )
    services.dispatcher.dispatch_now(opened.occurrences)
    clock.set(INCIDENT_AT + ACK_DELAY)  # absolute: Slack pacing moved the fake clock on by a second
    acked = acknowledge_incident(services.engine, services.dispatcher.plans, opened.incident_id, by="Dana", now=clock())
    services.dispatcher.dispatch_now(acked.occurrences)
    left_open = open_incident(
        services.engine, services.dispatcher.plans, severity="sev3", summary="Dashboards lag", now=clock()
    )
    services.dispatcher.dispatch_now(left_open.occurrences)
    with Session(services.engine) as session:
        missed = [o.key for o in session.exec(select(OccurrenceRow).where(OccurrenceRow.state == "missed")).all()]
    assert missed == ["reminder"], f"unexpected missed occurrences {missed}: a template may be missing (comms validate)"
    return Scenario(services, clock, plan, channels, stage_25)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory, module_database_url: str) -> Scenario:
    """One real run shared by the read-only tests of this module, on SQLite and on PostgreSQL."""
    return run_scenario(tmp_path_factory.mktemp("status-report"), module_database_url)


@pytest.fixture(scope="module")
def status(scenario: Scenario) -> CutoverStatus:
    """The status view at the end of the run."""
    return cutover_status(scenario.engine, cutover_name=None, now=scenario.clock())


@pytest.fixture(scope="module")
def report(scenario: Scenario) -> EffectivenessReport:
    """The effectiveness report at the end of the run."""
    return effectiveness_report(scenario.engine, cutover_name=None, now=scenario.clock())


def _occurrence(status: CutoverStatus, key: str) -> OccurrenceStatus:
    return next(item for item in status.occurrences if item.key == key)


# -- status -----------------------------------------------------------------------------------


def test_status_names_the_state_with_its_stage(status: CutoverStatus) -> None:
    """The cutover is reported in progress at stage 25 with its T0."""
    assert status.state_label == "in progress at stage 25 %"
    assert status.start == T0


def test_status_lists_the_next_time_based_messages_in_due_order(scenario: Scenario, status: CutoverStatus) -> None:
    """Next messages are the pending time-based occurrences, earliest first, with their time from now."""
    with Session(scenario.engine) as session:
        pending = sorted(
            (o.due_at, o.key)
            for o in session.exec(select(OccurrenceRow).where(OccurrenceRow.state == "pending")).all()
            if not o.materialized and o.due_at is not None
        )
    assert [m.key for m in status.next_messages] == [key for _, key in pending[:5]]
    first = status.next_messages[0]
    assert first.in_seconds == (first.due_at - scenario.clock()).total_seconds() > 0
    assert first.relative.startswith("in ")


def test_status_counts_sent_and_dead_by_channel(scenario: Scenario, status: CutoverStatus) -> None:
    """The advance notice shows what the channels received as sent and the rejected Slack post as dead."""
    advance = _occurrence(status, "advance-notice")
    assert advance.channels["email"].sent == scenario.sent_to("advance-notice", Channel.EMAIL) > 0
    assert advance.channels["slack"].sent == scenario.sent_to("advance-notice", Channel.SLACK) > 0
    assert advance.channels["slack"].dead == 1


def test_status_shows_a_delivery_waiting_for_its_retry_as_retrying(scenario: Scenario, status: CutoverStatus) -> None:
    """The status-page update that got a 429 is retrying (pending after a failed attempt), with its retry time."""
    stage = _occurrence(status, scenario.stage_25_key)
    assert stage.channels["statuspage"].retrying == 1 and stage.channels["statuspage"].pending == 0
    with Session(scenario.engine) as session:
        failed = session.exec(
            select(AttemptRow).where(AttemptRow.outcome == "transient", AttemptRow.channel == "statuspage")
        ).one()
    assert failed.finished_at is not None
    assert stage.next_retry_at == failed.finished_at + timedelta(seconds=3600)


def test_status_shows_the_missed_reminder_without_deliveries(status: CutoverStatus) -> None:
    """An occurrence past its lateness bound is missed and has no delivery."""
    reminder = _occurrence(status, "reminder")
    assert reminder.state == "missed" and reminder.channels == {}


def test_status_totals_match_the_delivery_rows(scenario: Scenario, status: CutoverStatus) -> None:
    """The totals add up to every delivery row of the cutover."""
    with Session(scenario.engine) as session:
        rows = session.exec(select(DeliveryRow)).all()
    assert status.totals.total == len(rows)
    assert status.totals.sent == sum(1 for r in rows if r.state == "sent")


def test_status_lists_open_incidents_only(status: CutoverStatus) -> None:
    """The acknowledged sev2 is still open (not resolved); both incidents are listed with their state."""
    assert status.incidents is not None
    assert [(i.severity, i.state) for i in status.incidents] == [("sev2", "acknowledged"), ("sev3", "open")]


def test_status_lists_escalations_of_every_kind(status: CutoverStatus) -> None:
    """The dead Slack post, the missed reminder and each incident's first level are escalations."""
    assert status.escalations is not None
    assert Counter(e.kind for e in status.escalations) == {"delivery_failure": 1, "missed": 1, "notified": 2}


def test_status_without_a_cutover_is_not_found(tmp_path: Path) -> None:
    """An empty store gives a NotFoundError that says to schedule first."""
    engine = make_engine(f"sqlite:///{tmp_path}/empty.db")
    with pytest.raises(NotFoundError, match="comms schedule"):
        cutover_status(engine, cutover_name=None, now=T0)


# -- report -----------------------------------------------------------------------------------


def test_report_rates_per_channel_match_the_channels(scenario: Scenario, report: EffectivenessReport) -> None:
    """Per channel, sent equals what the recording channel received, and the rate is sent over total."""
    lines = {line.key: line for line in report.by_channel}
    assert {"email", "slack", "statuspage"} <= set(lines)
    for kind in Channel:
        received = sum(len(e.recipients) for e in scenario.channels[kind].sent)
        if kind.value not in lines:  # a channel the plan does not use (the webhook) has no line and no sends
            assert received == 0
            continue
        assert lines[kind.value].sent == received
        assert lines[kind.value].rate == round(100 * received / lines[kind.value].total, 1)
    assert lines["slack"].dead == 1 and lines["statuspage"].open == 1


def test_report_rates_per_audience_cover_every_delivery(scenario: Scenario, report: EffectivenessReport) -> None:
    """Audience lines add up to all deliveries, and the dead Slack post counts against its audience."""
    with Session(scenario.engine) as session:
        dead = session.exec(select(DeliveryRow).where(DeliveryRow.state == "dead")).one()
        total = len(session.exec(select(DeliveryRow.id)).all())
    assert sum(line.total for line in report.by_audience) == total
    assert {line.key: line.dead for line in report.by_audience}[dead.audience] == 1


def test_report_measures_the_late_final_notice(report: EffectivenessReport) -> None:
    """The final notice, run 10 minutes after its due time, is 600 s late and not on time."""
    final = next(item for item in report.lateness if item.key == "final-notice")
    assert final.seconds == FINAL_NOTICE_DELAY.total_seconds() and not final.on_time
    assert report.timeliness.max_seconds == FINAL_NOTICE_DELAY.total_seconds()


def test_report_counts_missed_and_late_against_the_on_time_rate(report: EffectivenessReport) -> None:
    """On-time rate = on-time occurrences over every due one; the missed reminder is due and not sent."""
    t = report.timeliness
    assert t.not_sent == 1 and t.late == 1
    assert t.on_time == t.due - 2
    assert t.on_time_rate == round(100 * t.on_time / t.due, 1)


def test_report_groups_failures_by_last_error(report: EffectivenessReport) -> None:
    """The Slack rejection (dead) and the 429 (retrying) are two failure reasons."""
    reasons = {(f.channel, f.state): f for f in report.failures}
    assert SLACK_ERROR in reasons[("slack", "dead")].reason and reasons[("slack", "dead")].count == 1
    assert reasons[("statuspage", "pending")].reason == STATUSPAGE_ERROR
    assert report.failure_groups == 2


def test_report_counts_transient_attempts_as_retries(scenario: Scenario, report: EffectivenessReport) -> None:
    """Retries per channel are the attempt rows with a transient outcome."""
    with Session(scenario.engine) as session:
        transient = Counter(
            a.channel for a in session.exec(select(AttemptRow).where(AttemptRow.outcome == "transient")).all()
        )
    assert {r.channel: r.transient for r in report.retries if r.transient} == dict(transient)
    assert transient == {"email": 1, "statuspage": 1}


def test_report_lists_the_dead_letter(report: EffectivenessReport) -> None:
    """The one dead delivery is listed with its occurrence and error."""
    assert report.dead_total == 1
    [letter] = report.dead_letters
    assert letter.occurrence == "advance-notice" and letter.channel == "slack" and SLACK_ERROR in (letter.error or "")


def test_report_gives_time_to_acknowledge(report: EffectivenessReport) -> None:
    """The sev2 was acknowledged 12 minutes after it opened; the sev3 is not acknowledged."""
    assert report.incidents is not None
    by_severity = {i.severity: i for i in report.incidents}
    assert by_severity["sev2"].ack_seconds == ACK_DELAY.total_seconds() and by_severity["sev2"].acked_by == "Dana"
    assert by_severity["sev3"].ack_seconds is None and by_severity["sev3"].notices == 1


def test_metrics_count_escalation_steps(scenario: Scenario) -> None:
    """communication_metrics()['escalations'] is the number of escalation notices recorded."""
    with Session(scenario.engine) as session:
        steps = session.exec(select(EscalationStepRow)).all()
        metrics = communication_metrics(session, repo.find_cutover(session, None))
    assert metrics["escalations"] == sum(1 for s in steps if s.kind in ("notified", "delivery_failure", "missed")) == 4


def test_metrics_keep_the_template_keys(scenario: Scenario) -> None:
    """The keys the success-metrics templates use are all present."""
    with Session(scenario.engine) as session:
        metrics = communication_metrics(session, repo.find_cutover(session, None))
    assert {
        "deliveries_sent",
        "deliveries_total",
        "delivery_rate",
        "on_time_rate",
        "lateness_p95_seconds",
        "dead",
        "escalations",
        "kpis",
    } <= metrics.keys()


def test_report_json_is_serialisable(report: EffectivenessReport) -> None:
    """The JSON form holds only JSON types (times as ISO UTC text)."""
    data = json.loads(json.dumps(report.to_json()))
    assert data["timeliness"]["due"] == report.timeliness.due
    assert data["lateness"][0]["due_at"].endswith("Z")
