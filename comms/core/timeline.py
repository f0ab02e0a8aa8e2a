"""T0 + plan -> occurrences: what is due when, or on which event. Pure: no clock, no I/O.

Audiences with quiet hours get occurrences of their own, shifted out of them (``comms.core.quiet_hours``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from comms.clock import ensure_utc
from comms.core.quiet_hours import split_for_quiet_hours
from comms.plan.fields import Channel
from comms.plan.models import Message, Plan, Trigger

__all__ = ["Occurrence", "build_timeline", "occurrence_key"]


@dataclass(frozen=True)
class Occurrence:
    """One planned send of a message: a time-based instant or an event it waits for."""

    key: str
    message: str
    trigger: Trigger
    due_at: datetime | None
    audiences: tuple[str, ...]
    channels: tuple[Channel, ...]
    max_lateness: timedelta
    sequence: int | None = None
    total: int | None = None
    stage: int | None = None
    hold_until_go: bool = False


def occurrence_key(message: str, *, sequence: int | None = None, stage: int | None = None) -> str:
    """The stable key of an occurrence: ``advance-notice``, ``progress-update#3``, ``traffic-stage@50``."""
    if sequence is not None:
        return f"{message}#{sequence}"
    if stage is not None:
        return f"{message}@{stage}"
    return message


def build_timeline(plan: Plan, start: datetime) -> list[Occurrence]:
    """Every occurrence of the plan's timeline for T0 = ``start``, time-based first in due order."""
    start = ensure_utc(start)
    timed: list[Occurrence] = []
    bound: list[Occurrence] = []
    for message in plan.schedule.messages:
        if message.event is None:
            for occurrence in _timed(plan, message, start):
                timed.extend(split_for_quiet_hours(plan, occurrence, urgent=message.urgent))
        elif message.event.in_timeline:
            bound.extend(_event_bound(plan, message))
    timed.sort(key=lambda o: (o.due_at, o.key))
    return timed + bound


def _timed(plan: Plan, message: Message, start: datetime) -> list[Occurrence]:
    if message.at is not None:
        return [_occurrence(message, key=message.key, due_at=start + message.at)]
    assert message.every is not None and message.start is not None and message.until is not None
    until = plan.cutover.window if message.until == "window_end" else message.until
    assert isinstance(until, timedelta)
    offsets = []
    offset = message.start
    while offset < until:
        offsets.append(offset)
        offset += message.every
    total = len(offsets)
    return [
        _occurrence(
            message,
            key=occurrence_key(message.key, sequence=n),
            due_at=start + offset,
            sequence=n,
            total=total,
        )
        for n, offset in enumerate(offsets, start=1)
    ]


def _event_bound(plan: Plan, message: Message) -> list[Occurrence]:
    if message.event is Trigger.STAGE:
        return [
            _occurrence(message, key=occurrence_key(message.key, stage=stage), due_at=None, stage=stage)
            for stage in plan.cutover.traffic_stages
            if message.stages is None or stage in message.stages
        ]
    return [_occurrence(message, key=message.key, due_at=None)]


def _occurrence(
    message: Message,
    *,
    key: str,
    due_at: datetime | None,
    sequence: int | None = None,
    total: int | None = None,
    stage: int | None = None,
) -> Occurrence:
    return Occurrence(
        key=key,
        message=message.key,
        trigger=message.event or Trigger.TIME,
        due_at=due_at,
        audiences=message.audiences,
        channels=message.channels,
        max_lateness=message.max_lateness,
        sequence=sequence,
        total=total,
        stage=stage,
        hold_until_go=message.hold_until_go,
    )
