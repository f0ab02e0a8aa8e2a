"""Several workers on one PostgreSQL database: shared claims, leases of their own, pacing held across them."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path

from sqlmodel import Session, select

from comms.bootstrap import bootstrap
from comms.channels.statuspage import PAGE_TARGET
from comms.delivery.shared_pacing import SharedPacer, pacer_for
from comms.plan.fields import Channel
from comms.services.scheduling import schedule_cutover
from comms.store import lease
from comms.store.engine import make_engine
from comms.store.tables import AttemptRow, DeliveryRow, OccurrenceRow
from tests.support.engine import T0, make_harness


def test_two_workers_send_one_message_together_once(tmp_path: Path, postgres_url: str) -> None:
    """Two dispatchers ticking at once on one database: every row sent once, claims under both owners' names."""
    h = make_harness(tmp_path, database_url=postgres_url)
    h.channels[Channel.EMAIL].max_batch = 1  # one recipient a request: many small batches to share
    schedule_cutover(h.services.engine, h.plan, start=T0, now=h.clock())
    h.at(timedelta(hours=-48))
    other = bootstrap(h.services.settings, clock=h.clock, sleep=h.clock.sleep, channels=h.channels)
    dispatchers = [h.services.dispatcher, other.dispatcher]
    assert dispatchers[0].owner != dispatchers[1].owner
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            dispatchers[index].run_until_idle()
        except BaseException as exc:  # noqa: BLE001  (reported by the assertion below)
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    with Session(h.services.engine) as session:
        states = Counter(row.state for row in session.exec(select(DeliveryRow)).all())
        owners = {str(a.claim).rpartition("/")[0] for a in session.exec(select(AttemptRow)).all()}
    assert set(states) == {"sent"}, states
    sent = Counter(address for channel in h.channels.values() for address in channel.recipients())
    assert sent and max(sent.values()) == 1, sent.most_common(3)
    assert sum(sent.values()) == states["sent"]
    assert owners <= {d.owner for d in dispatchers}


def test_every_worker_holds_a_lease_of_its_own(postgres_url: str) -> None:
    """On PostgreSQL a second worker's acquire succeeds beside the first; both count as live owners."""
    engine = make_engine(postgres_url)
    now = T0
    assert lease.acquire(engine, "host-a:1:x", role="worker", now=now, ttl=10) is not None
    assert lease.acquire(engine, "host-b:2:y", role="worker", now=now, ttl=10) is not None
    assert lease.live_owners(engine, now=now + timedelta(seconds=5)) == {"host-a:1:x", "host-b:2:y"}
    assert lease.renew(engine, "host-a:1:x", now=now + timedelta(seconds=9), ttl=10)
    assert lease.live_owners(engine, now=now + timedelta(seconds=15)) == {"host-a:1:x"}


def test_a_stalled_worker_cannot_renew_an_expired_lease(postgres_url: str) -> None:
    """Past its expiry a worker's claims may be settled by others, so its renewal fails and it stops."""
    engine = make_engine(postgres_url)
    assert lease.acquire(engine, "host-a:1:x", role="worker", now=T0, ttl=10) is not None
    assert not lease.renew(engine, "host-a:1:x", now=T0 + timedelta(seconds=11), ttl=10)


def test_slack_pacing_holds_across_two_workers(postgres_url: str) -> None:
    """Two workers posting to one channel at once get slots one second apart; another channel does not wait."""
    engine = make_engine(postgres_url)
    slept: list[float] = []
    pacers = [
        SharedPacer(engine, "slack", 1.0, clock=lambda: T0, sleep=slept.append),
        SharedPacer(make_engine(postgres_url), "slack", 1.0, clock=lambda: T0, sleep=slept.append),
    ]
    waits = [pacers[n % 2].wait("#cutover") for n in range(4)]
    assert waits == [0.0, 1.0, 2.0, 3.0]
    assert pacers[1].wait("#exec-updates") == 0.0


def test_sqlite_keeps_the_in_process_pacer(tmp_path: Path) -> None:
    """With one sender (SQLite) pacing stays in the process: no database round trip per post."""
    engine = make_engine(f"sqlite:///{tmp_path}/comms.db")
    assert not isinstance(pacer_for(engine, "slack", 1.0, clock=lambda: T0, sleep=lambda _s: None), SharedPacer)


def test_a_content_another_worker_stored_first_is_reused(tmp_path: Path, database_url: str) -> None:
    """Two workers rendering one occurrence at once: the second's content insert yields the first's row."""
    from comms.store import recipient_writes
    from comms.store.tables import ContentRow, OccurrenceRow

    h = make_harness(tmp_path, database_url=database_url)
    schedule_cutover(h.services.engine, h.plan, start=T0, now=h.clock())
    with Session(h.services.engine) as session:
        occurrence = session.exec(select(OccurrenceRow)).first()
        assert occurrence is not None and occurrence.id is not None
        key = {"occurrence_id": occurrence.id, "audience": "end-users", "channel": "email"}
        first = recipient_writes.add_content(session, ContentRow(**key, body_json='{"a": 1}', sha256="first"))
        session.commit()
        second = recipient_writes.add_content(session, ContentRow(**key, body_json='{"a": 2}', sha256="second"))
        assert (second.id, second.sha256) == (first.id, "first")


