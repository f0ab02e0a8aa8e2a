"""Issue 14 replayed: phases retire stale messages, events and schedules are checked against the clock,
the status page only moves forward, and a person in several audiences gets one copy."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from comms.core import jsoncodec
from comms.errors import InputError
from comms.plan.fields import Channel
from comms.plan.models import Trigger
from comms.reports.status import cutover_status
from comms.services.scheduling import apply_event, schedule_cutover
from comms.store.tables import DeliveryRow, EventRow, OccurrenceRow
from tests.support.engine import T0, Harness, make_harness


def _event(h: Harness, trigger: Trigger, **kwargs: object) -> None:
    outcome = apply_event(h.services.engine, h.plan, cutover_name=None, event=trigger, now=h.clock(), **kwargs)  # type: ignore[arg-type]
    h.services.dispatcher.dispatch_now(outcome.fired)


def _occurrences(h: Harness) -> dict[str, OccurrenceRow]:
    with Session(h.services.engine) as session:
        return {o.key: o for o in session.exec(select(OccurrenceRow)).all()}


def _deliveries(h: Harness, occurrence_prefix: str) -> list[DeliveryRow]:
    with Session(h.services.engine) as session:
        rows = session.exec(
            select(DeliveryRow).join(OccurrenceRow, col(OccurrenceRow.id) == col(DeliveryRow.occurrence_id))
        ).all()
        keys = {o.id: o.key for o in session.exec(select(OccurrenceRow)).all()}
    return [r for r in rows if keys[r.occurrence_id].startswith(occurrence_prefix)]


def _statuses(h: Harness) -> list[str]:
    return [e.statuspage.status for e in h.channels[Channel.STATUSPAGE].sent if e.statuspage is not None]


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    h = make_harness(tmp_path)
    h.at(timedelta(days=-4, hours=-12))
    schedule_cutover(h.services.engine, h.plan, start=T0, now=h.clock())
    return h


def _forced_success(h: Harness) -> None:
    for trigger, stage in [
        (Trigger.GO, None),
        *((Trigger.STAGE, s) for s in (10, 25, 50, 75, 100)),
        (Trigger.COMPLETE, None),
    ]:
        _event(h, trigger, stage=stage, force=True, reason="the issue's replay")


def test_go_and_stages_four_and_a_half_days_early_are_refused(harness: Harness) -> None:
    """The reported case: go 4.5 days before T0 is refused with the go window, nothing recorded."""
    with pytest.raises(InputError, match="'go' may be recorded from 2026-12-05T16:00:00Z until"):
        _event(harness, Trigger.GO)
    with Session(harness.services.engine) as session:
        assert session.exec(select(EventRow)).all() == []


def test_forced_event_records_the_override_in_the_audit_trail(harness: Harness) -> None:
    """--force --reason records the event and keeps the overridden window and reason in its payload."""
    _event(harness, Trigger.GO, force=True, reason="early go for the drill", by="Ana")
    with Session(harness.services.engine) as session:
        event = session.exec(select(EventRow)).one()
    override = jsoncodec.loads(event.payload_json)["override"]
    assert override == {
        "window": "from 2026-12-05T16:00:00Z until 2026-12-06T10:00:00Z",
        "reason": "early go for the drill",
        "by": "Ana",
    }


def test_complete_retires_the_advance_notice_and_the_page_stays_completed(harness: Harness) -> None:
    """The reported bug: after complete the T-48h notice is cancelled with why, never sent; no PATCH back."""
    _forced_success(harness)
    harness.at(timedelta(hours=-48))
    harness.run()
    occurrences = _occurrences(harness)
    for key in ("advance-notice", "reminder", "final-notice", "starting", "progress-update#1"):
        assert occurrences[key].state == "cancelled", key
        assert occurrences[key].ended_reason == "phase '{}' is over: the cutover is completed".format(
            "before" if key in ("advance-notice", "reminder", "final-notice") else "window"
        ), key
    sent = {e.occurrence for c in harness.channels.values() for e in c.sent}
    assert "advance-notice" not in sent
    assert _statuses(harness)[-1] == "completed" and "scheduled" not in _statuses(harness)


def test_t0_passing_retires_what_is_pending_of_before(plan_copy: Path, tmp_path: Path) -> None:
    """A 'before' message still within its lateness bound at T0 is retired once T0 passes, with why."""
    schedule_file = plan_copy / "schedules" / "cutover.yaml"
    text = schedule_file.read_text()
    schedule_file.write_text(
        text.replace(
            "at: T-2h\n    audiences: [end-users, executives, support, engineering, "
            "customer-success]\n    channels: [email, slack, statuspage]\n"
            "    max_lateness: 1h",
            "at: T-2h\n    audiences: [end-users, executives, support, engineering, "
            "customer-success]\n    channels: [email, slack, statuspage]\n"
            "    max_lateness: 3h",
        )
    )
    h = make_harness(tmp_path, plan_root=plan_copy)
    assert h.plan.message("final-notice").max_lateness == timedelta(hours=3)
    schedule_cutover(h.services.engine, h.plan, start=T0, now=h.clock())
    h.at(timedelta(minutes=30))
    h.run()
    final = _occurrences(h)["final-notice"]
    assert final.state == "cancelled"
    assert final.ended_reason is not None and "T0 (2026-12-05T22:00:00+00:00) passed" in final.ended_reason
    assert "final-notice" not in {e.occurrence for c in h.channels.values() for e in c.sent}


def test_progress_update_after_verifying_keeps_the_page_at_verifying(tmp_path: Path) -> None:
    """A progress update after full traffic does not set the page back from 'verifying' to 'in_progress'."""
    h = make_harness(tmp_path)
    schedule_cutover(h.services.engine, h.plan, start=T0, now=h.clock())
    h.at(timedelta(hours=-2))
    h.run()
    _event(h, Trigger.GO)
    h.at(timedelta(hours=4))
    for stage in (10, 25, 50, 75, 100):
        _event(h, Trigger.STAGE, stage=stage)
    h.at(timedelta(hours=6))
    h.run()
    statuses = _statuses(h)
    assert statuses[statuses.index("verifying") :] == ["verifying"] * len(statuses[statuses.index("verifying") :])
    assert len(statuses[statuses.index("verifying") :]) >= 2  # progress-update#3 at T+6h went out as 'verifying'


def test_schedule_in_the_past_is_refused(tmp_path: Path) -> None:
    """`comms schedule --start 2020-01-01` is refused: T0 in the past; nothing is stored."""
    h = make_harness(tmp_path)
    with pytest.raises(InputError, match="is in the past"):
        schedule_cutover(h.services.engine, h.plan, start=T0.replace(year=2020), now=h.clock())
    assert _occurrences(h) == {}


def test_schedule_too_close_lists_what_would_be_missed(tmp_path: Path) -> None:
    """A T0 so close that messages are past their lateness bound is refused with the list of them."""
    h = make_harness(tmp_path)
    h.at(timedelta(hours=-19))
    with pytest.raises(InputError, match=r"2 message\(s\).*advance-notice \(due .*reminder \(due .*--accept-missed"):
        schedule_cutover(h.services.engine, h.plan, start=T0, now=h.clock())
    assert _occurrences(h) == {}


def test_accept_missed_records_them_once_with_one_escalation(tmp_path: Path) -> None:
    """--accept-missed records the too-late messages missed, with ONE summary escalation, not one each."""
    h = make_harness(tmp_path)
    h.at(timedelta(hours=-19))
    outcome = schedule_cutover(h.services.engine, h.plan, start=T0, now=h.clock(), accept_missed=True)
    assert outcome.missed == ["advance-notice", "reminder"]
    h.run()
    occurrences = _occurrences(h)
    assert occurrences["advance-notice"].state == "missed" and occurrences["reminder"].state == "missed"
    notices = [k for k in occurrences if k.startswith("escalation:")]
    assert len(notices) == 1
    notice = jsoncodec.loads(occurrences[notices[0]].context_json)["escalation"]["reason"]
    assert "2 message(s)" in notice and "advance-notice, reminder" in notice


def test_person_in_two_audiences_gets_one_copy(plan_copy: Path, tmp_path: Path) -> None:
    """A recipient in executives and engineering gets one email; the second audience's row is 'covered'."""
    engineering = plan_copy / "audiences" / "engineering.yaml"
    engineering.write_text(
        engineering.read_text().replace("- oncall@example.com", "- oncall@example.com\n      - cto@example.com")
    )
    h = make_harness(tmp_path, plan_root=plan_copy)
    schedule_cutover(h.services.engine, h.plan, start=T0, now=h.clock())
    h.at(timedelta(hours=-48))
    h.run()
    copies = [
        r
        for e in h.channels[Channel.EMAIL].sent
        if e.occurrence == "advance-notice"
        for r in e.recipients
        if r.address == "cto@example.com"
    ]
    assert len(copies) == 1
    rows = {
        (r.audience, r.state, r.last_error)
        for r in _deliveries(h, "advance-notice")
        if r.recipient == "cto@example.com" and r.channel == "email"
    }
    assert rows == {
        ("executives", "sent", None),
        ("engineering", "covered", "covered by the copy to audience 'executives'"),
    }


