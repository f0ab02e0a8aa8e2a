"""A big message's rows after its first chunk are written by a child process while the sender sends.

The child reports each committed chunk; killed, it leaves whole chunks and the next tick writes the rest;
it stops by itself after the chunk in which it finds the occurrence ended.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import Session, select

from comms.bootstrap import bootstrap
from comms.delivery.materialize import INSERT_BATCH, FillLost, materialize
from comms.delivery.writer_process import ENDED_EXIT, WriterProcess
from comms.plan.loader import load_plan
from comms.plan.models import Trigger
from comms.services.scheduling import apply_event, schedule_cutover
from comms.store import lease
from comms.store.tables import CutoverRow, OccurrenceRow
from comms.store.transaction import open_transaction
from tests.support.clock import FakeClock

from .builders import make_settings

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import _common  # noqa: E402


def _services(tmp_path: Path, sendgrid, recipients: int, database_url: str | None = None):  # type: ignore[no-untyped-def]
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
    plan = load_plan(_common.make_plan(tmp_path, recipients), check_templates=False)
    overrides: dict[str, object] = {"writer_process_after": INSERT_BATCH}  # a child after the first chunk
    if database_url:
        overrides["database_url"] = database_url
    services = bootstrap(make_settings(tmp_path, sendgrid=sendgrid, **overrides), clock=clock, sleep=clock.sleep)
    schedule_cutover(services.engine, plan, start=_common.due_now_start(clock()), now=clock())
    return services, plan, clock


def _first_chunk(services, clock) -> int:  # type: ignore[no-untyped-def]
    """Write the advance notice's first chunk, as a sender killed right after it would leave it."""
    tx = open_transaction(services.engine)
    occurrence = tx.exec(select(OccurrenceRow).where(OccurrenceRow.key == "advance-notice")).one()
    cutover = tx.get(CutoverRow, occurrence.cutover_id)
    assert cutover is not None and occurrence.id is not None
    plan, renderer = services.dispatcher.plans.get(cutover.plan_dir)
    chunks = materialize(tx, plan, renderer, cutover, occurrence, now=clock(), metrics=lambda _tx, _c: {})
    written = 0
    while written < INSERT_BATCH:
        written += next(chunks).rows
    occurrence_id = occurrence.id
    tx.close()
    return occurrence_id


def _url(services) -> str:  # type: ignore[no-untyped-def]
    return str(services.engine.url.render_as_string(hide_password=False))


def _wait_for_chunks(writer: WriterProcess, count: int) -> int:
    """Poll the child until it has reported ``count`` chunks (or exited); return how many it reported."""
    seen = 0
    deadline = time.monotonic() + 60
    while seen < count and not writer.done and time.monotonic() < deadline:
        writer.wait_for_output(0.5)
        seen += len(writer.poll())
    return seen


def _states(services, occurrence_id: int) -> Counter[str]:  # type: ignore[no-untyped-def]
    with services.engine.connect() as connection:
        rows = connection.execute(
            text("SELECT state, count(*) FROM delivery WHERE occurrence_id = :o AND audience = 'end-users' GROUP BY 1"),
            {"o": occurrence_id},
        ).all()
    return Counter({str(state): int(count) for state, count in rows})


def _sent_keys(sendgrid) -> Counter[str]:  # type: ignore[no-untyped-def]
    return Counter(p["custom_args"]["delivery_key"] for body in sendgrid.accepted for p in body["personalizations"])


def _batches_holding_nobody(services) -> int:  # type: ignore[no-untyped-def]
    with services.engine.connect() as connection:
        return int(
            connection.execute(
                text(
                    "SELECT count(*) FROM delivery_batch AS b WHERE NOT EXISTS (SELECT 1 FROM recipient WHERE batch_id = b.id)"
                )
            ).scalar_one()
        )


def test_a_big_message_is_sent_once_with_its_rest_written_by_a_child_process(
    tmp_path, sendgrid, database_url, caplog
) -> None:  # type: ignore[no-untyped-def]
    services, _, _ = _services(tmp_path, sendgrid, 12_000, database_url)
    with caplog.at_level(logging.INFO, logger="comms.delivery.opening"):
        report = services.dispatcher.run_until_idle()
    assert "writing the rest of advance-notice's rows in process" in caplog.text
    keys = _sent_keys(sendgrid)
    assert report.sent >= 12_000 and sum(1 for key in keys if "|advance-notice|end-users|" in key) == 12_000
    assert max(keys.values()) == 1