def test_a_wake_reaches_a_listening_worker_at_once(postgres_url: str) -> None:
    """On PostgreSQL lease.wake is also a NOTIFY: a listener sees it without polling the counter."""
    from comms.store import wake_channel

    engine = make_engine(postgres_url)
    listener = wake_channel.listener(engine)
    assert listener is not None
    try:
        assert not listener.wait(0.05)
        lease.wake(engine)
        assert listener.wait(10.0)
        assert lease.wake_count(engine) == 1
    finally:
        listener.close()


def test_sqlite_workers_poll_the_wake_counter(tmp_path: Path) -> None:
    """SQLite has no LISTEN: no listener, the counter is the wake."""
    from comms.store import wake_channel

    assert wake_channel.listener(make_engine(f"sqlite:///{tmp_path}/comms.db")) is None


def test_a_command_leaves_the_sending_to_live_workers(postgres_url: str) -> None:
    """With a live worker a command's acquire fails (it wakes the workers); with none it takes a lease itself."""
    engine = make_engine(postgres_url)
    assert lease.acquire(engine, "cli:9:c", role="command", now=T0, ttl=10) is not None
    lease.release(engine, "cli:9:c")
    assert lease.acquire(engine, "host-a:1:x", role="worker", now=T0, ttl=10) is not None
    assert lease.acquire(engine, "cli:9:d", role="command", now=T0, ttl=10) is None
    assert lease.acquire(engine, "cli:9:e", role="command", now=T0 + timedelta(seconds=11), ttl=10) is not None


def test_a_429_one_worker_was_answered_holds_the_other_workers_requests(postgres_url: str) -> None:
    """ledger.hold_channel writes the provider's hold where every worker's next request waits it out."""
    from comms.delivery.shared_pacing import ProviderHold, hold_for
    from comms.store import ledger

    engine = make_engine(postgres_url)
    with Session(engine) as session:
        ledger.hold_channel(session, "email", until=T0 + timedelta(seconds=3))
        ledger.hold_channel(session, "email", until=T0 + timedelta(seconds=2))  # a shorter hold never shortens it
        session.commit()
    slept: list[float] = []
    other_worker = ProviderHold(make_engine(postgres_url), clock=lambda: T0 + timedelta(seconds=1), sleep=slept.append)
    assert other_worker.wait("email") == 2.0 and slept == [2.0]
    assert other_worker.wait("slack") == 0.0
    assert isinstance(hold_for(engine, clock=lambda: T0, sleep=slept.append), ProviderHold)


def test_status_page_pacing_holds_across_two_workers(tmp_path: Path, postgres_url: str) -> None:
    """Another worker's status-page request a moment ago: this worker's request to the page waits out the second."""
    slept: list[float] = []
    h = make_harness(tmp_path, database_url=postgres_url)
    schedule_cutover(h.services.engine, h.plan, start=T0, now=h.clock())
    h.at(timedelta(hours=-48))
    other_worker = SharedPacer(make_engine(postgres_url), "statuspage", 1.0, clock=h.clock, sleep=h.clock.sleep)
    other_worker.wait(PAGE_TARGET)  # its request to the page leaves now

    def recording_sleep(seconds: float) -> None:
        slept.append(seconds)
        h.clock.sleep(seconds)

    this = bootstrap(h.services.settings, clock=h.clock, sleep=recording_sleep, channels=h.channels)
    before = h.clock()
    this.dispatcher.run_until_idle()
    assert [seconds for seconds in slept if 0.9 <= seconds <= 1.0], slept
    assert len(h.channels[Channel.STATUSPAGE].recipients()) == 1 and h.clock() >= before + timedelta(seconds=1)


def test_one_worker_writes_an_occurrences_rows_and_another_carries_on_when_it_dies(
    tmp_path: Path, postgres_url: str
) -> None:
    """While another worker holds an occurrence's fill lease this one writes none of its rows; once that
    lease has expired (the writer died) this one writes and sends them all."""
    h = make_harness(tmp_path, database_url=postgres_url)
    schedule_cutover(h.services.engine, h.plan, start=T0, now=h.clock())
    h.at(timedelta(hours=-48))
    with Session(h.services.engine) as session:
        due = session.exec(select(OccurrenceRow).where(OccurrenceRow.key == "advance-notice")).one()
    assert due.id is not None
    assert lease.take_fill(h.services.engine, due.id, "writer-host:1:abc", now=h.clock(), ttl=15)

    h.services.dispatcher.tick()
    with Session(h.services.engine) as session:
        assert session.exec(select(DeliveryRow).where(DeliveryRow.occurrence_id == due.id)).all() == []
        assert not session.get(OccurrenceRow, due.id).materialized  # type: ignore[union-attr]

    h.clock.sleep(16)  # the writer's fill lease runs out
    h.services.dispatcher.run_until_idle()
    with Session(h.services.engine) as session:
        states = Counter(r.state for r in session.exec(select(DeliveryRow).where(DeliveryRow.occurrence_id == due.id)))
        assert session.get(OccurrenceRow, due.id).materialized  # type: ignore[union-attr]
    assert set(states) == {"sent"} and states["sent"] > 0, states
    # written: the fill lease was given up, so nobody waits on it
    assert lease.take_fill(h.services.engine, due.id, "another-host:2:def", now=h.clock(), ttl=15)
