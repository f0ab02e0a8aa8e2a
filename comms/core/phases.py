"""The phases of a cutover and which of them are over. Pure: the caller gives ``now``.

Every timeline message belongs to one phase:

- ``before``: announced before T0 (an offset before T0, or the go / no-go / reschedule / cancel events);
- ``window``: the maintenance window (an offset from T0 up to the window's end, the traffic stages);
- ``after``: once the work is done (offsets past the window, complete, rollback, follow-ups).

A message whose phase is over is never sent: T0 passing ends ``before`` (unless the cutover is
postponed: its T0 is about to move); ``complete``, ``rollback`` and ``cancel`` end ``before`` and
``window``. The go decision ends nothing: the final notice before T0 follows it.
A ``phase:`` in the schedule overrides the derived phase. The status page only moves forward:
a completed maintenance is never set back to scheduled.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum

from comms.core.events import CutoverState
from comms.plan.models import Message, Plan, Trigger

__all__ = ["Phase", "phase_of", "phases_over", "retire_reason", "statuspage_moves_forward", "statuspage_status_to_send"]


class Phase(StrEnum):
    """The part of the cutover a message speaks about."""

    BEFORE = "before"
    WINDOW = "window"
    AFTER = "after"


_EVENT_PHASES: dict[Trigger, Phase] = {
    Trigger.GO: Phase.BEFORE,
    Trigger.NO_GO: Phase.BEFORE,
    Trigger.RESCHEDULE: Phase.BEFORE,
    Trigger.CANCEL: Phase.BEFORE,
    Trigger.STAGE: Phase.WINDOW,
    Trigger.COMPLETE: Phase.AFTER,
    Trigger.ROLLBACK: Phase.AFTER,
}

_ENDS_WINDOW = (CutoverState.COMPLETED, CutoverState.ROLLED_BACK, CutoverState.CANCELLED)
_CLOCK_RUNS = (CutoverState.PLANNED, CutoverState.GO, CutoverState.IN_PROGRESS)
"""States in which T0 passing ends ``before`` (a postponed cutover waits for its new T0)."""


def phase_of(plan: Plan, message: Message) -> Phase:
    """The phase ``message`` belongs to: its explicit ``phase:``, else derived from its offset or trigger."""
    if message.phase is not None:
        return Phase(message.phase)
    if message.event is not None:
        return _EVENT_PHASES.get(message.event, Phase.AFTER)
    offset = message.at if message.at is not None else message.start
    assert offset is not None, "a timed message has 'at' or 'from' (plan validation)"
    if offset < timedelta(0):
        return Phase.BEFORE
    if offset < plan.cutover.window:
        return Phase.WINDOW
    return Phase.AFTER


def phases_over(*, state: CutoverState, start: datetime, now: datetime) -> frozenset[Phase]:
    """The phases whose messages may no longer be sent, for a cutover in ``state`` with T0 ``start``."""
    if state in _ENDS_WINDOW:
        return frozenset((Phase.BEFORE, Phase.WINDOW))
    if state in _CLOCK_RUNS and now >= start:
        return frozenset((Phase.BEFORE,))
    return frozenset()


def retire_reason(phase: Phase, *, state: CutoverState, start: datetime, now: datetime) -> str:
    """Why a pending message of ``phase`` is retired, in words for the audit trail."""
    if state in _ENDS_WINDOW:
        return f"phase '{phase.value}' is over: the cutover is {state.value}"
    return f"phase '{phase.value}' is over: T0 ({start.isoformat()}) passed at {now.isoformat()}"


_MAINTENANCE_ORDER = ("scheduled", "in_progress", "verifying", "completed")
_REALTIME_ORDER = ("investigating", "identified", "monitoring", "resolved")


def statuspage_moves_forward(previous: str | None, new: str) -> bool:
    """Whether a status-page incident at ``previous`` may be set to ``new`` (same or later; never back)."""
    if previous is None:
        return True
    for order in (_MAINTENANCE_ORDER, _REALTIME_ORDER):
        if previous in order and new in order:
            return order.index(new) >= order.index(previous)
    return True


def statuspage_status_to_send(reached: Sequence[str], wanted: str) -> str | None:
    """The status a send may set, given the statuses the page has already been set to (in any order).

    ``wanted`` when it is not behind the furthest status reached; that furthest status when ``wanted``
    lags behind it (a progress update after 'verifying' keeps 'verifying'); None (do not send) when the
    incident is closed ('completed', 'resolved') or ``wanted`` would set it back to 'scheduled'.
    """
    behind = [status for status in reached if not statuspage_moves_forward(status, wanted)]
    if not behind:
        return wanted
    order = _MAINTENANCE_ORDER if wanted in _MAINTENANCE_ORDER else _REALTIME_ORDER
    furthest = max(behind, key=order.index)
    if furthest in ("completed", "resolved") or wanted == "scheduled":
        return None
    return furthest
