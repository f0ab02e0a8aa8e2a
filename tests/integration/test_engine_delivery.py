"""Delivery fate in the engine: retries honouring Retry-After, dead letters, crash recovery, uncertain."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlmodel import Session, select

from comms.bootstrap import bootstrap
from comms.channels.base import not_watched
from comms.delivery.progress import SendSummary
from comms.errors import PermanentChannelError, TransientChannelError
from comms.plan.fields import Channel
from comms.services.scheduling import schedule_cutover
from comms.store.ledger_repair import retry_deliveries
from comms.store.tables import AttemptRow, BatchRow, DeliveryRow
from tests.support.engine import T0, Harness, make_harness


@pytest.fixture
def harness(tmp_path: Path, database_url: str) -> Harness:
    h = make_harness(tmp_path, max_attempts=3, database_url=database_url)
    schedule_cutover(h.services.engine, h.plan, start=T0, now=h.clock())
    h.at(timedelta(hours=-48))
    return h


def _deliveries(h: Harness, channel: Channel) -> list[DeliveryRow]:
    with Session(h.services.engine) as session:
        return list(session.exec(select(DeliveryRow).where(DeliveryRow.channel == channel.value)).all())


def test_transient_failure_is_retried_after_retry_after(harness: Harness) -> None:
    """A 429 with Retry-After 120 s is retried no sooner than 120 s later, then delivered."""
    harness.channels[Channel.EMAIL].failures.append(TransientChannelError("rate limited", retry_after=120))
    harness.run()
    assert harness.clock.sleeps and sum(harness.clock.sleeps) >= 120
    assert all(d.state == "sent" for d in _deliveries(harness, Channel.EMAIL))
    # The batch that met the 429 went on its second attempt; the others, held by it, on their first.
    assert {d.attempts for d in _deliveries(harness, Channel.EMAIL)} == {1, 2}


def test_backoff_grows_when_no_retry_after(harness: Harness) -> None:
    """Without Retry-After, waits follow the exponential backoff."""
    email = harness.channels[Channel.EMAIL]
    email.failures.extend([TransientChannelError("500")] * 10)  # two failed rounds for all five audiences
    harness.run()
    with Session(harness.services.engine) as session:
        starts = [
            a.started_at
            for a in session.exec(
                select(AttemptRow)
                .where(AttemptRow.channel == "email", AttemptRow.audience == "end-users")
                .order_by(AttemptRow.id)  # type: ignore[arg-type]
            ).all()
        ]
    gaps = [(b - a).total_seconds() for a, b in zip(starts, starts[1:], strict=False)]
    assert gaps[0] >= 5.0 and gaps[1] >= 10.0


def test_delivery_goes_dead_after_max_attempts(harness: Harness) -> None:
    """After the bounded number of attempts a delivery is dead, with its last error kept."""
    slack = harness.channels[Channel.SLACK]
    slack.failures.extend([TransientChannelError("service_unavailable")] * 100)
    harness.run()
    deliveries = _deliveries(harness, Channel.SLACK)
    assert {d.state for d in deliveries} == {"dead"}
    assert all(d.attempts == 3 and "service_unavailable" in (d.last_error or "") for d in deliveries)


def test_permanent_failure_is_dead_at_once(harness: Harness) -> None:
    """A permanent error is not retried; the remedy is recorded."""
    harness.channels[Channel.SLACK].failures.append(
        PermanentChannelError("not_in_channel", remedy="invite the bot to #exec-updates")
    )
    harness.run()
    dead = [d for d in _deliveries(harness, Channel.SLACK) if d.state == "dead"]
    assert len(dead) == 1 and dead[0].attempts == 1 and "invite the bot" in (dead[0].last_error or "")


def test_every_request_is_logged_as_an_attempt(harness: Harness) -> None:
    """Each provider request leaves an attempt row with its outcome."""
    harness.channels[Channel.EMAIL].failures.append(TransientChannelError("timeout"))
    harness.run()
    with Session(harness.services.engine) as session:
        outcomes = [a.outcome for a in session.exec(select(AttemptRow).where(AttemptRow.channel == "email")).all()]
    assert outcomes.count("transient") == 1 and outcomes.count("sent") >= 1


def _leave_in_flight(h: Harness, claim: str) -> None:
    """Simulate a process that died after claiming the Slack deliveries and before recording the outcome."""
    h.channels[Channel.SLACK].failures.append(TransientChannelError("x"))
    h.services.dispatcher.tick()
    with Session(h.services.engine) as session:
        session.execute(
            update(BatchRow)
            .where(BatchRow.channel == "slack", BatchRow.state == "pending")
            .values(state="in_flight", claim=claim)
        )
        session.commit()


DEAD_CLAIM = "no-such-host:999999:abc"


@pytest.mark.parametrize(("verdict", "expected"), [("sent", "sent"), ("not_sent", "pending"), ("unknown", "uncertain")])
def test_recovery_reconciles_in_flight(harness: Harness, verdict: str, expected: str) -> None:
    """A dead process's in-flight deliveries become sent, pending or uncertain as the provider says."""
    _leave_in_flight(harness, DEAD_CLAIM)
    harness.channels[Channel.SLACK].reconcile_state = verdict
    harness.services.dispatcher.recover()
    states = {d.state for d in _deliveries(harness, Channel.SLACK) if d.claim is None and d.state != "sent"} or {"sent"}
    assert states == {expected}


