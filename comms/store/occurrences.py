"""The queries on occurrences (planned and triggered sends of a message): queue them, find what is due, move
their states, and keep the time-based ones in line with the cutover's timeline (hold, cancel, realign).

Functions that take a ``Session`` run inside the caller's transaction (``comms.store.transaction``) and
leave the commit to it. Cutovers, events and threads are ``comms.store.repository``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import Engine, func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from comms.plan.models import Trigger
from comms.store.tables import BatchRow, OccurrenceRow

__all__ = [
    "ACTIVE_OCCURRENCE_STATES",
    "ENDED_OCCURRENCE_STATES",
    "NewOccurrence",
    "QueuedOccurrence",
    "add_numbered_occurrence",
    "add_occurrence",
    "cancel_time_based",
    "due_occurrences",
    "get_occurrence",
    "hold_time_based",
    "next_due_at",
    "next_future_due_at",
    "occurrence_id_by_key",
    "occurrence_row",
    "occurrences",
    "open_timeline_occurrences",
    "partly_written_ended",
    "realign_time_based",
    "set_occurrence_states",
]


ACTIVE_OCCURRENCE_STATES = ("pending", "dispatching")


def get_occurrence(session: Session, occurrence_id: int) -> OccurrenceRow | None:
    """The occurrence with id ``occurrence_id``, or None (a test or an operator may have removed it)."""
    return session.get(OccurrenceRow, occurrence_id)


def occurrences(session: Session, cutover_id: int) -> Sequence[OccurrenceRow]:
    """All occurrences of a cutover in due order (triggered ones by creation)."""
    statement = (
        select(OccurrenceRow)
        .where(OccurrenceRow.cutover_id == cutover_id)
        .order_by(col(OccurrenceRow.due_at), col(OccurrenceRow.id))
    )
    return session.exec(statement).all()


def due_occurrences(session: Session, now: datetime) -> Sequence[OccurrenceRow]:
    """Occurrences that are due (or being dispatched) at ``now``, across cutovers."""
    statement = (
        select(OccurrenceRow)
        .where(col(OccurrenceRow.state).in_(ACTIVE_OCCURRENCE_STATES))
        .where(col(OccurrenceRow.due_at) <= now)
        .order_by(col(OccurrenceRow.due_at), col(OccurrenceRow.id))
    )
    return session.exec(statement).all()


ENDED_OCCURRENCE_STATES = ("cancelled", "missed")


def partly_written_ended(session: Session) -> list[int]:
    """Occurrences that ended (cancelled, missed) while their rows were being written: the rest is unwritten."""
    has_rows = select(BatchRow.id).where(BatchRow.occurrence_id == OccurrenceRow.id).exists()
    statement = (
        select(OccurrenceRow.id)
        .where(col(OccurrenceRow.state).in_(ENDED_OCCURRENCE_STATES), col(OccurrenceRow.materialized).is_(False))
        .where(has_rows)
        .order_by(col(OccurrenceRow.id))
    )
    return [int(i) for i in session.exec(statement).all() if i is not None]


def next_due_at(session: Session) -> datetime | None:
    """The earliest due time of a pending occurrence, or of a delivery waiting for its retry."""
    occurrence_due = session.exec(select(func.min(OccurrenceRow.due_at)).where(OccurrenceRow.state == "pending")).one()
    ready_now = session.exec(
        select(func.min(OccurrenceRow.due_at))
        .join(BatchRow, col(BatchRow.occurrence_id) == OccurrenceRow.id)
        .where(BatchRow.state == "pending", col(BatchRow.size) > 0, col(BatchRow.next_attempt_at).is_(None))
    ).one()
    retry_due = session.exec(
        select(func.min(BatchRow.next_attempt_at)).where(BatchRow.state == "pending", col(BatchRow.size) > 0)
    ).one()
    candidates = [value for value in (occurrence_due, ready_now, retry_due) if value is not None]
    return min(candidates) if candidates else None


def next_future_due_at(session: Session, now: datetime) -> datetime | None:
    """The earliest instant after ``now`` at which an occurrence or a retry becomes due."""
    occurrence_due = session.exec(
        select(func.min(OccurrenceRow.due_at)).where(OccurrenceRow.state == "pending", col(OccurrenceRow.due_at) > now)
    ).one()
    retry_due = session.exec(
        select(func.min(BatchRow.next_attempt_at)).where(
            BatchRow.state == "pending", col(BatchRow.size) > 0, col(BatchRow.next_attempt_at) > now
        )
    ).one()
    candidates = [value for value in (occurrence_due, retry_due) if value is not None]
    return min(candidates) if candidates else None


def set_occurrence_states(
    session: Session, ids: Sequence[int], state: str, *, at: datetime, reason: str | None = None
) -> None:
    """Move occurrences (and their open deliveries, when ending them) to ``state``, with why when given."""
    if not ids:
        return
    values: dict[str, object] = {"state": state, "finished_at": at}
    if reason is not None:
        values["ended_reason"] = reason
    session.execute(update(OccurrenceRow).where(col(OccurrenceRow.id).in_(ids)).values(**values))
    if state in ("cancelled", "missed"):
        ended: dict[str, object] = {"state": state, "updated_at": at}
        if reason is not None:
            ended["last_error"] = reason
        session.execute(
            update(BatchRow)
            .where(col(BatchRow.occurrence_id).in_(ids), col(BatchRow.state) == "pending")
            .values(**ended)
        )


@dataclass(frozen=True)
class NewOccurrence:
    """An occurrence to queue, as plain values (the store writes the ``OccurrenceRow``)."""

    key: str
    message: str
    trigger: str
    due_at: datetime
    max_lateness_seconds: int
    audiences: tuple[str, ...]
    channels: tuple[str, ...]
    context_json: str | None = None
    incident_id: int | None = None
    hold_until_go: bool = False
    sequence: int | None = None
    total: int | None = None
    stage: int | None = None


@dataclass(frozen=True)
class QueuedOccurrence:
    """An occurrence written by ``add_numbered_occurrence``: its id and the key it got."""

    id: int
    key: str


def occurrence_row(cutover_id: int, occurrence: NewOccurrence, *, now: datetime) -> OccurrenceRow:
    return OccurrenceRow(
        cutover_id=cutover_id,
        key=occurrence.key,
        message=occurrence.message,
        trigger=occurrence.trigger,
        due_at=occurrence.due_at,
        max_lateness_seconds=occurrence.max_lateness_seconds,
        hold_until_go=occurrence.hold_until_go,
        sequence=occurrence.sequence,
        total=occurrence.total,
        stage=occurrence.stage,
        audiences_csv=",".join(occurrence.audiences),
        channels_csv=",".join(occurrence.channels),
        context_json=occurrence.context_json,
        incident_id=occurrence.incident_id,
        created_at=now,
    )


def add_occurrence(session: Session, cutover_id: int, occurrence: NewOccurrence, *, now: datetime) -> int:
    """Queue an occurrence inside the caller's transaction; return its id."""
    row = occurrence_row(cutover_id, occurrence, now=now)
    session.add(row)
    session.flush()
    assert row.id is not None
    return row.id


