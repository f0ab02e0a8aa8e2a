"""Typed text (incident summaries, updates, --var values) reaches every channel as data: escaped or literal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from comms.bootstrap import Services, bootstrap
from comms.channels.base import Envelope
from comms.core.content import EmailContent, SlackContent, StatuspageContent
from comms.plan.fields import Channel
from comms.plan.loader import load_plan
from comms.services.adhoc import send_adhoc
from comms.services.incidents import acknowledge_incident, open_incident, update_incident
from comms.services.scheduling import schedule_cutover
from comms.settings import Settings
from tests.support.clock import FakeClock
from tests.support.recording import RecordingChannel, recording_channels

REPO_ROOT = Path(__file__).resolve().parents[2]
PLAN = load_plan(REPO_ROOT, check_templates=False)  # loaded once; each test gets its own database
NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
PAYLOAD = "<!channel> <script>alert(1)</script> {{ 7*7 }} @here"


class Setup:
    """Services on a fake clock and recording channels, with a cutover scheduled far ahead."""

    def __init__(self, database_url: str) -> None:
        self.clock = FakeClock(NOW)
        self.channels: dict[Channel, RecordingChannel] = recording_channels()
        self.services: Services = bootstrap(
            Settings(database_url=database_url),
            clock=self.clock,
            sleep=self.clock.sleep,
            channels=self.channels,
        )
        self.services.dispatcher.plans.put(PLAN)
        schedule_cutover(self.services.engine, PLAN, start=NOW + timedelta(days=15), now=self.clock())

    def open_incident(self) -> None:
        """Open a sev1 whose summary, component, update and acknowledger are all the payload."""
        engine, plans = self.services.engine, self.services.dispatcher.plans
        opened = open_incident(engine, plans, severity="sev1", summary=PAYLOAD, components=[PAYLOAD], now=self.clock())
        self.services.dispatcher.dispatch_now(opened.occurrences)
        for outcome in (
            update_incident(engine, plans, opened.incident_id, status="identified", message=PAYLOAD, now=self.clock()),
            acknowledge_incident(engine, plans, opened.incident_id, by=PAYLOAD, now=self.clock()),
        ):
            self.services.dispatcher.dispatch_now(outcome.occurrences)

    def send_announcement(self) -> None:
        """An ad-hoc announcement whose --var values are the payload."""
        outcome = send_adhoc(
            self.services.engine,
            self.services.dispatcher.plans,
            "announcement",
            audiences=["engineering", "end-users"],
            variables={"summary": PAYLOAD, "details": PAYLOAD},
            now=self.clock(),
        )
        self.services.dispatcher.dispatch_now([outcome.occurrence_id])

    def received(self, kind: Channel) -> list[Envelope]:
        envelopes = [e for e in self.channels[kind].sent]
        assert envelopes, f"nothing was sent on {kind.value}"
        return envelopes


@pytest.fixture
def setup(database_url: str) -> Setup:
    return Setup(database_url)


def _slack_parts(envelope: Envelope) -> list[str]:
    content = envelope.content
    assert isinstance(content, SlackContent)
    return [content.text, *(str(block) for block in content.blocks)]


def _assert_slack_safe(envelopes: list[Envelope]) -> None:
    for envelope in envelopes:
        for part in _slack_parts(envelope):
            assert "<!channel>" not in part and "<script>" not in part and "<!here>" not in part, envelope.message
    bodies = "".join(part for e in envelopes for part in _slack_parts(e))
    assert "&lt;!channel&gt; &lt;script&gt;alert(1)&lt;/script&gt; {{ 7*7 }} @here" in bodies


def test_incident_text_is_slack_escaped(setup: Setup) -> None:
    """Summary, components, update and acknowledger cannot mention @channel or form links in Slack."""
    setup.open_incident()
    _assert_slack_safe(setup.received(Channel.SLACK))


def test_incident_text_is_html_escaped_in_email(setup: Setup) -> None:
    """The HTML part of every incident email shows the payload escaped, never as markup."""
    setup.open_incident()
    for envelope in setup.received(Channel.EMAIL):
        assert isinstance(envelope.content, EmailContent)
        assert "<script>" not in envelope.content.html and "<!channel>" not in envelope.content.html
    htmls = "".join(e.content.html for e in setup.received(Channel.EMAIL) if isinstance(e.content, EmailContent))
    assert "&lt;script&gt;alert(1)&lt;/script&gt; {{ 7*7 }} @here" in htmls


def test_incident_text_is_literal_in_plain_text_email(setup: Setup) -> None:
    """The text part carries the payload exactly as typed: not evaluated, not mangled."""
    setup.open_incident()
    texts = [e.content.text for e in setup.received(Channel.EMAIL) if isinstance(e.content, EmailContent)]
    assert any(PAYLOAD in text for text in texts)
    assert not any("alert(1)</script> 49 @here" in text for text in texts)


def test_incident_text_is_literal_on_the_status_page(setup: Setup) -> None:
    """The status page gets the payload as plain text in title and body, with no template evaluation."""
    setup.open_incident()
    contents = [e.content for e in setup.received(Channel.STATUSPAGE)]
    assert all(isinstance(c, StatuspageContent) for c in contents)
    assert any(PAYLOAD in c.title for c in contents if isinstance(c, StatuspageContent))
    assert all(" 49 " not in c.body and " 49 " not in c.title for c in contents if isinstance(c, StatuspageContent))
    assert any(PAYLOAD in c.body for c in contents if isinstance(c, StatuspageContent))


def test_escalation_notice_escapes_the_incident_summary(setup: Setup) -> None:
    """The level-1 escalation notice quotes the summary escaped in Slack and HTML."""
    setup.open_incident()
    notices = [e for e in setup.received(Channel.SLACK) if e.message == "escalation-notice"]
    assert notices
    _assert_slack_safe(notices)


def test_var_values_are_slack_escaped(setup: Setup) -> None:
    """--var values sent ad hoc are escaped in Slack like any typed text."""
    setup.send_announcement()
    _assert_slack_safe(setup.received(Channel.SLACK))


def test_var_values_are_html_escaped_and_never_evaluated_in_email(setup: Setup) -> None:
    """--var values are escaped in HTML, literal in the text part and subject, and '{{ 7*7 }}' stays as typed."""
    setup.send_announcement()
    for envelope in setup.received(Channel.EMAIL):
        content = envelope.content
        assert isinstance(content, EmailContent)
        assert "<script>" not in content.html and "&lt;script&gt;" in content.html
        assert PAYLOAD in content.text
        assert "{{ 7*7 }}" in content.subject and "49" not in content.subject
