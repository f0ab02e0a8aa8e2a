"""Ad-hoc sends (`comms send`): the same dispatch path as planned messages, and bad input stores nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from comms.bootstrap import Services, bootstrap
from comms.errors import InputError, NotFoundError, TransientChannelError
from comms.plan.fields import Channel
from comms.plan.loader import load_plan
from comms.services.adhoc import parse_vars, send_adhoc, split_names
from comms.services.scheduling import schedule_cutover
from comms.settings import Settings
from comms.store.tables import DeliveryRow, OccurrenceRow
from tests.support.clock import FakeClock
from tests.support.recording import RecordingChannel, recording_channels

REPO_ROOT = Path(__file__).resolve().parents[2]
PLAN = load_plan(REPO_ROOT, check_templates=False)  # loaded once; each test gets its own database
NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
VARS = {"summary": "Dry run tonight", "details": "Nothing changes for users"}


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

    def send(
        self,
        message: str = "announcement",
        audiences: tuple[str, ...] = ("engineering", "executives"),
        channels: tuple[str, ...] = (),
        variables: dict[str, str] | None = None,
    ) -> str:
        outcome = send_adhoc(
            self.services.engine,
            self.services.dispatcher.plans,
            message,
            audiences=audiences,
            channels=channels,
            variables=VARS if variables is None else variables,
            now=self.clock(),
        )
        self.services.dispatcher.dispatch_now([outcome.occurrence_id])
        return outcome.key

    def adhoc_rows(self) -> list[OccurrenceRow]:
        with Session(self.services.engine) as session:
            return list(session.exec(select(OccurrenceRow).where(OccurrenceRow.trigger == "adhoc")).all())


@pytest.fixture
def setup(database_url: str) -> Setup:
    return Setup(database_url)


def test_send_reaches_each_audience_on_each_channel(setup: Setup) -> None:
    """announcement to engineering and executives goes by email to both and to both Slack channels."""
    setup.send()
    emails = {r.address for e in setup.channels[Channel.EMAIL].sent for r in e.recipients}
    assert {"platform-team@example.com", "oncall@example.com", "cto@example.com", "ceo@example.com"} <= emails
    assert {e.recipients[0].address for e in setup.channels[Channel.SLACK].sent} == {"#cutover", "#exec-updates"}


def test_send_is_an_adhoc_occurrence_with_its_vars(setup: Setup) -> None:
    """The send is stored as trigger adhoc, key adhoc:announcement/1, context {"vars": ...}, done."""
    assert setup.send() == "adhoc:announcement/1"
    [row] = setup.adhoc_rows()
    assert (row.key, row.state, row.due_at) == ("adhoc:announcement/1", "done", NOW)
    assert row.context_json is not None and '"vars"' in row.context_json and "Dry run tonight" in row.context_json


def test_each_send_gets_the_next_number(setup: Setup) -> None:
    """Sending the same message twice makes adhoc:announcement/1 then /2, each delivered."""
    assert [setup.send(), setup.send()] == ["adhoc:announcement/1", "adhoc:announcement/2"]
    assert len([e for e in setup.channels[Channel.SLACK].sent if e.recipients[0].address == "#cutover"]) == 2


def test_channel_option_limits_the_channels(setup: Setup) -> None:
    """--channel slack sends no email."""
    setup.send(channels=("slack",))
    assert setup.channels[Channel.EMAIL].sent == [] and len(setup.channels[Channel.SLACK].sent) == 2


def test_comma_lists_and_repeats_are_both_accepted() -> None:
    """--audience a,b and --audience a --audience b mean the same."""
    assert split_names(["engineering,executives", "support", "engineering"]) == ["engineering", "executives", "support"]


def test_deliveries_are_logged_and_retried_like_planned_ones(setup: Setup) -> None:
    """A transient Slack failure is retried on the same delivery row (same idempotency key) and then sent."""
    setup.channels[Channel.SLACK].failures.append(TransientChannelError("rate limited", retry_after=3))
    setup.send(channels=("slack",))
    setup.services.dispatcher.run_until_idle()
    with Session(setup.services.engine) as session:
        rows = session.exec(select(DeliveryRow).where(DeliveryRow.channel == "slack")).all()
    assert sorted((r.recipient, r.state) for r in rows) == [("#cutover", "sent"), ("#exec-updates", "sent")]
    assert sorted(r.attempts for r in rows) == [1, 2]


def test_unknown_audience_is_refused_and_nothing_stored(setup: Setup) -> None:
    """--audience board names the argument and the known audiences; no occurrence is stored."""
    with pytest.raises(InputError, match="--audience: unknown audience 'board'"):
        setup.send(audiences=("engineering", "board"))
    assert setup.adhoc_rows() == []


def test_unknown_channel_is_refused_and_nothing_stored(setup: Setup) -> None:
    """--channel fax is an InputError naming --channel."""
    with pytest.raises(InputError, match="--channel: unknown channel 'fax'"):
        setup.send(channels=("fax",))
    assert setup.adhoc_rows() == []


def test_channel_the_message_is_not_sent_on_is_refused(setup: Setup) -> None:
    """--channel statuspage for announcement (email and slack only) is refused."""
    with pytest.raises(InputError, match="--channel: message 'announcement' is not sent on statuspage"):
        setup.send(channels=("statuspage",))
    assert setup.adhoc_rows() == []


def test_channel_no_chosen_audience_has_is_refused(setup: Setup) -> None:
    """end-users have no Slack: --audience end-users --channel slack is refused."""
    with pytest.raises(InputError, match="--channel: none of the audiences end-users is reached on slack"):
        setup.send(audiences=("end-users",), channels=("slack",))
    assert setup.adhoc_rows() == []


def test_missing_var_is_refused_and_nothing_stored(setup: Setup) -> None:
    """A template value not given is an InputError naming --var, before anything is stored."""
    with pytest.raises(InputError, match="--var: message 'announcement' needs a value"):
        setup.send(variables={"details": "no summary"})
    assert setup.adhoc_rows() == []


def test_malformed_var_is_refused() -> None:
    """--var without '=' or with a bad name is an InputError naming --var."""
    for bad in (["summary"], ["7up=x"], ["a b=c"]):
        with pytest.raises(InputError, match="--var: expected NAME=VALUE"):
            parse_vars(bad)


def test_var_value_keeps_equals_signs() -> None:
    """Only the first '=' separates name from value."""
    assert parse_vars(["summary=a=b", "details="]) == {"summary": "a=b", "details": ""}


def test_unknown_message_is_not_found(setup: Setup) -> None:
    """An unknown TEMPLATE is a NotFoundError naming the argument and nothing is stored."""
    with pytest.raises(NotFoundError, match="TEMPLATE: the plan has no message 'anouncement'"):
        setup.send(message="anouncement")
    assert setup.adhoc_rows() == []