def test_live_claims_are_left_alone(harness: Harness) -> None:
    """In-flight rows claimed under the live lease of another sender are not reconciled."""
    from comms.store import lease

    lease.acquire(harness.services.engine, "other-host:42:live", role="worker", now=harness.clock(), ttl=30)
    _leave_in_flight(harness, "other-host:42:live/abc")
    assert harness.services.dispatcher.recover() == {"sent": 0, "pending": 0, "uncertain": 0}


def test_claims_of_an_expired_lease_are_settled(harness: Harness) -> None:
    """Once the other sender's lease expires, its claims are settled by whoever sends next."""

    from comms.store import lease

    lease.acquire(harness.services.engine, "other-host:42:gone", role="worker", now=harness.clock(), ttl=5)
    _leave_in_flight(harness, "other-host:42:gone/abc")
    harness.clock.advance(seconds=6)
    harness.channels[Channel.SLACK].reconcile_state = "unknown"
    assert harness.services.dispatcher.recover()["uncertain"] > 0


def test_uncertain_is_resent_only_on_request(harness: Harness) -> None:
    """Uncertain deliveries stay put until `retry --uncertain` re-queues and sends them."""
    _leave_in_flight(harness, DEAD_CLAIM)
    harness.services.dispatcher.recover()
    harness.run()
    assert any(d.state == "uncertain" for d in _deliveries(harness, Channel.SLACK))
    before = len(harness.channels[Channel.SLACK].sent)
    cutover_id = _deliveries(harness, Channel.SLACK)[0].cutover_id
    count = retry_deliveries(harness.services.engine, cutover_id=cutover_id, states=["uncertain"], now=harness.clock())
    harness.run()
    assert count > 0 and len(harness.channels[Channel.SLACK].sent) == before + count
    assert all(d.state == "sent" for d in _deliveries(harness, Channel.SLACK))


class _RecordingProgress:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, int]] = []
        self.summaries: list[SendSummary] = []

    def started(self, task: str, *, total: int) -> None:
        self.events.append(("started", task, total))

    def advanced(self, task: str, *, count: int) -> None:
        self.events.append(("advanced", task, count))

    def finished(self, task: str) -> None:
        self.events.append(("finished", task, 0))

    def summarized(self, summary: SendSummary) -> None:
        self.summaries.append(summary)


def test_progress_is_reported_per_occurrence(harness: Harness) -> None:
    """The dispatcher announces the total, advances by each batch's size, and finishes the task."""
    progress = _RecordingProgress()
    harness.services.dispatcher.progress = progress
    harness.run()
    started = [e for e in progress.events if e[0] == "started"]
    advanced = sum(e[2] for e in progress.events if e[0] == "advanced")
    assert started == [("started", "advance-notice", advanced)]
    assert progress.events[-1] == ("finished", "advance-notice", 0)


def test_each_send_is_summarized_in_one_line(harness: Harness) -> None:
    """One summary per audience x channel of the message, its counts adding up to what was sent."""
    progress = _RecordingProgress()
    harness.services.dispatcher.progress = progress
    report = harness.services.dispatcher.run_until_idle()
    lanes = [(s.message, s.audience, s.channel) for s in progress.summaries]
    assert len(lanes) == len(set(lanes)) and all(message == "advance-notice" for message, _, _ in lanes)
    assert sum(s.sent for s in progress.summaries) == report.sent > 0
    line = progress.summaries[0].describe()
    assert line.startswith(f"{harness.clock():%H:%M:%S}Z advance-notice -> ") and line.endswith(" sent")


def test_repeated_csv_address_is_delivered_once(tmp_path: Path, database_url: str) -> None:
    """A CSV naming an address twice (in any case) yields one delivery row and one send to it."""
    import shutil

    from tests.support.engine import REPO_ROOT

    root = tmp_path / "plan"
    for part in ("audiences", "schedules", "templates"):
        shutil.copytree(REPO_ROOT / part, root / part)
    csv = root / "audiences" / "end-users.csv"
    rows = csv.read_text(encoding="utf-8").splitlines()
    first_address = rows[1].split(",")[0]
    csv.write_text("\n".join([*rows, rows[1], f"{first_address.upper()},Shouting Twin"]) + "\n", encoding="utf-8")
    h = make_harness(tmp_path, plan_root=root, database_url=database_url)
    schedule_cutover(h.services.engine, h.plan, start=T0, now=h.clock())
    h.at(timedelta(hours=-48))
    h.run()
    end_user_rows = [d for d in _deliveries(h, Channel.EMAIL) if d.audience == "end-users"]
    assert len(end_user_rows) == len(rows) - 1
    sent = [r.lower() for r in h.channels[Channel.EMAIL].recipients() if r.lower() == first_address.lower()]
    assert sent == [first_address.lower()]


