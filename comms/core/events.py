"""The cutover state machine: which events are allowed, and what each changes. Pure.

planned ──go──▶ go ──stage N──▶ in_progress ──stage…100, complete──▶ completed
   │             │                  │
   │             └──────rollback────┴──▶ rolled_back
   ├──no-go──▶ postponed ──reschedule──▶ planned
   └──cancel (from planned, go or postponed)──▶ cancelled
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from comms.core.times import iso_utc
from comms.errors import InputError, StateError
from comms.plan.models import Plan, Trigger

__all__ = [
    "CutoverState",
    "EventWindow",
    "PendingEffect",
    "Transition",
    "check_event_time",
    "decide",
    "event_window",
    "is_finished",
    "releases_held",
]


class CutoverState(StrEnum):
    """Where a cutover stands."""

    PLANNED = "planned"
    GO = "go"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    ROLLED_BACK = "rolled_back"
    POSTPONED = "postponed"
    CANCELLED = "cancelled"


class PendingEffect(StrEnum):
    """What an event does to time-based occurrences not sent yet."""

    NONE = "none"
    HOLD = "hold"
    CANCEL_ALL = "cancel_all"
    CANCEL_RECURRING = "cancel_recurring"
    RELEASE = "release"


@dataclass(frozen=True)
class Transition:
    """The outcome of an allowed event: the new state and the messages it sends."""

    state: CutoverState
    stage: int | None
    fire: tuple[tuple[str, int | None], ...] = field(default=())
    pending: PendingEffect = PendingEffect.NONE


_ALLOWED: dict[Trigger, tuple[CutoverState, ...]] = {
    Trigger.GO: (CutoverState.PLANNED,),
    Trigger.NO_GO: (CutoverState.PLANNED,),
    Trigger.STAGE: (CutoverState.GO, CutoverState.IN_PROGRESS),
    Trigger.COMPLETE: (CutoverState.IN_PROGRESS,),
    Trigger.ROLLBACK: (CutoverState.GO, CutoverState.IN_PROGRESS),
    Trigger.RESCHEDULE: (CutoverState.PLANNED, CutoverState.POSTPONED),
    Trigger.CANCEL: (CutoverState.PLANNED, CutoverState.GO, CutoverState.POSTPONED),
}


def decide(
    plan: Plan, *, state: CutoverState, stage: int | None, event: Trigger, new_stage: int | None = None
) -> Transition:
    """Check ``event`` against the current state and return what it changes; raise StateError if refused."""
    allowed = _ALLOWED.get(event)
    if allowed is None:
        raise StateError(f"'{event.value}' is not a cutover event")
    if state not in allowed:
        wanted = " or ".join(s.value for s in allowed)
        raise StateError(f"cannot record '{event.value}': the cutover is {state.value} (needs {wanted})")
    fire = _messages_for(plan, event, new_stage)
    if event is Trigger.GO:
        return Transition(CutoverState.GO, stage, fire)
    if event is Trigger.NO_GO:
        return Transition(CutoverState.POSTPONED, stage, fire, PendingEffect.HOLD)
    if event is Trigger.STAGE:
        stages = plan.cutover.traffic_stages
        if new_stage not in stages:
            raise StateError(f"stage {new_stage} is not one of the plan's traffic stages {list(stages)}")
        if stage is not None and new_stage <= stage:
            raise StateError(f"traffic is already at {stage} %; the next stage must be higher than that")
        return Transition(CutoverState.IN_PROGRESS, new_stage, fire)
    if event is Trigger.COMPLETE:
        if stage != plan.cutover.traffic_stages[-1]:
            raise StateError(
                f"traffic is at {stage} %; reach stage {plan.cutover.traffic_stages[-1]} before 'complete'"
            )
        return Transition(CutoverState.COMPLETED, stage, fire, PendingEffect.CANCEL_RECURRING)
    if event is Trigger.ROLLBACK:
        return Transition(CutoverState.ROLLED_BACK, stage, fire, PendingEffect.CANCEL_ALL)
    if event is Trigger.RESCHEDULE:
        return Transition(CutoverState.PLANNED, None, fire, PendingEffect.RELEASE)
    return Transition(CutoverState.CANCELLED, stage, fire, PendingEffect.CANCEL_ALL)


def _messages_for(plan: Plan, event: Trigger, stage: int | None) -> tuple[tuple[str, int | None], ...]:
    fired = []
    for message in plan.schedule.messages:
        if message.event is not event:
            continue
        if event is Trigger.STAGE:
            if message.stages is None or stage in message.stages:
                fired.append((message.key, stage))
        else:
            fired.append((message.key, None))
    return tuple(fired)


def releases_held(state: CutoverState) -> bool:
    """Whether occurrences that wait for go may be sent in this state."""
    return state in (CutoverState.GO, CutoverState.IN_PROGRESS, CutoverState.COMPLETED)


def is_finished(state: CutoverState) -> bool:
    """Whether the cutover has reached an end state (no more time-based sends except follow-ups)."""
    return state in (CutoverState.ROLLED_BACK, CutoverState.CANCELLED)


@dataclass(frozen=True)
class EventWindow:
    """When an event may be recorded: from ``opens`` until ``closes`` (None: no bound on that side)."""

    opens: datetime | None
    closes: datetime | None

    def contains(self, now: datetime) -> bool:
        """Whether ``now`` falls inside the window."""
        return (self.opens is None or now >= self.opens) and (self.closes is None or now <= self.closes)

    def describe(self) -> str:
        """The window in words, for the refusal."""
        if self.opens is not None and self.closes is not None:
            return f"from {iso_utc(self.opens)} until {iso_utc(self.closes)}"
        if self.opens is not None:
            return f"from {iso_utc(self.opens)} on"
        assert self.closes is not None
        return f"until {iso_utc(self.closes)}"


def event_window(plan: Plan, event: Trigger, *, start: datetime) -> EventWindow | None:
    """When the plan lets ``event`` be recorded for T0 = ``start``; None when any time will do.

    Go: from ``go_window_opens`` (T-6h by default, around the go decision) until the window ends.
    Stages and complete: only once T0 has passed. No-go, rollback, reschedule, cancel: any time.
    """
    if event is Trigger.GO:
        return EventWindow(start + plan.cutover.go_window_opens, start + plan.cutover.window)
    if event in (Trigger.STAGE, Trigger.COMPLETE):
        return EventWindow(start, None)
    return None


def check_event_time(
    plan: Plan, event: Trigger, *, start: datetime, now: datetime, force: bool, reason: str | None
) -> str | None:
    """Refuse ``event`` at ``now`` outside its window (InputError) unless forced with a reason.

    Returns the override to record in the audit trail (the window that was overridden), or None.
    """
    window = event_window(plan, event, start=start)
    if window is None or window.contains(now):
        return None
    if force and (reason or "").strip():
        return window.describe()
    if force:
        raise InputError(f"--force needs --reason: say why '{event.value}' is recorded outside its window")
    raise InputError(
        f"'{event.value}' may be recorded {window.describe()} (T0 is {iso_utc(start)}); it is now {iso_utc(now)}. "
        "Use --force --reason R to record it anyway (the override is kept in the audit trail)"
    )
