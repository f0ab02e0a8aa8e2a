"""Incident lifecycle on SQLite with recording channels: open, update, ack, resolve; threads and status page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session

from comms.bootstrap import Services, bootstrap
from comms.channels.base import Envelope
from comms.errors import InputError, NotFoundError, StateError
from comms.plan.fields import Channel
from comms.plan.loader import load_plan
from comms.services.incidents import (
    IncidentOutcome,
    acknowledge_incident,
    list_incidents,
    open_incident,
    resolve_incident,
    update_incident,
)
from comms.services.scheduling import schedule_cutover
from comms.settings import Settings
from comms.store.incident_tables import IncidentRow
from tests.support.clock import FakeClock
from tests.support.recording import RecordingChannel, recording_channels

REPO_ROOT = Path(__file__).resolve().parents[2]
PLAN = load_plan(REPO_ROOT, check_templates=False)  # loaded once; each test gets its own database
OPENED = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
T0 = OPENED + timedelta(days=15)


class Ops:
    """The services under test on a fake clock, dispatching what each call queues."""

    def __init__(self, database_url: str) -> None:
        self.clock = FakeClock(OPENED)
        self.channels: dict[Channel, RecordingChannel] = recording_channels()
        settings = Settings(database_url=database_url, max_attempts=3)
        self.services: Services = bootstrap(settings, clock=self.clock, sleep=self.clock.sleep, channels=self.channels)
        self.services.dispatcher.plans.put(PLAN)
        schedule_cutover(self.services.engine, PLAN, start=T0, now=self.clock())

    def _send(self, outcome: IncidentOutcome) -> int:
        self.services.dispatcher.dispatch_now(outcome.occurrences)
        return outcome.incident_id

    def open(self, severity: str = "sev1", summary: str = "Sign-in fails for some users") -> int:
        return self._send(
            open_incident(
                self.services.engine,
                self.services.dispatcher.plans,
                severity=severity,
                summary=summary,
                components=["Authentication"],
                now=self.clock(),
            )
        )

    def update(self, incident: int, status: str = "identified", message: str = "Rolling back") -> int:
        return self._send(
            update_incident(
                self.services.engine,
                self.services.dispatcher.plans,
                incident,
                status=status,
                message=message,
                now=self.clock(),
            )
        )

    def ack(self, incident: int, by: str = "Dana") -> int:
        return self._send(
            acknowledge_incident(
                self.services.engine, self.services.dispatcher.plans, incident, by=by, now=self.clock()
            )
        )

    def resolve(self, incident: int, message: str = "Traffic is back on the old system") -> int:
        return self._send(
            resolve_incident(
                self.services.engine, self.services.dispatcher.plans, incident, message=message, now=self.clock()
            )
        )

    def sent(self, kind: Channel, message: str) -> list[tuple[int, Envelope]]:
        """(position in the channel's log, envelope) of every send of ``message`` on ``kind``."""
        return [(i, e) for i, e in enumerate(self.channels[kind].sent) if e.message == message]


@pytest.fixture
def ops(database_url: str) -> Ops:
    return Ops(database_url)


def test_opening_tells_every_audience_of_the_severity(ops: Ops) -> None:
    """A sev1 goes by email to all five audiences and to each audience's Slack channel."""
    ops.open()
    emails = {r.address for _, e in ops.sent(Channel.EMAIL, "incident-opened") for r in e.recipients}
    slack = {e.recipients[0].address for _, e in ops.sent(Channel.SLACK, "incident-opened")}
    assert {
        "cto@example.com",
        "support-leads@example.com",
        "cs-team@example.com",
        "oncall@example.com",
        "ada.lovelace@example.com",
    } <= emails
    assert slack == {"#cutover", "#exec-updates", "#support-cutover", "#customer-success"}


def test_sev1_opens_a_realtime_status_page_incident_with_the_policy_impact(ops: Ops) -> None:
    """The status page gets a new investigating incident, impact major, components partial_outage."""
    ops.open()
    [(_, envelope)] = ops.sent(Channel.STATUSPAGE, "incident-opened")
    intent = envelope.statuspage
    assert intent is not None and intent.incident_id is None
    assert (intent.status, intent.impact, intent.component_status) == ("investigating", "major", "partial_outage")


def test_sev2_stays_off_the_status_page_and_away_from_end_users(ops: Ops) -> None:
    """sev2 has no statuspage_impact and no end-users: no status-page send, no end-user email."""
    incident = ops.open(severity="sev2")
    ops.update(incident)
    ops.resolve(incident)
    assert ops.channels[Channel.STATUSPAGE].sent == []
    audiences = {e.audience for e in ops.channels[Channel.EMAIL].sent if e.message.startswith("incident-")}
    assert "end-users" not in audiences


def test_updates_thread_under_the_incidents_first_post_in_each_channel(ops: Ops) -> None:
    """Every update and the resolution reply in the thread of the incident's opening post, per channel."""
    incident = ops.open()
    ops.update(incident)
    ops.update(incident, status="monitoring", message="Error rate back to normal")
    ops.resolve(incident)
    roots = {e.recipients[0].address: f"slack-{i + 1}" for i, e in ops.sent(Channel.SLACK, "incident-opened")}
    assert all(e.thread_ref is None for _, e in ops.sent(Channel.SLACK, "incident-opened"))
    followers = ops.sent(Channel.SLACK, "incident-updated") + ops.sent(Channel.SLACK, "incident-resolved")
    assert len(followers) == 3 * len(roots)
    for _, envelope in followers:
        assert envelope.thread_ref == roots[envelope.recipients[0].address]


def test_two_incidents_have_separate_threads(ops: Ops) -> None:
    """A second incident starts its own thread instead of replying under the first."""
    ops.open(summary="Sign-in fails")
    ops.open(summary="Uploads are slow")
    refs = [
        e.thread_ref for _, e in ops.sent(Channel.SLACK, "incident-opened") if e.recipients[0].address == "#cutover"
    ]
    assert refs == [None, None]


def test_status_page_incident_is_updated_in_place(ops: Ops) -> None:
    """Updates and the resolution update the status-page incident the opening created."""
    incident = ops.open()
    ops.update(incident)
    ops.update(incident, status="monitoring", message="Watching the error rate")
    ops.resolve(incident)
    [(index, _)] = ops.sent(Channel.STATUSPAGE, "incident-opened")
    later = ops.sent(Channel.STATUSPAGE, "incident-updated") + ops.sent(Channel.STATUSPAGE, "incident-resolved")
    intents = [e.statuspage for _, e in later]
    assert [i.incident_id for i in intents if i] == [f"inc-{index + 1}"] * 3
    assert [i.status for i in intents if i] == ["identified", "monitoring", "resolved"]
    assert intents[-1] is not None and intents[-1].component_status == "operational"


def test_acknowledgement_is_announced_internally(ops: Ops) -> None:
    """The acknowledgement goes to executives, support, engineering and customer success, not end users."""
    ops.ack(ops.open())
    audiences = {e.audience for c in ops.channels.values() for e in c.sent if e.message == "incident-acknowledged"}
    assert audiences == {"executives", "support", "engineering", "customer-success"}


def test_acknowledgement_records_who_and_when(ops: Ops) -> None:
    """The incident keeps who acknowledged it and at what time."""
    incident = ops.open()
    ops.clock.set(OPENED + timedelta(minutes=7))
    ops.ack(incident)
    with Session(ops.services.engine) as session:
        row = session.get(IncidentRow, incident)
    assert row is not None and (row.acked_by, row.acked_at) == ("Dana", OPENED + timedelta(minutes=7))


def test_acknowledgement_names_who_took_it(ops: Ops) -> None:
    """The acknowledgement's Slack post names the person who acknowledged."""
    ops.ack(ops.open(), by="Dana (on-call)")
    [(_, envelope)] = [
        (i, e)
        for i, e in ops.sent(Channel.SLACK, "incident-acknowledged")
        if e.recipients[0].address == "#exec-updates"
    ]
    assert "Dana (on-call)" in envelope.content.text  # type: ignore[union-attr]


def test_full_lifecycle_is_listed_with_its_history(ops: Ops) -> None:
    """open -> update -> ack -> resolve leaves a resolved incident whose history shows each step in order."""
    incident = ops.open()
    ops.clock.advance(minutes=5)
    ops.update(incident)
    ops.clock.advance(minutes=5)
    ops.ack(incident)
    ops.clock.advance(minutes=5)
    ops.resolve(incident)
    [view] = list_incidents(ops.services.engine, ops.services.dispatcher.plans, now=ops.clock())
    assert (view.id, view.state, view.status, view.acked_by) == (incident, "resolved", "resolved", "Dana")
    assert [s.kind for s in view.history] == ["opened", "notified", "updated", "acked", "resolved"]
    assert view.next_escalation_at is None


def test_list_json_has_the_documented_fields(ops: Ops) -> None:
    """Each listed incident has id, severity, state, summary and history."""
    ops.open()
    [data] = [v.to_json() for v in list_incidents(ops.services.engine, ops.services.dispatcher.plans, now=ops.clock())]
    assert {"id", "severity", "state", "summary", "history"} <= data.keys()
    assert data["history"][0]["kind"] == "opened"


def test_acknowledging_a_resolved_incident_is_refused(ops: Ops) -> None:
    """Ack after resolve is a StateError that says the incident is resolved."""
    incident = ops.open()
    ops.resolve(incident)
    with pytest.raises(StateError, match=f"incident #{incident} is already resolved"):
        ops.ack(incident)


def test_acknowledging_twice_is_refused(ops: Ops) -> None:
    """A second ack says who acknowledged it already."""
    incident = ops.ack(ops.open())
    with pytest.raises(StateError, match="already acknowledged by Dana"):
        ops.ack(incident, by="Sam")


def test_updating_an_unknown_incident_is_not_found(ops: Ops) -> None:
    """An update to an id that does not exist is a NotFoundError naming it."""
    with pytest.raises(NotFoundError, match="no incident #42"):
        ops.update(42)


def test_updating_a_resolved_incident_is_refused(ops: Ops) -> None:
    """A resolved incident takes no more updates."""
    incident = ops.open()
    ops.resolve(incident)
    with pytest.raises(StateError, match="was resolved"):
        ops.update(incident)


def test_resolving_twice_is_refused(ops: Ops) -> None:
    """A resolved incident cannot be resolved again."""
    incident = ops.open()
    ops.resolve(incident)
    with pytest.raises(StateError, match="already resolved"):
        ops.resolve(incident)


def test_update_status_must_be_identified_or_monitoring(ops: Ops) -> None:
    """--status resolved is refused with a pointer to 'comms incident resolve'."""
    incident = ops.open()
    with pytest.raises(InputError, match="--status.*comms incident resolve"):
        ops.update(incident, status="resolved")


def test_unknown_severity_is_refused_and_nothing_stored(ops: Ops) -> None:
    """--severity sev9 names the known severities and stores no incident."""
    with pytest.raises(InputError, match="--severity: unknown severity 'sev9' .*sev1, sev2, sev3"):
        ops.open(severity="sev9")
    assert list_incidents(ops.services.engine, ops.services.dispatcher.plans, now=ops.clock()) == []


def test_blank_summary_is_refused(ops: Ops) -> None:
    """An empty --summary is an InputError naming --summary."""
    with pytest.raises(InputError, match="--summary"):
        ops.open(summary="   ")


def test_two_acknowledgements_at_once_are_served_one_after_the_other(postgres_url: str) -> None:
    """Dana and Sam press Acknowledge together (PostgreSQL): Sam waits for Dana's ack, then is told it is taken.

    Without the row lock Sam's transaction read the incident unacknowledged while Dana's was still open,
    and both recorded and announced an acknowledgement.
    """
    import threading
    import time

    from sqlalchemy import text

    from comms.store.incidents import incident_with_cutover, record_acknowledgement

    ops = Ops(postgres_url)
    incident_id = ops.open()
    engine = ops.services.engine
    dana = Session(engine)
    found = incident_with_cutover(dana, incident_id, for_update=True)  # Dana's ack, in the middle of its transaction
    assert found is not None
    outcome: dict[str, object] = {}

    def sam() -> None:
        try:
            acknowledge_incident(engine, ops.services.dispatcher.plans, incident_id, by="Sam", now=ops.clock())
        except StateError as exc:
            outcome["refused"] = str(exc)
        else:
            outcome["acknowledged"] = True

    thread = threading.Thread(target=sam)
    thread.start()
    deadline = time.monotonic() + 10
    with engine.connect() as watcher:  # Sam's transaction is waiting for Dana's row lock
        waiting = (
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
        while not watcher.execute(text(waiting)).scalar_one() and time.monotonic() < deadline and thread.is_alive():
            watcher.rollback()
    record_acknowledgement(dana, found[0], by="Dana", now=ops.clock())
    dana.commit()
    dana.close()
    thread.join(timeout=10)
    assert "acknowledged" not in outcome
    assert "already acknowledged by Dana" in str(outcome.get("refused"))
    with Session(engine) as session:
        stored = session.get(IncidentRow, incident_id)
        assert stored is not None and stored.acked_by == "Dana"
