"""The timeline of the default plan computed from T0 (comms.core.timeline.build_timeline)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from comms.core.timeline import Occurrence, build_timeline
from comms.core.times import format_local
from comms.plan.models import Plan, Trigger

T0 = datetime(2026, 12, 5, 22, 0, tzinfo=UTC)


def _by_key(plan: Plan, start: datetime = T0) -> dict[str, Occurrence]:
    return {o.key: o for o in build_timeline(plan, start)}


def _due(occurrence: Occurrence) -> datetime:
    assert occurrence.due_at is not None, occurrence.key
    return occurrence.due_at


@pytest.mark.parametrize(
    ("key", "due"),
    [
        ("advance-notice", datetime(2026, 12, 3, 22, 0, tzinfo=UTC)),
        ("reminder", datetime(2026, 12, 4, 22, 0, tzinfo=UTC)),
        ("final-notice", datetime(2026, 12, 5, 20, 0, tzinfo=UTC)),
        ("starting", datetime(2026, 12, 5, 22, 0, tzinfo=UTC)),
        ("follow-up", datetime(2026, 12, 6, 22, 0, tzinfo=UTC)),
        ("success-metrics", datetime(2026, 12, 12, 22, 0, tzinfo=UTC)),
    ],
)
def test_fixed_offsets_land_on_their_utc_instant(default_plan: Plan, key: str, due: datetime) -> None:
    """T-48h, T-24h, T-2h, T0, T+24h and T+1w fall on the right UTC instants."""
    assert _by_key(default_plan)[key].due_at == due


def test_progress_updates_every_two_hours_inside_window(default_plan: Plan) -> None:
    """Progress updates run T+2h..T+10h; the window end T+12h is excluded."""
    updates = [o for o in build_timeline(default_plan, T0) if o.message == "progress-update"]
    assert [o.due_at for o in updates] == [T0 + timedelta(hours=h) for h in (2, 4, 6, 8, 10)]


def test_progress_updates_are_numbered_n_of_total(default_plan: Plan) -> None:
    """Each progress update knows its place: sequence 1..5 of total 5, keys progress-update#n."""
    updates = [o for o in build_timeline(default_plan, T0) if o.message == "progress-update"]
    assert [(o.key, o.sequence, o.total) for o in updates] == [(f"progress-update#{n}", n, 5) for n in range(1, 6)]


def test_time_based_occurrences_come_first_in_due_order(default_plan: Plan) -> None:
    """Timed occurrences are listed first, sorted by due time, then the event-bound ones."""
    timeline = build_timeline(default_plan, T0)
    timed = [o for o in timeline if o.due_at is not None]
    assert timeline[: len(timed)] == timed
    assert [_due(o) for o in timed] == sorted(_due(o) for o in timed)


def test_traffic_stage_occurrences_wait_for_their_event(default_plan: Plan) -> None:
    """traffic-stage@10..75 and full-traffic@100 exist with no due time, one per stage."""
    stages = {
        o.key: (o.trigger, o.stage, o.due_at) for o in build_timeline(default_plan, T0) if o.trigger is Trigger.STAGE
    }
    assert stages == {
        "traffic-stage@10": (Trigger.STAGE, 10, None),
        "traffic-stage@25": (Trigger.STAGE, 25, None),
        "traffic-stage@50": (Trigger.STAGE, 50, None),
        "traffic-stage@75": (Trigger.STAGE, 75, None),
        "full-traffic@100": (Trigger.STAGE, 100, None),
    }


@pytest.mark.parametrize(
    ("key", "trigger"),
    [
        ("go-decision", Trigger.GO),
        ("postponement", Trigger.NO_GO),
        ("success", Trigger.COMPLETE),
        ("rollback", Trigger.ROLLBACK),
        ("reschedule-notice", Trigger.RESCHEDULE),
        ("cancellation", Trigger.CANCEL),
    ],
)
def test_event_bound_messages_have_no_due_time(default_plan: Plan, key: str, trigger: Trigger) -> None:
    """Messages sent on a cutover event are in the timeline with due_at None and their trigger."""
    occurrence = _by_key(default_plan)[key]
    assert (occurrence.trigger, occurrence.due_at) == (trigger, None)


def test_incidents_escalations_and_announcements_are_not_in_the_timeline(default_plan: Plan) -> None:
    """Incident, escalation and ad-hoc messages are sent on demand, never planned."""
    messages = {o.message for o in build_timeline(default_plan, T0)}
    assert messages.isdisjoint(
        {
            "incident-opened",
            "incident-updated",
            "incident-acknowledged",
            "incident-resolved",
            "escalation-notice",
            "announcement",
        }
    )


def test_starting_and_progress_updates_hold_until_go(default_plan: Plan) -> None:
    """Only 'starting' and the progress updates are held until the go decision."""
    held = {o.message for o in build_timeline(default_plan, T0) if o.hold_until_go}
    assert held == {"starting", "progress-update"}


def test_occurrence_carries_audiences_and_channels_of_its_message(default_plan: Plan) -> None:
    """An occurrence copies its message's audiences and channels."""
    final = _by_key(default_plan)["final-notice"]
    spec = default_plan.message("final-notice")
    assert (final.audiences, final.channels) == (spec.audiences, spec.channels)


def test_naive_start_is_refused(default_plan: Plan) -> None:
    """build_timeline refuses a naive T0 instead of guessing its zone."""
    with pytest.raises(ValueError, match="naive"):
        build_timeline(default_plan, datetime(2026, 12, 5, 22, 0))


def test_window_across_london_spring_forward_shows_local_shift(default_plan: Plan) -> None:
    """T0 00:30 GMT on 28 Mar 2027: updates at fixed UTC steps read one hour later in BST after 01:00 UTC."""
    t0 = datetime(2027, 3, 28, 0, 30, tzinfo=UTC)
    timeline = _by_key(default_plan, t0)
    assert format_local(_due(timeline["starting"]), "Europe/London") == "Sun 28 Mar 2027, 00:30 GMT"
    assert format_local(_due(timeline["progress-update#1"]), "Europe/London") == "Sun 28 Mar 2027, 03:30 BST"
    assert format_local(_due(timeline["progress-update#5"]), "Europe/London") == "Sun 28 Mar 2027, 11:30 BST"


def test_window_across_new_york_spring_forward_shows_local_shift(default_plan: Plan) -> None:
    """T0 midnight EST on 14 Mar 2027: the first update two hours later reads 03:00 EDT, not 02:00."""
    t0 = datetime(2027, 3, 14, 5, 0, tzinfo=UTC)
    timeline = _by_key(default_plan, t0)
    assert format_local(_due(timeline["starting"]), "America/New_York") == "Sun 14 Mar 2027, 00:00 EST"
    assert format_local(_due(timeline["progress-update#1"]), "America/New_York") == "Sun 14 Mar 2027, 03:00 EDT"


def test_t_minus_48h_before_dst_change_keeps_utc_spacing(default_plan: Plan) -> None:
    """Offsets are exact durations: T-48h across a DST change is 48 real hours, so 47 wall-clock hours."""
    t0 = datetime(2027, 3, 28, 12, 0, tzinfo=UTC)
    advance = _due(_by_key(default_plan, t0)["advance-notice"])
    assert advance == t0 - timedelta(hours=48)
    assert format_local(advance, "Europe/London") == "Fri 26 Mar 2027, 12:00 GMT"
    assert format_local(t0, "Europe/London") == "Sun 28 Mar 2027, 13:00 BST"
