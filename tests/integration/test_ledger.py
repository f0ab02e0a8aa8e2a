"""The delivery ledger on a real SQLite file: claims, outcomes and releases of a batch."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from comms.delivery.materialize import materialize_all
from comms.rendering import Renderer
from comms.services.scheduling import schedule_cutover
from comms.store import ledger
from comms.store.ledger import Lane
from comms.store.tables import AttemptRow, CutoverRow, DeliveryRow, OccurrenceRow
from comms.store.transaction import transaction
from tests.support.engine import T0, Harness, make_harness


@pytest.fixture
def lane(tmp_path: Path, database_url: str) -> tuple[Harness, Lane]:
    """The advance notice materialized; its end-users e-mail lane (on SQLite and on PostgreSQL)."""
    h = make_harness(tmp_path, database_url=database_url)
    schedule_cutover(h.services.engine, h.plan, start=T0, now=h.clock())
    h.at(timedelta(hours=-48))
    with Session(h.services.engine, expire_on_commit=False) as session:
        occurrence = session.exec(select(OccurrenceRow).where(OccurrenceRow.message == "advance-notice")).one()
        cutover = session.get(CutoverRow, occurrence.cutover_id)
        assert cutover is not None
        materialize_all(
            session,
            h.plan,
            Renderer(h.plan.root / "templates"),
            cutover,
            occurrence,
            now=h.clock(),
            metrics=lambda _s, _c: {},
        )
        session.commit()
        row = session.exec(
            select(DeliveryRow).where(DeliveryRow.audience == "end-users", DeliveryRow.channel == "email")
        ).first()
    assert row is not None and occurrence.id is not None
    return h, Lane(occurrence.id, "end-users", "email", row.content_id)


def _rows(h: Harness) -> list[DeliveryRow]:
    with Session(h.services.engine) as session:
        return list(
            session.exec(
                select(DeliveryRow).where(DeliveryRow.audience == "end-users", DeliveryRow.channel == "email")
            ).all()
        )


def _claim(h: Harness, lane: Lane, limit: int = 2, token: str = "host:1:a", later: float = 0) -> ledger.Claim:
    claim = ledger.claim_batch(
        h.services.engine, lane, cutover_id=1, limit=limit, token=token, now=h.clock() + timedelta(seconds=later)
    )
    assert claim is not None
    return claim


def test_claim_marks_the_oldest_ready_rows_in_flight_with_an_attempt(lane: tuple[Harness, Lane]) -> None:
    h, end_users = lane
    claim = _claim(h, end_users)
    in_flight = [r for r in _rows(h) if r.state == "in_flight"]
    assert [d.id for d in claim.deliveries] == sorted(r.id for r in in_flight if r.id is not None)
    assert len(in_flight) == 2 and all(r.claim == "host:1:a" and r.attempts == 1 for r in in_flight)
    assert min(r.id for r in _rows(h) if r.id is not None) == claim.deliveries[0].id
    with Session(h.services.engine) as session:
        attempt = session.get(AttemptRow, claim.attempt_id)
    assert attempt is not None and attempt.recipients == 2 and attempt.outcome == "claimed"


def test_a_second_claim_never_takes_claimed_rows(lane: tuple[Harness, Lane]) -> None:
    h, end_users = lane
    first = _claim(h, end_users, limit=2, token="host:1:a")
    second = _claim(h, end_users, limit=100, token="host:1:b")
    assert not {d.id for d in first.deliveries} & {d.id for d in second.deliveries}
    assert (
        ledger.claim_batch(h.services.engine, end_users, cutover_id=1, limit=10, token="host:1:c", now=h.clock())
        is None
    )


def test_rows_waiting_for_a_retry_are_not_claimed_before_their_time(lane: tuple[Harness, Lane]) -> None:
    h, end_users = lane
    claim = _claim(h, end_users, limit=100)
    with Session(h.services.engine) as session:
        ledger.record_failure(
            session,
            claim,
            "500",
            retry_after=60,
            permanent=False,
            max_attempts=5,
            delay=lambda attempts, after: after or 0,
            now=h.clock(),
        )
        session.commit()
    assert (
        ledger.claim_batch(
            h.services.engine, end_users, cutover_id=1, limit=10, token="t:1:b", now=h.clock() + timedelta(seconds=59)
        )
        is None
    )
    assert _claim(h, end_users, limit=10, token="t:1:c", later=60).deliveries


def test_record_sent_marks_exactly_the_claimed_batch(lane: tuple[Harness, Lane]) -> None:
    h, end_users = lane
    claim = _claim(h, end_users)
    with transaction(h.services.engine) as tx:
        assert ledger.record_sent(tx, claim, provider_id="msg-1", now=h.clock()) == 2
        tx.commit()
    states = sorted(r.state for r in _rows(h))
    assert states.count("sent") == 2 and states.count("pending") == len(states) - 2
    sent = [r for r in _rows(h) if r.state == "sent"]
    assert all(r.provider_id == "msg-1" and r.claim is None and r.sent_at == h.clock() for r in sent)


def test_release_puts_the_batch_back_as_it_was(lane: tuple[Harness, Lane]) -> None:
    """A claim whose request never left (its envelope failed to build) is undone: no attempt is counted."""
    h, end_users = lane
    claim = _claim(h, end_users)
    ledger.release_claim(h.services.engine, claim)
    assert all(r.state == "pending" and r.attempts == 0 and r.claim is None for r in _rows(h))
    with Session(h.services.engine) as session:
        assert session.get(AttemptRow, claim.attempt_id) is None