def test_a_killed_writer_leaves_whole_chunks_and_the_next_tick_writes_the_rest(tmp_path, sendgrid) -> None:  # type: ignore[no-untyped-def]
    services, _, clock = _services(tmp_path, sendgrid, 40_000)
    occurrence_id = _first_chunk(services, clock)
    writer = WriterProcess.start(
        _url(services), occurrence_id=occurrence_id, owner=services.dispatcher.owner, now=clock()
    )
    assert _wait_for_chunks(writer, 2) == 2  # the resumed first chunk (nothing new) and one more
    writer.process.kill()
    writer.stop()
    written = sum(_states(services, occurrence_id).values())
    assert written % 1000 == 0 and 2 * INSERT_BATCH <= written < 40_000  # whole chunks only

    services.dispatcher.run_until_idle()

    assert _states(services, occurrence_id) == {"sent": 40_000}
    keys = _sent_keys(sendgrid)
    assert sum(1 for key in keys if "|advance-notice|end-users|" in key) == 40_000 and max(keys.values()) == 1
    assert _batches_holding_nobody(services) == 0  # a resumed chunk's unused batches are gone


def test_the_writer_stops_after_the_chunk_in_which_it_finds_the_occurrence_ended(tmp_path, sendgrid) -> None:  # type: ignore[no-untyped-def]
    services, plan, clock = _services(tmp_path, sendgrid, 60_000)
    occurrence_id = _first_chunk(services, clock)
    writer = WriterProcess.start(
        _url(services), occurrence_id=occurrence_id, owner=services.dispatcher.owner, now=clock()
    )
    assert _wait_for_chunks(writer, 2) == 2
    apply_event(services.engine, plan, cutover_name=None, event=Trigger.CANCEL, now=clock(), reason="Vendor bug")
    writer.process.wait(timeout=60)
    writer.stop()
    assert writer.returncode == ENDED_EXIT
    assert sum(_states(services, occurrence_id).values()) < 60_000  # it did not write on to the end

    services.dispatcher.run_until_idle()

    assert _states(services, occurrence_id) == {"cancelled": 60_000}
    assert not any("|advance-notice|end-users|" in key for key in _sent_keys(sendgrid))


def test_with_the_setting_off_every_chunk_is_written_in_the_sender(tmp_path, sendgrid, caplog) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
    plan = load_plan(_common.make_plan(tmp_path, 12_000), check_templates=False)
    settings = make_settings(tmp_path, sendgrid=sendgrid, writer_process=False, writer_process_after=INSERT_BATCH)
    services = bootstrap(settings, clock=clock, sleep=clock.sleep)
    schedule_cutover(services.engine, plan, start=_common.due_now_start(clock()), now=clock())
    with caplog.at_level(logging.INFO, logger="comms.delivery.opening"):
        services.dispatcher.run_until_idle()
    assert "in process" not in caplog.text
    assert sum(1 for key in _sent_keys(sendgrid) if "|advance-notice|end-users|" in key) == 12_000


def test_a_chunk_commits_only_while_its_writer_may_write(tmp_path, sendgrid, database_url) -> None:  # type: ignore[no-untyped-def]
    """A writer that lost the fill lease (or whose sender died) rolls its chunk back and stops: no row of it."""
    services, _, clock = _services(tmp_path, sendgrid, 12_000, database_url)
    occurrence_id = _first_chunk(services, clock)
    tx = open_transaction(services.engine)
    occurrence = tx.get(OccurrenceRow, occurrence_id)
    assert occurrence is not None
    cutover = tx.get(CutoverRow, occurrence.cutover_id)
    assert cutover is not None
    plan, renderer = services.dispatcher.plans.get(cutover.plan_dir)
    chunks = materialize(
        tx,
        plan,
        renderer,
        cutover,
        occurrence,
        now=clock(),
        metrics=lambda _t, _c: {},
        resuming=True,
        guard=lambda _t: False,
    )
    with pytest.raises(FillLost):
        list(chunks)
    tx.close()
    assert sum(_states(services, occurrence_id).values()) == INSERT_BATCH  # the first chunk only


def test_only_the_holder_of_the_fill_lease_may_commit_a_chunk(tmp_path, sendgrid, postgres_url) -> None:  # type: ignore[no-untyped-def]
    """On PostgreSQL the check locks the lease row: a worker whose lease another took may not commit."""
    services, _, clock = _services(tmp_path, sendgrid, 10, postgres_url)
    assert lease.take_fill(services.engine, 7, "host:1:a", now=clock(), ttl=15)
    with Session(services.engine) as session:
        assert lease.holds_fill(session, 7, "host:1:a") and not lease.holds_fill(session, 7, "host:2:b")
