"""The cutover state machine: which events each state allows, and what they change."""

from __future__ import annotations

from pathlib import Path

import pytest

from comms.core.events import CutoverState, PendingEffect, decide
from comms.errors import StateError
from comms.plan.loader import load_plan
from comms.plan.models import Trigger

PLAN = load_plan(Path(__file__).resolve().parents[2], check_templates=False)

ALLOWED = {
    (CutoverState.PLANNED, Trigger.GO),
    (CutoverState.PLANNED, Trigger.NO_GO),
    (CutoverState.PLANNED, Trigger.RESCHEDULE),
    (CutoverState.PLANNED, Trigger.CANCEL),
    (CutoverState.GO, Trigger.STAGE),
    (CutoverState.GO, Trigger.ROLLBACK),
    (CutoverState.GO, Trigger.CANCEL),
    (CutoverState.IN_PROGRESS, Trigger.STAGE),
    (CutoverState.IN_PROGRESS, Trigger.COMPLETE),
    (CutoverState.IN_PROGRESS, Trigger.ROLLBACK),
    (CutoverState.POSTPONED, Trigger.RESCHEDULE),
    (CutoverState.POSTPONED, Trigger.CANCEL),
}
EVENTS = [
    Trigger.GO,
    Trigger.NO_GO,
    Trigger.STAGE,
    Trigger.COMPLETE,
    Trigger.ROLLBACK,
    Trigger.RESCHEDULE,
    Trigger.CANCEL,
]


@pytest.mark.parametrize("state", list(CutoverState))
@pytest.mark.parametrize("event", EVENTS)
def test_each_event_in_each_state(state: CutoverState, event: Trigger) -> None:
    """An event is accepted exactly in the states the lifecycle allows, refused with StateError elsewhere."""
    stage = 100 if state is CutoverState.IN_PROGRESS else None
    new_stage = 10 if event is Trigger.STAGE else None
    if state is CutoverState.IN_PROGRESS and event is Trigger.STAGE:
        stage = 50
        new_stage = 75
    if (state, event) in ALLOWED:
        decide(PLAN, state=state, stage=stage, event=event, new_stage=new_stage)
    else:
        with pytest.raises(StateError):
            decide(PLAN, state=state, stage=stage, event=event, new_stage=new_stage)


def test_stage_must_rise() -> None:
    """A stage at or below the current one is refused."""
    with pytest.raises(StateError, match="already at 50"):
        decide(PLAN, state=CutoverState.IN_PROGRESS, stage=50, event=Trigger.STAGE, new_stage=25)


def test_stage_must_be_in_plan() -> None:
    """A stage the plan does not know is refused."""
    with pytest.raises(StateError, match="not one of the plan's traffic stages"):
        decide(PLAN, state=CutoverState.GO, stage=None, event=Trigger.STAGE, new_stage=33)


def test_complete_needs_full_traffic() -> None:
    """Complete before stage 100 is refused."""
    with pytest.raises(StateError, match="reach stage 100"):
        decide(PLAN, state=CutoverState.IN_PROGRESS, stage=50, event=Trigger.COMPLETE)


def test_stage_fires_its_stage_message() -> None:
    """Stage 25 fires traffic-stage; stage 100 fires full-traffic."""
    assert decide(PLAN, state=CutoverState.GO, stage=None, event=Trigger.STAGE, new_stage=25).fire == (
        ("traffic-stage", 25),
    )
    assert decide(PLAN, state=CutoverState.IN_PROGRESS, stage=75, event=Trigger.STAGE, new_stage=100).fire == (
        ("full-traffic", 100),
    )


def test_effects_on_pending_messages() -> None:
    """No-go holds, rollback and cancel cancel all, complete ends the recurring updates."""
    assert decide(PLAN, state=CutoverState.PLANNED, stage=None, event=Trigger.NO_GO).pending is PendingEffect.HOLD
    assert decide(PLAN, state=CutoverState.GO, stage=None, event=Trigger.ROLLBACK).pending is PendingEffect.CANCEL_ALL
    complete = decide(PLAN, state=CutoverState.IN_PROGRESS, stage=100, event=Trigger.COMPLETE)
    assert complete.pending is PendingEffect.CANCEL_RECURRING
