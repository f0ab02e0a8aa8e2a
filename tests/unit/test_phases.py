"""The phase rules: which phase a message belongs to, which phases are over, the status page's order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from comms.core.events import CutoverState
from comms.core.phases import Phase, phase_of, phases_over, statuspage_moves_forward
from comms.plan.loader import load_plan

PLAN = load_plan(Path(__file__).resolve().parents[2], check_templates=False)
T0 = datetime(2026, 12, 5, 22, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("message", "phase"),
    [
        ("advance-notice", Phase.BEFORE),
        ("reminder", Phase.BEFORE),
        ("final-notice", Phase.BEFORE),
        ("go-decision", Phase.BEFORE),
        ("postponement", Phase.BEFORE),
        ("starting", Phase.WINDOW),
        ("progress-update", Phase.WINDOW),
        ("traffic-stage", Phase.WINDOW),
        ("full-traffic", Phase.WINDOW),
        ("success", Phase.AFTER),
        ("rollback", Phase.AFTER),
        ("follow-up", Phase.AFTER),
    ],
)
def test_phase_of_shipped_messages(message: str, phase: Phase) -> None:
    """Each shipped message's phase is derived from its offset (against the window) or its event."""
    assert phase_of(PLAN, PLAN.message(message)) is phase


def test_explicit_phase_wins() -> None:
    """A `phase:` in the schedule overrides the derived phase."""
    message = PLAN.message("reminder").model_copy(update={"phase": "window"})
    assert phase_of(PLAN, message) is Phase.WINDOW


def test_nothing_is_over_before_t0_while_planned_or_go() -> None:
    """Before T0 a planned cutover, or one given go, has every phase still to come."""
    for state in (CutoverState.PLANNED, CutoverState.GO):
        assert phases_over(state=state, start=T0, now=T0 - timedelta(hours=3)) == frozenset()


def test_t0_passing_ends_before() -> None:
    """Once T0 has passed, 'before' is over (and only it)."""
    for state in (CutoverState.PLANNED, CutoverState.GO, CutoverState.IN_PROGRESS):
        assert phases_over(state=state, start=T0, now=T0) == {Phase.BEFORE}


def test_postponed_cutover_keeps_before_past_t0() -> None:
    """A postponed cutover waits for its new T0: the old T0 passing retires nothing."""
    assert phases_over(state=CutoverState.POSTPONED, start=T0, now=T0 + timedelta(hours=1)) == frozenset()


@pytest.mark.parametrize("state", [CutoverState.COMPLETED, CutoverState.ROLLED_BACK, CutoverState.CANCELLED])
def test_end_states_end_before_and_window(state: CutoverState) -> None:
    """Complete, rollback and cancel end 'before' and 'window', even days before T0; 'after' stays."""
    assert phases_over(state=state, start=T0, now=T0 - timedelta(days=4)) == {Phase.BEFORE, Phase.WINDOW}


@pytest.mark.parametrize(
    ("previous", "new", "allowed"),
    [
        (None, "scheduled", True),
        ("scheduled", "scheduled", True),
        ("scheduled", "in_progress", True),
        ("in_progress", "verifying", True),
        ("verifying", "completed", True),
        ("completed", "scheduled", False),
        ("in_progress", "scheduled", False),
        ("completed", "in_progress", False),
        ("resolved", "investigating", False),
        ("identified", "monitoring", True),
        ("completed", "identified", True),
    ],
)
def test_statuspage_only_moves_forward(previous: str | None, new: str, allowed: bool) -> None:
    """A status-page incident moves to the same or a later status, never back; the two orders are apart."""
    assert statuspage_moves_forward(previous, new) is allowed