def add_numbered_occurrence(
    engine: Engine, cutover_id: int, occurrence: NewOccurrence, *, attempts: int, now: datetime
) -> QueuedOccurrence | None:
    """Queue ``occurrence`` as ``<its key><n>``, n one more than the keys with that prefix; None after ``attempts`` clashes.

    Another process may take the same number at the same time: the UNIQUE key refuses the second
    one, and the next number is tried in a new transaction.
    """
    prefix = occurrence.key
    for _ in range(attempts):
        with Session(engine) as session:
            taken = session.exec(
                select(func.count()).where(
                    OccurrenceRow.cutover_id == cutover_id, col(OccurrenceRow.key).startswith(prefix)
                )
            ).one()
            key = f"{prefix}{int(taken) + 1}"
            try:
                occurrence_id = add_occurrence(session, cutover_id, replace(occurrence, key=key), now=now)
                session.commit()
            except IntegrityError:
                session.rollback()
                continue
            return QueuedOccurrence(occurrence_id, key)
    return None


def occurrence_id_by_key(session: Session, cutover_id: int, key: str) -> int | None:
    """The id of the cutover's occurrence with that key, or None."""
    return session.exec(
        select(OccurrenceRow.id).where(OccurrenceRow.cutover_id == cutover_id, OccurrenceRow.key == key)
    ).first()


