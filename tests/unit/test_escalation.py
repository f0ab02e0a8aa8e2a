"""The pure escalation policy: which level is due when, repeats, acknowledgement, catch-up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from comms.core.escalation import DueNotice, decide_escalation, escalation_reason
from comms.plan.models import EscalationLevel, SeverityPolicy

OPENED = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)


def _policy(*afters: str, repeat: str | None = "30m") -> SeverityPolicy:
    return SeverityPolicy.model_validate(
        {
            "description": "test",
            "audiences": ["engineering"],
            "channels": ["email", "slack"],
            "levels": [EscalationLevel.model_validate({"after": a, "notify": ["engineering"]}) for a in afters],
            "repeat_every": repeat,
        }
    )


SEV1 = _policy("0m", "15m", "30m")


def _due(
    policy: SeverityPolicy, minutes: float, notified: set[tuple[int, int]] | None = None, acknowledged: bool = False
) -> list[tuple[int, int]]:
    decision = decide_escalation(
        policy,
        opened_at=OPENED,
        acknowledged=acknowledged,
        notified=notified or set(),
        now=OPENED + timedelta(minutes=minutes),
    )
    return [(n.level, n.repeat) for n in decision.due]


def _next(policy: SeverityPolicy, minutes: float, notified: set[tuple[int, int]]) -> datetime | None:
    return decide_escalation(
        policy, opened_at=OPENED, acknowledged=False, notified=notified, now=OPENED + timedelta(minutes=minutes)
    ).next_at


def test_first_level_is_due_at_opening() -> None:
    """A level with after 0m is due the moment the incident opens."""
    assert _due(SEV1, 0) == [(1, 0)]


def test_next_level_is_not_due_before_its_time() -> None:
    """Level 2 (after 15m) is not due at 14m59s once level 1 went out."""
    assert _due(SEV1, 14 + 59 / 60, {(1, 0)}) == []


def test_next_level_is_due_at_its_time() -> None:
    """Level 2 is due exactly 15 minutes after the opening."""
    assert _due(SEV1, 15, {(1, 0)}) == [(2, 0)]


def test_next_at_is_the_next_levels_time() -> None:
    """After level 1, the next notice falls due at opening + 15m."""
    assert _next(SEV1, 1, {(1, 0)}) == OPENED + timedelta(minutes=15)


def test_notified_levels_are_not_due_again() -> None:
    """A level already notified is never due a second time."""
    assert _due(SEV1, 20, {(1, 0), (2, 0)}) == []


def test_acknowledged_incident_has_nothing_due() -> None:
    """Acknowledgement stops the escalation: nothing due now, nothing ever."""
    decision = decide_escalation(
        SEV1, opened_at=OPENED, acknowledged=True, notified=set(), now=OPENED + timedelta(hours=5)
    )
    assert decision == decide_escalation(SEV1, opened_at=OPENED, acknowledged=True, notified={(1, 0)}, now=OPENED)
    assert decision.due == () and decision.next_at is None


def test_last_level_repeats_every_repeat_every() -> None:
    """After the last level (30m), it repeats at 60m, then 90m."""
    sent = {(1, 0), (2, 0), (3, 0)}
    assert _due(SEV1, 59, sent) == []
    assert _due(SEV1, 60, sent) == [(3, 1)]
    assert _due(SEV1, 90, sent | {(3, 1)}) == [(3, 2)]


def test_next_at_after_the_last_level_is_the_next_repeat() -> None:
    """Once the last level went out, the next notice is its first repeat."""
    assert _next(SEV1, 31, {(1, 0), (2, 0), (3, 0)}) == OPENED + timedelta(minutes=60)


def test_catch_up_sends_only_the_latest_repeat() -> None:
    """A worker back after 3 hours sends the current repeat slot, not a burst of stale ones."""
    assert _due(SEV1, 185, {(1, 0), (2, 0), (3, 0)}) == [(3, 5)]


def test_catch_up_notifies_each_missed_level_once() -> None:
    """Levels that fell due while no worker ran are each due once, oldest first."""
    assert _due(SEV1, 40) == [(1, 0), (2, 0), (3, 0)]


def test_last_level_first_notice_after_downtime_takes_the_current_slot() -> None:
    """The last level first notified late is numbered with the current slot, so it is not repeated at once."""
    due = _due(SEV1, 70, {(1, 0), (2, 0)})
    assert due == [(3, 1)]
    assert _due(SEV1, 75, {(1, 0), (2, 0), (3, 1)}) == []


def test_without_repeat_escalation_ends_after_the_last_level() -> None:
    """With no repeat_every, nothing is due and nothing is next once the last level went out."""
    sev3 = _policy("0m", "4h", repeat=None)
    assert _due(sev3, 24 * 60, {(1, 0), (2, 0)}) == []
    assert _next(sev3, 24 * 60, {(1, 0), (2, 0)}) is None


def test_single_level_policy_repeats_that_level() -> None:
    """A policy with one level repeats it every repeat_every."""
    one = _policy("0m", repeat="10m")
    assert _due(one, 0) == [(1, 0)]
    assert _due(one, 10, {(1, 0)}) == [(1, 1)]


def test_due_notice_carries_its_scheduled_time() -> None:
    """A due notice says when it was due, not when it was noticed."""
    decision = decide_escalation(
        SEV1, opened_at=OPENED, acknowledged=False, notified={(1, 0)}, now=OPENED + timedelta(minutes=16)
    )
    assert decision.due == (DueNotice(OPENED + timedelta(minutes=15), 2, 0),)


def test_reason_names_the_incident_and_the_wait() -> None:
    """The reason reads like the plan's sample: not acknowledged for 15 minutes."""
    notice = DueNotice(OPENED + timedelta(minutes=15), 2, 0)
    reason = escalation_reason(incident_id=7, severity="sev1", opened_at=OPENED, notice=notice, levels=3)
    assert reason == "Incident #7 (sev1) has not been acknowledged for 15 minutes"


def test_reason_of_a_repeat_counts_the_reminder() -> None:
    """A repeat's reason says which reminder it is."""
    notice = DueNotice(OPENED + timedelta(minutes=90), 3, 2)
    reason = escalation_reason(incident_id=7, severity="sev1", opened_at=OPENED, notice=notice, levels=3)
    assert reason.endswith("for 1 hour 30 minutes (level 3 of 3, reminder 2)")
