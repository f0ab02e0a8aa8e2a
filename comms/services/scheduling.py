"""Services that write the plan into the store: schedule a cutover, record its events."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from comms.core import jsoncodec
from comms.core.events import CutoverState, PendingEffect, check_event_time, decide
from comms.core.quiet_hours import SPLIT_MARK, split_for_quiet_hours
from comms.core.timeline import Occurrence, build_timeline, occurrence_key
from comms.core.times import iso_utc
from comms.errors import InputError, StateError
from comms.plan.cache import PlanCache
from comms.plan.models import Plan, Trigger
from comms.services.escalations import escalate_failure
from comms.services.phases import retire_over_phases
from comms.store import occurrences as occurrence_store
from comms.store import repository as repo
from comms.store.engine import Engine
from comms.store.occurrences import NewOccurrence
from comms.store.transaction import Transaction, transaction

__all__ = ["EventOutcome", "ScheduleOutcome", "apply_event", "schedule_cutover"]


@dataclass(frozen=True)
class ScheduleOutcome:
    """What ``schedule_cutover`` did."""

    cutover: str
    created: bool
    start: datetime
    occurrences: list[Occurrence]
    missed: list[str] = field(default_factory=list)
    """Keys recorded missed at once (``accept_missed``)."""


@dataclass(frozen=True)
class EventOutcome:
    """What an event changed: the cutover's new state and the occurrences it fired."""

    cutover: str
    state: str
    stage: int | None
    event_id: int
    fired: list[int]


def schedule_cutover(
    engine: Engine,
    plan: Plan,
    *,
    start: datetime,
    now: datetime,
    name: str | None = None,
    accept_missed: bool = False,
) -> ScheduleOutcome:
    """Store the cutover and its time-based occurrences; idempotent for the same start.

    A T0 in the past is refused; so is a T0 so close that messages are already past their lateness
    bound, unless ``accept_missed``: those are then stored ``missed`` with one summary escalation.
    """
    cutover_name = name or plan.cutover.name
    timeline = build_timeline(plan, start)
    existing = _existing_start(engine, cutover_name)
    if existing is None:
        missed = _check_start(timeline, start=start, now=now, accept_missed=accept_missed)
    else:
        missed = []
    added = repo.add_cutover(
        engine,
        name=cutover_name,
        plan_dir=str(plan.root),
        start=start,
        state=CutoverState.PLANNED.value,
        occurrences=[_new_occurrence(o, now=now) for o in timeline if o.due_at is not None],
        now=now,
    )
    if not added.created and added.start != start:
        raise StateError(
            f"cutover {cutover_name!r} is already scheduled for {iso_utc(added.start)}; "
            f"use 'comms reschedule --cutover {cutover_name} --start {iso_utc(start)} --reason ...' to move it"
        )
    if added.created and missed:
        _record_accepted_missed(engine, plan, cutover_name, missed, now=now)
    return ScheduleOutcome(cutover_name, added.created, start, timeline, [o.key for o in missed])


def _existing_start(engine: Engine, name: str) -> datetime | None:
    with transaction(engine) as tx:
        row = repo.get_cutover_by_name(tx, name)
        return row.start if row is not None else None


def _check_start(
    timeline: Sequence[Occurrence], *, start: datetime, now: datetime, accept_missed: bool
) -> list[Occurrence]:
    """The occurrences already past their lateness bound at ``now``; refuse a past T0, or misses not accepted."""
    if start <= now:
        raise InputError(f"--start: T0 {iso_utc(start)} is in the past (it is now {iso_utc(now)})")
    missed = [o for o in timeline if o.due_at is not None and o.due_at + o.max_lateness < now]
    if missed and not accept_missed:
        listed = ", ".join(f"{o.key} (due {iso_utc(o.due_at)})" for o in missed if o.due_at is not None)
        raise InputError(
            f"--start: T0 {iso_utc(start)} is so close that {len(missed)} message(s) are already past their "
            f"lateness bound and would be missed: {listed}. Choose a later T0, or pass --accept-missed to "
            "record them missed (one escalation)"
        )
    return missed


def _record_accepted_missed(
    engine: Engine, plan: Plan, cutover_name: str, missed: Sequence[Occurrence], *, now: datetime
) -> None:
    keys = [o.key for o in missed]
    reason = "already past its lateness bound when the cutover was scheduled (--accept-missed)"
    plans = PlanCache()
    plans.put(plan)
    with transaction(engine) as tx:
        cutover = repo.find_cutover(tx, cutover_name)
        assert cutover.id is not None
        rows = [r for r in occurrence_store.occurrences(tx, cutover.id) if r.key in keys]
        occurrence_store.set_occurrence_states(
            tx, [r.id for r in rows if r.id is not None], "missed", at=now, reason=reason
        )
        summary = (
            f"{len(keys)} message(s) of {cutover_name} were already past their lateness bound when it was "
            f"scheduled for T0 {iso_utc(cutover.start)} and were recorded missed (--accept-missed): {', '.join(keys)}"
        )
        if rows:
            escalate_failure(tx, plans, cutover, rows[0], "missed", now=now, summary=summary)
        tx.commit()


def _new_occurrence(
    occurrence: Occurrence,
    *,
    now: datetime,
    key: str | None = None,
    context: dict[str, Any] | None = None,
    audiences: Sequence[str] | None = None,
) -> NewOccurrence:
    return NewOccurrence(
        key=key or occurrence.key,
        message=occurrence.message,
        trigger=occurrence.trigger.value,
        due_at=occurrence.due_at or now,
        max_lateness_seconds=int(occurrence.max_lateness.total_seconds()),
        hold_until_go=occurrence.hold_until_go,
        sequence=occurrence.sequence,
        total=occurrence.total,
        stage=occurrence.stage,
        audiences=tuple(audiences if audiences is not None else occurrence.audiences),
        channels=tuple(c.value for c in occurrence.channels),
        context_json=jsoncodec.dumps(context) if context is not None else None,
    )


