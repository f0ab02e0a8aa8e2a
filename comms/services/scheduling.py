"""Services that write the plan into the store: schedule a cutover, record its events."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from comms.core import jsoncodec
from comms.core.events import CutoverState, PendingEffect, decide
from comms.core.timeline import Occurrence, build_timeline, occurrence_key
from comms.core.times import iso_utc
from comms.errors import InputError, StateError
from comms.plan.models import Plan, Trigger
from comms.store import repository as repo
from comms.store.tables import CutoverRow, OccurrenceRow


@dataclass(frozen=True)
class ScheduleOutcome:
    """What ``schedule_cutover`` did."""

    cutover: str
    created: bool
    start: datetime
    occurrences: list[Occurrence]


@dataclass(frozen=True)
class EventOutcome:
    """What an event changed: the cutover's new state and the occurrences it fired."""

    cutover: str
    state: str
    stage: int | None
    event_id: int
    fired: list[int]


def schedule_cutover(
    engine: Engine, plan: Plan, *, start: datetime, now: datetime, name: str | None = None
) -> ScheduleOutcome:
    """Store the cutover and its time-based occurrences; idempotent for the same start."""
    cutover_name = name or plan.cutover.name
    timeline = build_timeline(plan, start)
    with Session(engine) as session:
        existing = repo.get_cutover_by_name(session, cutover_name)
        if existing is not None:
            if existing.start != start:
                raise StateError(
                    f"cutover {cutover_name!r} is already scheduled for {iso_utc(existing.start)}; "
                    f"use 'comms reschedule --cutover {cutover_name} --start {iso_utc(start)} --reason ...' to move it"
                )
            return ScheduleOutcome(cutover_name, False, start, timeline)
        cutover = CutoverRow(
            name=cutover_name,
            plan_dir=str(plan.root),
            start=start,
            state=CutoverState.PLANNED.value,
            created_at=now,
            updated_at=now,
        )
        session.add(cutover)
        session.flush()
        assert cutover.id is not None
        for occurrence in timeline:
            if occurrence.due_at is not None:
                session.add(_occurrence_row(cutover.id, occurrence, now=now))
        session.commit()
    return ScheduleOutcome(cutover_name, True, start, timeline)


def _occurrence_row(
    cutover_id: int,
    occurrence: Occurrence,
    *,
    now: datetime,
    key: str | None = None,
    context: dict[str, Any] | None = None,
    audiences: Sequence[str] | None = None,
) -> OccurrenceRow:
    return OccurrenceRow(
        cutover_id=cutover_id,
        key=key or occurrence.key,
        message=occurrence.message,
        trigger=occurrence.trigger.value,
        due_at=occurrence.due_at or now,
        max_lateness_seconds=int(occurrence.max_lateness.total_seconds()),
        hold_until_go=occurrence.hold_until_go,
        sequence=occurrence.sequence,
        total=occurrence.total,
        stage=occurrence.stage,
        audiences_csv=",".join(audiences if audiences is not None else occurrence.audiences),
        channels_csv=",".join(c.value for c in occurrence.channels),
        context_json=jsoncodec.dumps(context) if context is not None else None,
        created_at=now,
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
) -> EventOutcome:
    """Record an event, apply what it changes to pending occurrences, and queue its messages (due now)."""
    if event in (Trigger.NO_GO, Trigger.ROLLBACK, Trigger.RESCHEDULE, Trigger.CANCEL) and not (reason or "").strip():
        raise InputError(f"--reason: '{event.value}' needs a reason that the audiences will read")
    with Session(engine) as session:
        cutover = repo.find_cutover(session, cutover_name)
        assert cutover.id is not None
        state = CutoverState(cutover.state)
        transition = decide(plan, state=state, stage=cutover.stage, event=event, new_stage=stage)
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
        event_row = repo.record_event(
            session, cutover_id=cutover.id, kind=event.value, payload_json=jsoncodec.dumps(payload), at=now
        )
        assert event_row.id is not None
        if event is Trigger.RESCHEDULE and new_start is not None:
            _shift_pending(session, plan, cutover, new_start)
            cutover.start = new_start
        _apply_pending_effect(session, cutover.id, transition.pending, now=now)
        told = repo.told_audiences(session, cutover.id)
        fired: list[OccurrenceRow] = []
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
            row = _occurrence_row(
                cutover.id, base, now=now, key=f"{base.key}/e{event_row.id}", context={"event": payload}
            )
            session.add(row)
            fired.append(row)
        cutover.state = transition.state.value
        cutover.stage = transition.stage
        cutover.updated_at = now
        session.add(cutover)
        session.commit()
        return EventOutcome(
            cutover.name, cutover.state, cutover.stage, event_row.id, [row.id for row in fired if row.id is not None]
        )


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


def _time_based_open(session: Session, cutover_id: int, states: tuple[str, ...]) -> Sequence[OccurrenceRow]:
    return session.exec(
        select(OccurrenceRow).where(
            OccurrenceRow.cutover_id == cutover_id,
            OccurrenceRow.trigger == Trigger.TIME.value,
            col(OccurrenceRow.state).in_(states),
        )
    ).all()


def _apply_pending_effect(session: Session, cutover_id: int, effect: PendingEffect, *, now: datetime) -> None:
    if effect is PendingEffect.NONE or effect is PendingEffect.RELEASE:
        return
    if effect is PendingEffect.HOLD:
        for row in _time_based_open(session, cutover_id, ("pending",)):
            if not row.materialized:
                row.state = "held"
                session.add(row)
        return
    # Messages already being sent are cancelled too: their pending rows end ``cancelled`` and the sender's
    # next claim finds nothing, so the rest of a big send stops within one batch.
    rows = _time_based_open(session, cutover_id, ("pending", "held", "dispatching"))
    if effect is PendingEffect.CANCEL_RECURRING:
        rows = [row for row in rows if row.sequence is not None]
    repo.set_occurrence_states(session, [r.id for r in rows if r.id is not None], "cancelled", at=now)


def _shift_pending(session: Session, plan: Plan, cutover: CutoverRow, new_start: datetime) -> None:
    assert cutover.id is not None
    due = {o.key: o.due_at for o in build_timeline(plan, new_start) if o.due_at is not None}
    for row in _time_based_open(session, cutover.id, ("pending", "held")):
        if row.materialized or row.key not in due:
            continue
        row.due_at = due[row.key]
        row.state = "pending"
        session.add(row)
