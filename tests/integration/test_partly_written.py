"""A message that ends while its rows are being written: the rows not yet written are recorded, never forgotten.

12,000 end users are written 5,000 rows a transaction; after the first chunk the cutover is cancelled (or
the worker is gone past the lateness bound). The next ticks write the other 7,000 in the ended state.
"""

from __future__ import annotations

import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import Session, select

from comms.bootstrap import bootstrap
from comms.delivery.materialize import INSERT_BATCH, materialize
from comms.plan.loader import load_plan
from comms.plan.models import Trigger
from comms.services.scheduling import apply_event, schedule_cutover
from comms.store.tables import CutoverRow, DeliveryRow, OccurrenceRow
from comms.store.transaction import open_transaction
from tests.support.clock import FakeClock

from .builders import make_settings

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import _common  # noqa: E402

RECIPIENTS = 12_000


@pytest.fixture
def started(tmp_path, sendgrid, database_url):  # type: ignore[no-untyped-def]
    """The advance notice due now, its first chunk of rows written (as a worker killed after it leaves it)."""
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
    plan = load_plan(_common.make_plan(tmp_path, RECIPIENTS), check_templates=False)
    settings = make_settings(tmp_path, sendgrid=sendgrid, database_url=database_url)
    services = bootstrap(settings, clock=clock, sleep=clock.sleep)
    schedule_cutover(services.engine, plan, start=_common.due_now_start(clock()), now=clock())
    tx = open_transaction(services.engine)
    occurrence = tx.exec(select(OccurrenceRow).where(OccurrenceRow.key == "advance-notice")).one()
    occurrence_id = occurrence.id
    cutover = tx.get(CutoverRow, occurrence.cutover_id)
    assert cutover is not None
    _, renderer = services.dispatcher.plans.get(cutover.plan_dir)
    chunks = materialize(tx, plan, renderer, cutover, occurrence, now=clock(), metrics=lambda _tx, _c: {})
    written = 0
    while written < INSERT_BATCH:
        written += next(chunks).rows
    tx.close()
    return services, plan, clock, occurrence_id


def _end_user_states(services, occurrence_id: int) -> Counter[str]:  # type: ignore[no-untyped-def]
    with Session(services.engine) as session:
        rows = session.exec(
            select(DeliveryRow.state).where(
                DeliveryRow.occurrence_id == occurrence_id, DeliveryRow.audience == "end-users"
            )
        ).all()
    return Counter(rows)


def _advance_notices_sent(sendgrid) -> int:  # type: ignore[no-untyped-def]
    """End users the fake was sent the advance notice (the delivery key names the occurrence)."""
    keys = [p["custom_args"]["delivery_key"] for body in sendgrid.accepted for p in body["personalizations"]]
    return sum(1 for key in keys if "|advance-notice|end-users|" in key)


def _occurrence(services, occurrence_id: int) -> OccurrenceRow:  # type: ignore[no-untyped-def]
    with Session(services.engine) as session:
        row = session.get(OccurrenceRow, occurrence_id)
        assert row is not None
        session.expunge(row)
        return row


def test_a_cancel_mid_write_records_the_unwritten_rows_cancelled(started, sendgrid) -> None:  # type: ignore[no-untyped-def]
    services, plan, clock, occurrence_id = started
    assert 0 < sum(_end_user_states(services, occurrence_id).values()) < RECIPIENTS
    apply_event(services.engine, plan, cutover_name=None, event=Trigger.CANCEL, now=clock(), reason="Vendor bug")

    services.dispatcher.run_until_idle()

    assert _end_user_states(services, occurrence_id) == {"cancelled": RECIPIENTS}
    occurrence = _occurrence(services, occurrence_id)
    assert occurrence.state == "cancelled" and occurrence.materialized
    assert _advance_notices_sent(sendgrid) == 0


def test_a_worker_back_past_the_lateness_bound_records_the_unwritten_rows_missed(started, sendgrid) -> None:  # type: ignore[no-untyped-def]
    services, _, clock, occurrence_id = started
    clock.advance(seconds=_occurrence(services, occurrence_id).max_lateness_seconds + 60)

    services.dispatcher.run_until_idle()

    assert _end_user_states(services, occurrence_id) == {"missed": RECIPIENTS}
    occurrence = _occurrence(services, occurrence_id)
    assert occurrence.state == "missed" and occurrence.materialized
    assert _advance_notices_sent(sendgrid) == 0


def test_a_rest_that_cannot_be_written_holds_up_nothing_else(started, sendgrid, caplog) -> None:  # type: ignore[no-untyped-def]
    """The recipients file gone after a cancel: the rest stays unwritten, logged and tried again next tick."""
    services, plan, clock, occurrence_id = started
    apply_event(services.engine, plan, cutover_name=None, event=Trigger.CANCEL, now=clock(), reason="Vendor bug")
    (plan.root / "audiences" / "end-users.csv").unlink()

    services.dispatcher.run_until_idle()

    assert _end_user_states(services, occurrence_id) == {"cancelled": INSERT_BATCH}
    assert "could not write the rest of advance-notice's rows" in caplog.text
    assert not _occurrence(services, occurrence_id).materialized  # still to be written once the file is back


class _Totals:
    """A progress sink that keeps the totals announced and counts the outcomes."""

    def __init__(self) -> None:
        self.totals: list[int] = []
        self.outcomes = 0

    def started(self, task: str, *, total: int) -> None:
        self.totals.append(total)

    def advanced(self, task: str, *, count: int) -> None:
        self.outcomes += count

    def finished(self, task: str) -> None:
        pass

    def summarized(self, summary: object) -> None:
        pass


def test_the_progress_total_grows_with_the_rows_written(tmp_path, sendgrid) -> None:  # type: ignore[no-untyped-def]
    """A message written in three chunks announces a total that grows to every recipient, not the first chunk's."""
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
    plan = load_plan(_common.make_plan(tmp_path, RECIPIENTS), check_templates=False)
    services = bootstrap(make_settings(tmp_path, sendgrid=sendgrid), clock=clock, sleep=clock.sleep)
    schedule_cutover(services.engine, plan, start=_common.due_now_start(clock()), now=clock())
    progress = _Totals()
    services.dispatcher.progress = progress
    report = services.dispatcher.run_until_idle()
    assert report.sent == RECIPIENTS
    assert progress.totals[0] <= INSERT_BATCH < progress.totals[-1] == RECIPIENTS == progress.outcomes
    assert progress.totals == sorted(progress.totals)
