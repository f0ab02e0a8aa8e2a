"""Retiring the messages whose phase is over: at an event, and when T0 passes (a dispatcher tick hook).

Retired occurrences end ``cancelled`` with why (``ended_reason``, and ``last_error`` on their pending
deliveries): recorded, never dropped.
"""

from __future__ import annotations

import logging
from datetime import datetime

from comms.core.events import CutoverState
from comms.core.phases import Phase, phase_of, phases_over, retire_reason
from comms.plan.cache import PlanCache
from comms.plan.models import Plan, Trigger
from comms.store import occurrences as occurrence_store
from comms.store import repository as repo
from comms.store.engine import Engine
from comms.store.tables import CutoverRow
from comms.store.transaction import Transaction, transaction

__all__ = ["PhaseRetirement", "retire_over_phases"]

log = logging.getLogger(__name__)

_CLOCK_STATES = (CutoverState.PLANNED.value, CutoverState.GO.value, CutoverState.IN_PROGRESS.value)


def retire_over_phases(
    session: Transaction,
    plan: Plan,
    cutover: CutoverRow,
    *,
    state: CutoverState,
    now: datetime,
    time_based_only: bool = False,
) -> list[str]:
    """Cancel the cutover's open timeline occurrences whose phase is over; return their keys.

    ``time_based_only``: leave the messages an event fired (the clock retires only planned offsets).
    """
    assert cutover.id is not None
    over = phases_over(state=state, start=cutover.start, now=now)
    if not over:
        return []
    by_reason: dict[str, list[int]] = {}
    keys: list[str] = []
    for row in occurrence_store.open_timeline_occurrences(session, cutover.id):
        if time_based_only and row.trigger != Trigger.TIME.value:
            continue
        try:
            phase: Phase = phase_of(plan, plan.message(row.message))
        except KeyError:
            continue  # a message no longer in the plan: the sender reports it
        if phase in over and row.id is not None:
            reason = retire_reason(phase, state=state, start=cutover.start, now=now)
            by_reason.setdefault(reason, []).append(row.id)
            keys.append(row.key)
    for reason, ids in by_reason.items():
        occurrence_store.set_occurrence_states(session, ids, "cancelled", at=now, reason=reason)
    if keys:
        log.info("cutover %s: retired %s (%s)", cutover.name, ", ".join(keys), "; ".join(by_reason))
    return keys


class PhaseRetirement:
    """A Dispatcher tick hook: once T0 has passed, what is still pending of 'before' is retired."""

    def __init__(self, plans: PlanCache) -> None:
        self.plans = plans

    def __call__(self, engine: Engine, now: datetime) -> None:
        with transaction(engine) as tx:
            started = [c for c in repo.cutovers_in_states(tx, _CLOCK_STATES) if c.start <= now]
            if not started:
                return
            for cutover in started:
                plan, _ = self.plans.get(cutover.plan_dir)
                retire_over_phases(tx, plan, cutover, state=CutoverState(cutover.state), now=now, time_based_only=True)
            tx.commit()