def test_a_message_due_during_a_big_send_does_not_wait_for_all_of_it(harness: Harness) -> None:
    """Lanes take turns: an incident opened while the advance notice still has batches goes out in between."""
    from comms.services.incidents import open_incident

    email = harness.channels[Channel.EMAIL]
    email.max_batch = 1  # one request per recipient: the advance notice is many batches
    opened = open_incident(
        harness.services.engine,
        harness.services.dispatcher.plans,
        severity="sev1",
        summary="Sign-in fails",
        components=["Authentication"],
        now=harness.clock(),
    )
    assert opened.occurrences
    harness.run()
    sends = [(envelope.message, envelope.audience) for envelope in email.sent]
    end_users = [i for i, sent in enumerate(sends) if sent == ("advance-notice", "end-users")]
    incident = [i for i, (message, _) in enumerate(sends) if message == "incident-opened"]
    assert len(end_users) >= 3 and incident
    assert incident[0] < end_users[1], sends  # after one turn of the busy lane, not after all of it


def test_slack_posts_to_one_channel_are_paced_a_second_apart(harness: Harness, monkeypatch) -> None:
    """Posts queued at once to one Slack channel go out 1 s apart on the injected clock; other channels don't wait."""
    from comms.services.adhoc import send_adhoc

    harness.run()
    slack = harness.channels[Channel.SLACK]
    posted: list[tuple[str, float]] = []
    record = slack.send

    def timed(envelope, leaving=not_watched):
        posted.append((envelope.recipients[0].address, harness.clock().timestamp()))
        return record(envelope, leaving)

    monkeypatch.setattr(slack, "send", timed)
    variables = {"summary": "Read-only at 23:00", "details": "The app is read-only for ten minutes."}
    for _ in range(3):
        send_adhoc(
            harness.services.engine,
            harness.services.dispatcher.plans,
            "announcement",
            audiences=["engineering", "executives"],
            channels=["slack"],
            variables=variables,
            now=harness.clock(),
        )
    harness.run()
    cutover = [at for target, at in posted if target == "#cutover"]
    executives = [at for target, at in posted if target == "#exec-updates"]
    assert [at - cutover[0] for at in cutover] == [0.0, 1.0, 2.0]
    assert [at - executives[0] for at in executives] == [0.0, 1.0, 2.0]
    assert executives[0] == cutover[0]  # the other channel's first post did not wait behind #cutover


class _BrokenBeforeOrAfterLeaving:
    """Wraps a channel; its next send raises a bug (not a ChannelError) before or after the request leaves."""

    def __init__(self, inner, *, after_leaving: bool) -> None:  # type: ignore[no-untyped-def]
        self.inner, self.kind, self.max_batch, self.dry_run = inner, inner.kind, inner.max_batch, inner.dry_run
        self.after_leaving = after_leaving
        self.broken = 1

    def send(self, envelope, leaving=not_watched):  # type: ignore[no-untyped-def]
        if self.broken:
            self.broken -= 1
            if self.after_leaving:
                leaving()
            raise RuntimeError("adapter bug")
        return self.inner.send(envelope, leaving)

    def reconcile(self, envelope):  # type: ignore[no-untyped-def]
        return self.inner.reconcile(envelope)


@pytest.mark.parametrize(("after_leaving", "expected"), [(False, "sent"), (True, "uncertain")])
def test_a_bug_before_the_request_leaves_is_retried_and_after_it_is_uncertain(
    harness: Harness, after_leaving: bool, expected: str
) -> None:
    """Before ``leaving`` nothing was sent, so the batch is retried and delivered; after it, it may have been."""
    channels = dict(harness.channels)
    channels[Channel.EMAIL] = _BrokenBeforeOrAfterLeaving(harness.channels[Channel.EMAIL], after_leaving=after_leaving)
    services = bootstrap(harness.services.settings, clock=harness.clock, sleep=harness.clock.sleep, channels=channels)
    services.dispatcher.max_in_flight = 1
    services.dispatcher.run_until_idle()
    states = {d.state for d in _deliveries(harness, Channel.EMAIL) if d.audience == "end-users"}
    assert expected in states and "in_flight" not in states, states
    if not after_leaving:
        assert states == {"sent"}
        with Session(harness.services.engine) as session:
            outcomes = [a.outcome for a in session.exec(select(AttemptRow).where(AttemptRow.channel == "email"))]
        assert outcomes.count("transient") == 1 and "uncertain" not in outcomes, outcomes
