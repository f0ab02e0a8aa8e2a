"""The engine end to end on SQLite with recording channels: timeline, events, reschedule, cancel."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from comms.errors import InputError, StateError
from comms.plan.fields import Channel
from comms.plan.models import Trigger
from comms.services.scheduling import apply_event, schedule_cutover
from comms.store.tables import DeliveryRow, OccurrenceRow
from tests.support.engine import T0, Harness, make_harness


def _schedule(h: Harness) -> None:
    schedule_cutover(h.services.engine, h.plan, start=T0, now=h.clock())


def _event(h: Harness, trigger: Trigger, **kwargs: object) -> None:
    outcome = apply_event(h.services.engine, h.plan, cutover_name=None, event=trigger, now=h.clock(), **kwargs)  # type: ignore[arg-type]
    h.services.dispatcher.dispatch_now(outcome.fired)


def _occurrence_states(h: Harness) -> dict[str, str]:
    with Session(h.services.engine) as session:
        return {o.key: o.state for o in session.exec(select(OccurrenceRow)).all()}


def _sent_occurrences(h: Harness) -> list[str]:
    seen: list[str] = []
    for channel in h.channels.values():
        for envelope in channel.sent:
            if envelope.occurrence not in seen:
                seen.append(envelope.occurrence)
    return seen


def _walk_success(h: Harness) -> None:
    for offset in (-48, -24, -2):
        h.at(timedelta(hours=offset))
        h.run()
    _event(h, Trigger.GO)
    for hour in range(0, 13):
        h.at(timedelta(hours=hour))
        if 4 <= hour <= 8:
            _event(h, Trigger.STAGE, stage=(10, 25, 50, 75, 100)[hour - 4])
        h.run()
    _event(h, Trigger.COMPLETE)
    h.at(timedelta(hours=24))
    h.run()
    h.at(timedelta(weeks=1))
    h.run()


@pytest.fixture
def harness(tmp_path: Path, database_url: str) -> Harness:
    h = make_harness(tmp_path, database_url=database_url)
    _schedule(h)
    return h


def test_full_timeline_sends_every_message_once(harness: Harness) -> None:
    """From T-48h to T+1 week every time-based and event-bound message goes out exactly once per target."""
    _walk_success(harness)
    states = _occurrence_states(harness)
    for key in (
        "advance-notice",
        "reminder",
        "final-notice",
        "starting",
        "follow-up",
        "success-metrics",
        *(f"progress-update#{n}" for n in range(1, 6)),
    ):
        assert states[key] == "done", key
    fired = {key.split("/")[0] for key in states if "/e" in key}
    assert fired == {
        "go-decision",
        "traffic-stage@10",
        "traffic-stage@25",
        "traffic-stage@50",
        "traffic-stage@75",
        "full-traffic@100",
        "success",
    }
    with Session(harness.services.engine) as session:
        keys = session.exec(select(DeliveryRow.idempotency_key)).all()
        assert all(d.state == "sent" for d in session.exec(select(DeliveryRow)).all())
    assert len(keys) == len(set(keys))
    sent_to = Counter(
        (e.occurrence, r.address) for c in harness.channels.values() for e in c.sent for r in e.recipients
    )
    assert max(sent_to.values()) == 1


def test_messages_go_out_at_their_due_time(harness: Harness) -> None:
    """Nothing is sent before it is due: at T-49h nothing goes, at T-48h only the advance notice."""
    harness.run()
    assert _sent_occurrences(harness) == []
    harness.at(timedelta(hours=-48))
    harness.run()
    assert _sent_occurrences(harness) == ["advance-notice"]


def test_schedule_is_idempotent_for_the_same_start(harness: Harness) -> None:
    """Scheduling again with the same T0 changes nothing."""
    again = schedule_cutover(harness.services.engine, harness.plan, start=T0, now=harness.clock())
    assert again.created is False
    with Session(harness.services.engine) as session:
        assert len(session.exec(select(OccurrenceRow)).all()) == 11


def test_schedule_with_another_start_is_refused(harness: Harness) -> None:
    """A different T0 for an existing cutover points to `comms reschedule`."""
    with pytest.raises(StateError, match="comms reschedule"):
        schedule_cutover(harness.services.engine, harness.plan, start=T0 + timedelta(days=1), now=harness.clock())


def test_starting_waits_for_go(harness: Harness) -> None:
    """The T0 'starting' message is held until the go decision, then sent."""
    harness.at(timedelta(minutes=1))
    harness.run()
    assert "starting" not in _sent_occurrences(harness)
    _event(harness, Trigger.GO)
    harness.run()
    assert "starting" in _sent_occurrences(harness)


def test_no_go_holds_and_sends_postponement(harness: Harness) -> None:
    """No-go sends the postponement notice and holds the T0 and later messages."""
    harness.at(timedelta(hours=-2))
    harness.run()
    _event(harness, Trigger.NO_GO, reason="Backups not verified")
    harness.at(timedelta(hours=3))
    harness.run()
    states = _occurrence_states(harness)
    assert any(k.startswith("postponement/") and v == "done" for k, v in states.items())
    assert states["starting"] == "held" and states["progress-update#1"] == "held"
    assert "starting" not in _sent_occurrences(harness)


def test_rollback_cancels_success_path(harness: Harness) -> None:
    """Rollback sends the rollback notice and cancels progress updates, follow-up and metrics."""
    harness.at(timedelta(hours=-2))
    harness.run()
    _event(harness, Trigger.GO)
    harness.at(timedelta(hours=4))
    _event(harness, Trigger.STAGE, stage=10)
    _event(harness, Trigger.ROLLBACK, reason="Error rate 7 %")
    harness.at(timedelta(weeks=2))
    harness.run()
    states = _occurrence_states(harness)
    assert states["follow-up"] == "cancelled" and states["success-metrics"] == "cancelled"
    assert states["progress-update#3"] == "cancelled"
    rollback = [e for e in harness.channels[Channel.STATUSPAGE].sent if e.occurrence.startswith("rollback/")]
    assert rollback and rollback[0].statuspage is not None and rollback[0].statuspage.incident_id is None


def test_complete_ends_progress_updates(harness: Harness) -> None:
    """Completion cancels the progress updates still pending; follow-ups remain."""
    harness.at(timedelta(hours=-2))
    harness.run()
    _event(harness, Trigger.GO)
    harness.at(timedelta(hours=4))
    for stage in (10, 25, 50, 75, 100):
        _event(harness, Trigger.STAGE, stage=stage)
    _event(harness, Trigger.COMPLETE)
    states = _occurrence_states(harness)
    assert all(states[f"progress-update#{n}"] == "cancelled" for n in range(1, 6))
    assert states["follow-up"] == "pending"


def test_complete_after_rollback_is_refused(harness: Harness) -> None:
    """An event that makes no sense in the current state is refused and changes nothing."""
    harness.at(timedelta(hours=-2))
    _event(harness, Trigger.GO)
    _event(harness, Trigger.ROLLBACK, reason="x")
    before = _occurrence_states(harness)
    with pytest.raises(StateError):
        _event(harness, Trigger.COMPLETE)
    assert _occurrence_states(harness) == before


def test_reschedule_shifts_pending_and_notifies_told_audiences(harness: Harness) -> None:
    """Reschedule moves every pending time-based message and tells only the audiences already told."""
    harness.at(timedelta(hours=-48))
    harness.run()
    new_start = T0 + timedelta(days=7)
    _event(harness, Trigger.RESCHEDULE, new_start=new_start, reason="Load test review")
    with Session(harness.services.engine) as session:
        rows = {o.key: o for o in session.exec(select(OccurrenceRow)).all()}
    assert rows["reminder"].due_at == new_start - timedelta(hours=24)
    assert rows["advance-notice"].due_at == T0 - timedelta(hours=48)
    notice = [k for k in rows if k.startswith("reschedule-notice/")]
    assert notice and rows[notice[0]].state == "done"
    statuspage = [e for e in harness.channels[Channel.STATUSPAGE].sent if e.occurrence.startswith("reschedule")]
    assert statuspage[0].statuspage is not None and statuspage[0].statuspage.window is not None
    assert statuspage[0].statuspage.window.start == new_start


def test_reschedule_needs_a_reason(harness: Harness) -> None:
    """A reschedule without a reason is refused as bad input."""
    with pytest.raises(InputError, match="--reason"):
        _event(harness, Trigger.RESCHEDULE, new_start=T0 + timedelta(days=1), reason="")


def test_cancel_cancels_pending_and_sends_notice(harness: Harness) -> None:
    """Cancel cancels every pending message and sends the cancellation notice."""
    _event(harness, Trigger.CANCEL, reason="Called off")
    states = _occurrence_states(harness)
    assert states["advance-notice"] == "cancelled"
    assert any(k.startswith("cancellation/") and v == "done" for k, v in states.items())


def test_message_past_lateness_is_missed(harness: Harness) -> None:
    """A message whose lateness bound passed is recorded missed and never sent stale."""
    harness.at(timedelta(hours=-48) + timedelta(hours=7))
    harness.run()
    assert _occurrence_states(harness)["advance-notice"] == "missed"
    assert "advance-notice" not in _sent_occurrences(harness)


def test_slack_threads_under_first_post_and_broadcasts_milestones(harness: Harness) -> None:
    """The first post in a channel is the thread root; later posts reply in it, milestones broadcast."""
    _walk_success(harness)
    posts = [e for e in harness.channels[Channel.SLACK].sent if e.recipients[0].address == "#cutover"]
    assert posts[0].thread_ref is None
    root = "slack-" + str(harness.channels[Channel.SLACK].sent.index(posts[0]) + 1)
    assert all(p.thread_ref == root for p in posts[1:])
    assert any(p.broadcast for p in posts if p.occurrence.startswith("success/"))


def test_status_page_maintenance_is_updated_in_place(harness: Harness) -> None:
    """The advance notice creates the maintenance; later messages update that incident."""
    _walk_success(harness)
    sends = harness.channels[Channel.STATUSPAGE].sent
    assert sends[0].statuspage is not None and sends[0].statuspage.incident_id is None
    assert sends[0].statuspage.status == "scheduled"
    later = [s.statuspage for s in sends[1:]]
    assert all(s is not None and s.incident_id == "inc-1" for s in later)
    assert [s.status for s in later if s is not None][-1] == "completed"
