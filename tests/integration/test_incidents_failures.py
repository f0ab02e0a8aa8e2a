"""Automatic escalation: a dead delivery or a missed message tells the delivery_failures contacts, once."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from comms.bootstrap import Services, bootstrap
from comms.errors import PermanentChannelError, TransientChannelError
from comms.plan.fields import Channel
from comms.plan.loader import load_plan
from comms.services.adhoc import send_adhoc
from comms.services.incidents import open_incident
from comms.services.scheduling import schedule_cutover
from comms.settings import Settings
from comms.store.incident_tables import EscalationStepRow
from comms.store.tables import OccurrenceRow
from tests.support.clock import FakeClock
from tests.support.recording import RecordingChannel, recording_channels

REPO_ROOT = Path(__file__).resolve().parents[2]
PLAN = load_plan(REPO_ROOT, check_templates=False)  # loaded once; each test gets its own database
NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
T0 = NOW + timedelta(days=15)
LEAD = "comms-lead@example.com"


class Setup:
    """Services on a fake clock with recording channels that tests script to fail."""

    def __init__(self, database_url: str) -> None:
        self.clock = FakeClock(NOW)
        self.channels: dict[Channel, RecordingChannel] = recording_channels()
        self.services: Services = bootstrap(
            Settings(database_url=database_url, max_attempts=3, retry_base_seconds=5.0),
            clock=self.clock,
            sleep=self.clock.sleep,
            channels=self.channels,
        )
        self.services.dispatcher.plans.put(PLAN)
        schedule_cutover(self.services.engine, PLAN, start=T0, now=self.clock())

    def announce(self, *audiences: str, channel: str = "slack") -> None:
        """Send an announcement ad hoc, then let the worker run until idle."""
        outcome = send_adhoc(
            self.services.engine,
            self.services.dispatcher.plans,
            "announcement",
            audiences=list(audiences),
            channels=[channel],
            variables={"summary": "Heads-up", "details": "More soon"},
            now=self.clock(),
        )
        self.services.dispatcher.dispatch_now([outcome.occurrence_id])
        self.services.dispatcher.run_until_idle()

    def steps(self) -> list[EscalationStepRow]:
        with Session(self.services.engine) as session:
            return list(session.exec(select(EscalationStepRow).order_by(col(EscalationStepRow.id))).all())

    def notices(self) -> list[OccurrenceRow]:
        with Session(self.services.engine) as session:
            return list(session.exec(select(OccurrenceRow).where(OccurrenceRow.message == "escalation-notice")).all())

    def emails_to(self, address: str) -> list[str]:
        return [e.message for e in self.channels[Channel.EMAIL].sent for r in e.recipients if r.address == address]


@pytest.fixture
def setup(database_url: str) -> Setup:
    """On SQLite and on PostgreSQL (escalation steps are claimed with ON CONFLICT DO NOTHING on both)."""
    return Setup(database_url)


def _permanent() -> PermanentChannelError:
    return PermanentChannelError("channel_not_found", remedy="invite the app to the channel")


def test_dead_delivery_sends_one_internal_escalation(setup: Setup) -> None:
    """A Slack post that goes dead sends one escalation notice to engineering and the comms lead."""
    setup.channels[Channel.SLACK].failures.append(_permanent())
    setup.announce("executives")
    assert [s.kind for s in setup.steps()] == ["delivery_failure"]
    [notice] = setup.notices()
    assert notice.audiences_csv == "engineering" and notice.state == "done"
    assert setup.emails_to(LEAD) == ["escalation-notice"]
    assert [e.recipients[0].address for e in setup.channels[Channel.SLACK].sent] == ["#cutover"]


def test_failure_notice_says_what_failed(setup: Setup) -> None:
    """The notice's reason names the message, the occurrence and the provider's error."""
    setup.channels[Channel.SLACK].failures.append(_permanent())
    setup.announce("executives")
    [email] = [e for e in setup.channels[Channel.EMAIL].sent if any(r.address == LEAD for r in e.recipients)]
    text = email.content.text  # type: ignore[union-attr]
    assert "'announcement' (adhoc:announcement/1) could not be delivered" in text
    assert "channel_not_found" in text


def test_several_dead_deliveries_of_one_occurrence_escalate_once(setup: Setup) -> None:
    """Two Slack channels dying for the same message still make one notice."""
    setup.channels[Channel.SLACK].failures.extend([_permanent(), _permanent()])
    setup.announce("executives", "support")
    assert len(setup.notices()) == 1
    assert [s.kind for s in setup.steps()] == ["delivery_failure"]
    assert setup.emails_to(LEAD) == ["escalation-notice"]


def test_dead_deliveries_of_two_occurrences_escalate_each(setup: Setup) -> None:
    """Each failed occurrence gets its own notice."""
    setup.channels[Channel.SLACK].failures.append(_permanent())
    setup.announce("executives")
    setup.channels[Channel.SLACK].failures.append(_permanent())
    setup.announce("support")
    assert len(setup.notices()) == 2


def test_retried_then_sent_delivery_does_not_escalate(setup: Setup) -> None:
    """A transient failure that succeeds on retry is no failure to escalate."""
    setup.channels[Channel.SLACK].failures.append(TransientChannelError("rate limited", retry_after=2))
    setup.announce("executives")
    assert setup.steps() == [] and setup.notices() == []


def test_failed_escalation_notice_is_logged_not_escalated(setup: Setup, caplog: pytest.LogCaptureFixture) -> None:
    """When the notice itself dies, the failure is recorded and logged, and no second notice follows."""
    for kind in (Channel.SLACK, Channel.EMAIL):
        setup.channels[kind].failures.extend([_permanent() for _ in range(10)])
    with caplog.at_level(logging.ERROR, logger="comms.services.escalations"):
        setup.announce("executives")
        setup.services.dispatcher.run_until_idle()
    assert len(setup.notices()) == 1
    kinds = [(s.kind, s.sent_occurrence_id is not None) for s in setup.steps()]
    assert kinds == [("delivery_failure", True), ("delivery_failure", False)]
    assert "not escalated again" in caplog.text


def test_missed_message_escalates(setup: Setup) -> None:
    """A timeline message past its lateness bound is recorded as missed and escalated once."""
    setup.clock.set(T0 - timedelta(hours=48) + timedelta(hours=7))  # advance-notice allows 6h of lateness
    setup.services.dispatcher.run_until_idle()
    setup.services.dispatcher.run_until_idle()
    steps = setup.steps()
    # T-48h is 04:00 in New York: the end users' part waits for their quiet hours' end and is missed on its own
    assert [s.kind for s in steps] == ["missed", "missed"]
    assert "'advance-notice' (advance-notice) was not sent" in steps[0].detail
    assert "'advance-notice' (advance-notice~end-users) was not sent" in steps[1].detail
    assert setup.emails_to(LEAD) == ["escalation-notice", "escalation-notice"]


def test_failure_of_an_incident_message_carries_the_incident(setup: Setup) -> None:
    """A dead incident post escalates with the incident in the notice and in the incident's history."""
    setup.channels[Channel.STATUSPAGE].failures.append(
        PermanentChannelError("page not found", remedy="check COMMS_STATUSPAGE_PAGE_ID")
    )
    outcome = open_incident(
        setup.services.engine,
        setup.services.dispatcher.plans,
        severity="sev1",
        summary="Sign-in fails",
        now=setup.clock(),
    )
    setup.services.dispatcher.dispatch_now(outcome.occurrences)
    setup.services.dispatcher.run_until_idle()
    failure = [s for s in setup.steps() if s.kind == "delivery_failure"]
    assert [s.incident_id for s in failure] == [outcome.incident_id]
    [notice] = [n for n in setup.notices() if n.key.startswith("escalation:delivery-failure/")]
    assert '"summary": "Sign-in fails"' in (notice.context_json or "")
