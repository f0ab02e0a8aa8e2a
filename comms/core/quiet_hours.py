"""Quiet hours: an audience's local night, during which non-urgent messages wait. Pure: no clock, no I/O.

``quiet_hours: "22:00-07:00"`` is read in the audience's own zone (zoneinfo, so a DST change that
night moves the end's UTC instant with it). A message due inside them waits for their end when that
is within its lateness bound, and goes at once otherwise (late at night beats missed).

An occurrence is per message, but quiet hours are per audience: when they move a message for an
audience it reaches on its own channels (email, Slack, webhook), that audience gets an occurrence of
its own, keyed ``<occurrence>~<audience>``, whose due time is shifted and whose lateness bound is
shortened by the shift (the bound still counts from the planned instant); the other audiences and
the status page keep the planned time. A reschedule realigns the split (``comms.services.scheduling``).
Urgent messages, rollbacks, incidents and escalations are never held back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING

from comms.core.times import load_zone

__all__ = [
    "EXEMPT_TRIGGERS",
    "QuietHours",
    "SHARED_CHANNELS",
    "SPLIT_MARK",
    "parse_quiet_hours",
    "quiet_end",
    "shifted_due",
    "split_for_quiet_hours",
]

if TYPE_CHECKING:
    from comms.core.timeline import Occurrence
    from comms.plan.models import Plan

_SPAN = re.compile(r"^\s*([01]\d|2[0-3]):([0-5]\d)\s*-\s*([01]\d|2[0-3]):([0-5]\d)\s*$")
EXEMPT_TRIGGERS = ("rollback", "incident", "escalation")
"""Triggers whose messages go at once, quiet hours or not."""
SPLIT_MARK = "~"
SHARED_CHANNELS = frozenset({"statuspage"})
"""Channels sent once for all audiences (the registry's ``per_audience=False`` kinds; a test keeps them equal)."""


@dataclass(frozen=True)
class QuietHours:
    """A local span of the day (may cross midnight): ``start`` inclusive, ``end`` exclusive."""

    start: time
    end: time

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


def parse_quiet_hours(value: str) -> QuietHours:
    """``"22:00-07:00"`` -> QuietHours; ValueError for another shape or an empty span."""
    match = _SPAN.match(value)
    if match is None:
        raise ValueError(f"quiet hours {value!r} must look like '22:00-07:00' (local start-end, 24-hour clock)")
    start = time(int(match[1]), int(match[2]))
    end = time(int(match[3]), int(match[4]))
    if start == end:
        raise ValueError(f"quiet hours {value!r} start and end at the same time")
    return QuietHours(start, end)


def quiet_end(due: datetime, quiet: QuietHours, zone: str) -> datetime | None:
    """The UTC instant the quiet hours ``due`` falls in end, or None when ``due`` is outside them."""
    tz = load_zone(zone)
    local_day = due.astimezone(tz).date()
    for day in (local_day - timedelta(days=1), local_day):
        begins = _instant(day, quiet.start, zone)
        ends = _instant(day if quiet.end > quiet.start else day + timedelta(days=1), quiet.end, zone)
        if begins <= due < ends:
            return ends
    return None


def shifted_due(due: datetime, max_lateness: timedelta, quiet: QuietHours, zone: str) -> datetime:
    """When a non-urgent message due at ``due`` goes: the end of the quiet hours if within its bound, else ``due``."""
    end = quiet_end(due, quiet, zone)
    if end is None or end - due > max_lateness:
        return due
    return end


def split_for_quiet_hours(plan: Plan, occurrence: Occurrence, *, urgent: bool) -> list[Occurrence]:
    """The occurrence, and one of its own per audience whose quiet hours apply, with the shifted due time."""
    if urgent or occurrence.trigger.value in EXEMPT_TRIGGERS or occurrence.due_at is None:
        return [occurrence]
    personal = frozenset(c for c in occurrence.channels if c not in SHARED_CHANNELS)
    due_by_audience = {
        key: shifted_due(occurrence.due_at, occurrence.max_lateness, audience.quiet_hours, audience.timezone)
        for key in occurrence.audiences
        if (audience := plan.audiences.get(key)) is not None
        and audience.quiet_hours is not None
        and personal & audience.channels.kinds()
    }
    quiet_keys = [key for key, due in due_by_audience.items() if due != occurrence.due_at]
    if not quiet_keys:
        return [occurrence]
    rest = tuple(a for a in occurrence.audiences if a not in quiet_keys)
    shared = tuple(c for c in occurrence.channels if c not in personal)
    unserved = tuple(
        c for c in shared if not any(c in plan.audiences[a].channels.kinds() for a in rest if a in plan.audiences)
    )
    own = tuple(c for c in occurrence.channels if c in personal)
    result: list[Occurrence] = []
    if rest:
        result.append(replace(occurrence, audiences=rest))
    for key in quiet_keys:
        due = due_by_audience[key]
        first = not result  # no audience kept the planned time: the first shifted one keeps the key
        result.append(
            replace(
                occurrence,
                key=occurrence.key if first else f"{occurrence.key}{SPLIT_MARK}{key}",
                audiences=(key,),
                channels=occurrence.channels if first else own + (unserved if rest and len(result) == 1 else ()),
                due_at=due,
                max_lateness=occurrence.max_lateness - (due - occurrence.due_at),
            )
        )
    return result


def _instant(day: date, at: time, zone: str) -> datetime:
    """The UTC instant of a local wall time (a time skipped by DST is read with the offset before it)."""
    return datetime.combine(day, at, tzinfo=load_zone(zone)).astimezone(UTC)
