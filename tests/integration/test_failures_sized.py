"""Failures sized right: one refused address costs only itself; a revoked key holds the channel, once."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import Session, func, select

from comms.bootstrap import bootstrap
from comms.plan.loader import load_plan
from comms.services.scheduling import schedule_cutover
from comms.store.incident_tables import EscalationStepRow
from comms.store.ledger import HELD_UNTIL
from comms.store.ledger_repair import release_held
from comms.store.tables import AttemptRow, DeliveryRow
from tests.support.clock import FakeClock

from .builders import make_settings

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import _common  # noqa: E402

RECIPIENTS = 5000
CONTACTS = {"comms-lead@example.com", "oncall@example.com", "platform-team@example.com"}
"""The delivery-failure contacts of the default plan, told about the dead delivery."""


@pytest.fixture
def engine_with_plan(tmp_path, sendgrid):
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
    plan = load_plan(_common.make_plan(tmp_path, RECIPIENTS), check_templates=False)
    services = bootstrap(make_settings(tmp_path, sendgrid=sendgrid, max_attempts=3), clock=clock, sleep=clock.sleep)
    schedule_cutover(services.engine, plan, start=_common.due_now_start(clock()), now=clock())
    return services, clock


def _states(services) -> dict[str, int]:
    with Session(services.engine) as session:
        rows = session.exec(
            select(DeliveryRow.state, func.count())
            .where(DeliveryRow.audience == "end-users")
            .group_by(DeliveryRow.state)
        ).all()
    return dict(rows)


def _escalations(services) -> int:
    """Escalations that told someone (a notice that itself fails is recorded too, but escalates no further)."""
    with Session(services.engine) as session:
        steps = session.exec(select(EscalationStepRow)).all()
    return sum(1 for step in steps if step.sent_occurrence_id is not None)


def test_one_refused_address_in_5000_kills_only_itself(engine_with_plan, sendgrid) -> None:
    """SendGrid refusing one address (400 naming its field): 4999 sent, 1 dead, the batch split in halves."""
    services, _ = engine_with_plan
    bad = _common.address(2345)
    sendgrid.refused_addresses = {bad}
    services.dispatcher.run_until_idle()

    assert _states(services) == {"sent": RECIPIENTS - 1, "dead": 1}
    with Session(services.engine) as session:
        dead = session.exec(select(DeliveryRow).where(DeliveryRow.state == "dead")).one()
        requests = session.exec(
            select(func.count()).select_from(AttemptRow).where(AttemptRow.audience == "end-users")
        ).one()
    assert dead.recipient == bad and "valid address" in (dead.last_error or "")
    accepted = {p["to"][0]["email"] for body in sendgrid.accepted for p in body["personalizations"]} - CONTACTS
    assert bad not in accepted and len(accepted) == RECIPIENTS - 1
    # five batches (the ones claimed after the first 400 at half size: ten at most), two more per halving of 1000
    assert requests <= 2 * RECIPIENTS // 1000 + 2 * 10 + 5


def test_a_key_revoked_halfway_holds_the_channel_and_escalates_once(engine_with_plan, sendgrid) -> None:
    """A 401 halfway: nothing more is sent, the rest stays pending (held), one escalation; `retry --held` resumes."""
    services, clock = engine_with_plan
    services.dispatcher.max_in_flight = 1  # make "halfway" exact: two batches, then the key is revoked
    original = sendgrid.api_key
    sendgrid.revoke_after = 2
    escalations_before = _escalations(services)
    services.dispatcher.run_until_idle()

    states = _states(services)
    assert states == {"sent": 2000, "pending": RECIPIENTS - 2000}, states
    with Session(services.engine) as session:
        held = session.exec(select(DeliveryRow).where(DeliveryRow.state == "pending")).all()
    assert all(row.next_attempt_at == HELD_UNTIL and (row.last_error or "").startswith("held: ") for row in held)
    assert _escalations(services) == escalations_before + 1
    services.dispatcher.run_until_idle()  # the next tick does not knock again
    assert _escalations(services) == escalations_before + 1 and _states(services)["pending"] == RECIPIENTS - 2000

    sendgrid.revoke_after = None
    assert sendgrid.api_key == original
    cutover_id = held[0].cutover_id
    # the rest, and the escalation notice to the three contacts, which the same revoked key held too
    assert release_held(services.engine, cutover_id=cutover_id, now=clock()) == RECIPIENTS - 2000 + len(CONTACTS)
    services.dispatcher.run_until_idle()
    assert _states(services) == {"sent": RECIPIENTS}