def _time_based_open(session: Session, cutover_id: int, states: tuple[str, ...]) -> Sequence[OccurrenceRow]:
    return session.exec(
        select(OccurrenceRow).where(
            OccurrenceRow.cutover_id == cutover_id,
            OccurrenceRow.trigger == Trigger.TIME.value,
            col(OccurrenceRow.state).in_(states),
        )
    ).all()


def hold_time_based(session: Session, cutover_id: int) -> None:
    """Hold the pending time-based occurrences not materialized yet (they wait for the go)."""
    for row in _time_based_open(session, cutover_id, ("pending",)):
        if not row.materialized:
            row.state = "held"
            session.add(row)


def cancel_time_based(
    session: Session, cutover_id: int, *, recurring_only: bool, now: datetime, reason: str | None = None
) -> None:
    """Cancel the open time-based occurrences (only recurring ones if asked), those being sent included.

    Their pending rows end ``cancelled`` and the sender's next claim finds nothing, so the rest of a big
    send stops within one batch.
    """
    rows = _time_based_open(session, cutover_id, ("pending", "held", "dispatching"))
    if recurring_only:
        rows = [row for row in rows if row.sequence is not None]
    set_occurrence_states(session, [r.id for r in rows if r.id is not None], "cancelled", at=now, reason=reason)


def open_timeline_occurrences(session: Session, cutover_id: int) -> Sequence[OccurrenceRow]:
    """The cutover's occurrences of its timeline (time- or event-triggered) still pending, held or being sent."""
    timeline = [t.value for t in Trigger if t.in_timeline]
    return session.exec(
        select(OccurrenceRow).where(
            OccurrenceRow.cutover_id == cutover_id,
            col(OccurrenceRow.trigger).in_(timeline),
            col(OccurrenceRow.state).in_(("pending", "held", "dispatching")),
        )
    ).all()


def realign_time_based(
    session: Session, cutover_id: int, occurrences: Sequence[NewOccurrence], *, split_mark: str, now: datetime
) -> None:
    """After a reschedule, make the open time-based occurrences (pending or held, not materialized) the new timeline.

    Each gets the due time, lateness bound, audiences and channels of its key, pending again. Quiet hours
    split an audience off as ``<key><split_mark><audience>`` when they move it: a split the new T0 no
    longer needs is cancelled, one it needs is added (or reopened), while the occurrence it splits from
    is still open.
    """
    open_states = ("pending", "held")
    rows = {
        row.key: row
        for row in session.exec(
            select(OccurrenceRow).where(
                OccurrenceRow.cutover_id == cutover_id, OccurrenceRow.trigger == Trigger.TIME.value
            )
        ).all()
    }

    def is_open(row: OccurrenceRow | None) -> bool:
        return row is not None and row.state in open_states and not row.materialized

    wanted = {occurrence.key: occurrence for occurrence in occurrences}
    for key, row in rows.items():
        if is_open(row) and key not in wanted:
            row.state, row.finished_at = "cancelled", now
            row.ended_reason = "the reschedule no longer needs this quiet-hours split"
            session.add(row)
    for key, occurrence in wanted.items():
        splits_from = rows.get(key.split(split_mark)[0])
        if key not in rows:
            if split_mark in key and is_open(splits_from):
                session.add(occurrence_row(cutover_id, occurrence, now=now))
            continue
        row = rows[key]
        reopen = row.state == "cancelled" and split_mark in key and is_open(splits_from)
        if not (is_open(row) or reopen):
            continue
        row.due_at, row.max_lateness_seconds = occurrence.due_at, occurrence.max_lateness_seconds
        row.audiences_csv, row.channels_csv = ",".join(occurrence.audiences), ",".join(occurrence.channels)
        row.state, row.finished_at, row.ended_reason = "pending", None, None
        session.add(row)