def apply_event(
    engine: Engine,
    plan: Plan,
    *,
    cutover_name: str | None,
    event: Trigger,
    now: datetime,
    stage: int | None = None,
    reason: str | None = None,
    by: str | None = None,
    new_start: datetime | None = None,
    force: bool = False,
) -> EventOutcome:
    """Record an event, apply what it changes to pending occurrences, and queue its messages (due now).

    An event outside its window (``core.events.event_window``) is refused unless ``force`` with a
    ``reason``; the override is recorded in the event's payload. Messages whose phase the event ends
    are retired (``services.phases``).
    """
    if event in (Trigger.NO_GO, Trigger.ROLLBACK, Trigger.RESCHEDULE, Trigger.CANCEL) and not (reason or "").strip():
        raise InputError(f"--reason: '{event.value}' needs a reason that the audiences will read")
    with transaction(engine) as tx:
        cutover = repo.find_cutover(tx, cutover_name)
        assert cutover.id is not None
        state = CutoverState(cutover.state)
        transition = decide(plan, state=state, stage=cutover.stage, event=event, new_stage=stage)
        overridden = check_event_time(plan, event, start=cutover.start, now=now, force=force, reason=reason)
        if event is Trigger.RESCHEDULE:
            if new_start is None:
                raise InputError("--start: reschedule needs the new T0")
            if new_start == cutover.start:
                raise StateError(f"the cutover already starts at {iso_utc(new_start)}")
            if new_start <= now:
                raise InputError(f"--start: the new T0 {iso_utc(new_start)} is in the past")
        payload = _event_payload(
            plan,
            event,
            now=now,
            previous_stage=cutover.stage,
            stage=stage,
            reason=reason,
            by=by,
            previous_start=cutover.start,
        )
        if overridden is not None:
            payload["override"] = {"window": overridden, "reason": reason, "by": by or "the comms lead"}
        if by and "by" not in payload:
            payload["by"] = by
        event_row = repo.record_event(
            tx, cutover_id=cutover.id, kind=event.value, payload_json=jsoncodec.dumps(payload), at=now
        )
        assert event_row.id is not None
        moved_start = new_start if event is Trigger.RESCHEDULE else None
        if moved_start is not None:
            moved = [_new_occurrence(o, now=now) for o in build_timeline(plan, moved_start) if o.due_at is not None]
            occurrence_store.realign_time_based(tx, cutover.id, moved, split_mark=SPLIT_MARK, now=now)
        if moved_start is None:
            retire_over_phases(tx, plan, cutover, state=transition.state, now=now)
        _apply_pending_effect(tx, cutover.id, transition.pending, now=now, reason=f"'{event.value}' recorded")
        told = repo.told_audiences(tx, cutover.id)
        fired: list[int] = []
        for message_key, message_stage in transition.fire:
            message = plan.message(message_key)
            audiences = list(message.audiences)
            if event is Trigger.RESCHEDULE:
                audiences = [a for a in audiences if a in told]
                if not audiences:
                    continue
            base = Occurrence(
                key=occurrence_key(message.key, stage=message_stage),
                message=message.key,
                trigger=event,
                due_at=now,
                audiences=tuple(audiences),
                channels=message.channels,
                max_lateness=message.max_lateness,
                stage=message_stage,
            )
            for part in split_for_quiet_hours(plan, base, urgent=message.urgent):
                row = _new_occurrence(part, now=now, key=f"{part.key}/e{event_row.id}", context={"event": payload})
                fired.append(occurrence_store.add_occurrence(tx, cutover.id, row, now=now))
        repo.set_cutover_state(
            tx, cutover, state=transition.state.value, stage=transition.stage, now=now, start=moved_start
        )
        outcome = EventOutcome(cutover.name, transition.state.value, transition.stage, event_row.id, fired)
        tx.commit()
        return outcome


def _event_payload(
    plan: Plan,
    event: Trigger,
    *,
    now: datetime,
    previous_stage: int | None,
    stage: int | None,
    reason: str | None,
    by: str | None,
    previous_start: datetime,
) -> dict[str, Any]:
    if event is Trigger.GO:
        return {"decided_at": now, "by": by or "the comms lead"}
    if event is Trigger.NO_GO:
        return {"reason": reason, "by": by or "the comms lead"}
    if event is Trigger.STAGE:
        stages = list(plan.cutover.traffic_stages)
        later = [s for s in stages if stage is not None and s > stage]
        return {"stage": stage, "previous_stage": previous_stage, "next_stage": later[0] if later else None}
    if event is Trigger.COMPLETE:
        return {"completed_at": now}
    if event is Trigger.ROLLBACK:
        return {"reason": reason, "stage": previous_stage}
    if event is Trigger.RESCHEDULE:
        return {"reason": reason, "previous_start": previous_start}
    return {"reason": reason}


def _apply_pending_effect(
    tx: Transaction, cutover_id: int, effect: PendingEffect, *, now: datetime, reason: str
) -> None:
    if effect is PendingEffect.NONE or effect is PendingEffect.RELEASE:
        return
    if effect is PendingEffect.HOLD:
        occurrence_store.hold_time_based(tx, cutover_id)
        return
    occurrence_store.cancel_time_based(
        tx, cutover_id, recurring_only=effect is PendingEffect.CANCEL_RECURRING, now=now, reason=reason
    )