def test_audience_priority_decides_whose_copy_wins(plan_copy: Path, tmp_path: Path) -> None:
    """With `priority:` in its file, engineering's copy wins over executives' (listed first in the message)."""
    engineering = plan_copy / "audiences" / "engineering.yaml"
    engineering.write_text(
        engineering.read_text().replace("- oncall@example.com", "- oncall@example.com\n      - cto@example.com")
        + "priority: 10\n"
    )
    h = make_harness(tmp_path, plan_root=plan_copy)
    schedule_cutover(h.services.engine, h.plan, start=T0, now=h.clock())
    h.at(timedelta(hours=-48))
    h.run()
    rows = {
        (r.audience, r.state)
        for r in _deliveries(h, "advance-notice")
        if r.recipient == "cto@example.com" and r.channel == "email"
    }
    assert rows == {("engineering", "sent"), ("executives", "covered")}


def test_status_shows_why_a_message_was_retired_and_counts_covered(plan_copy: Path, tmp_path: Path) -> None:
    """`comms status` data carries the retirement reason and counts the covered deliveries."""
    engineering = plan_copy / "audiences" / "engineering.yaml"
    engineering.write_text(
        engineering.read_text().replace("- oncall@example.com", "- oncall@example.com\n      - cto@example.com")
    )
    h = make_harness(tmp_path, plan_root=plan_copy)
    schedule_cutover(h.services.engine, h.plan, start=T0, now=h.clock())
    h.at(timedelta(hours=-48))
    h.run()
    _event(h, Trigger.CANCEL, reason="called off")
    view = cutover_status(h.services.engine, cutover_name=None, now=h.clock())
    by_key = {o.key: o for o in view.occurrences}
    assert by_key["advance-notice"].channels["email"].covered == 1
    assert by_key["reminder"].state == "cancelled"
    assert by_key["reminder"].why == "phase 'before' is over: the cutover is cancelled"
