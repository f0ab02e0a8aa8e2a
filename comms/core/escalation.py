"""Escalation policy: which level of an incident's escalation is due, and when the next one is.

Pure: the policy, the incident's opening time, whether it is acknowledged, the notices already
sent and ``now`` go in; the notices due and the next due instant come out. No I/O, no clock.

Levels are numbered from 1, as people say them ("level 2"). Each level is due once, ``after``
its delay from the opening. Past the last level, the last level repeats every ``repeat_every``
until someone acknowledges: slot ``k`` of the last level is due at ``opened_at + last.after +
k * repeat_every`` (slot 0 is its first notice). A slot, once notified, is never due again; a
worker that was down for several slots sends only the latest one, not a burst of stale repeats.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from comms.core.times import format_duration
from comms.plan.models import SeverityPolicy

__all__ = ["DueNotice", "EscalationDecision", "decide_escalation", "escalation_reason"]


@dataclass(frozen=True, order=True)
class DueNotice:
    """One escalation notice due now: level (from 1), repeat slot (0 = the level's first notice)."""

    due_at: datetime
    level: int
    repeat: int


@dataclass(frozen=True)
class EscalationDecision:
    """The notices due at ``now`` (oldest first) and when the next one falls due (None: never)."""

    due: tuple[DueNotice, ...]
    next_at: datetime | None


def decide_escalation(
    policy: SeverityPolicy,
    *,
    opened_at: datetime,
    acknowledged: bool,
    notified: Collection[tuple[int, int]],
    now: datetime,
) -> EscalationDecision:
    """The notices due at ``now`` for an incident opened at ``opened_at``.

    ``notified`` holds the (level, repeat) pairs already sent. ``acknowledged`` (or resolved)
    stops the escalation: nothing is due and nothing will be.
    """
    if acknowledged:
        return EscalationDecision((), None)
    due: list[DueNotice] = []
    upcoming: list[datetime] = []
    last = len(policy.levels)
    for number, level in enumerate(policy.levels[:-1], start=1):
        if any(notice_level == number for notice_level, _ in notified):
            continue
        at = opened_at + level.after
        if at <= now:
            due.append(DueNotice(at, number, 0))
        else:
            upcoming.append(at)
    base = opened_at + policy.levels[-1].after
    if base > now:
        if not any(notice_level == last for notice_level, _ in notified):
            upcoming.append(base)
    else:
        slot = _current_slot(base, policy.repeat_every, now)
        sent = [repeat for notice_level, repeat in notified if notice_level == last]
        if not sent or max(sent) < slot:
            due.append(DueNotice(base + slot * (policy.repeat_every or timedelta(0)), last, slot))
        if policy.repeat_every is not None:
            upcoming.append(base + (slot + 1) * policy.repeat_every)
    return EscalationDecision(tuple(sorted(due)), min(upcoming) if upcoming else None)


def _current_slot(base: datetime, every: timedelta | None, now: datetime) -> int:
    """The latest repeat slot of the last level that has fallen due (0 without repeats)."""
    if every is None or every <= timedelta(0):
        return 0
    return (now - base) // every


def escalation_reason(*, incident_id: int, severity: str, opened_at: datetime, notice: DueNotice, levels: int) -> str:
    """The one-line reason an escalation notice gives, e.g. ``not acknowledged for 15 minutes``."""
    waited = notice.due_at - opened_at
    head = f"Incident #{incident_id} ({severity})"
    if waited <= timedelta(0):
        return f"{head} was opened and nobody has acknowledged it yet"
    waited_text = format_duration(waited, style="prose", largest="h", smallest="m")
    text = f"{head} has not been acknowledged for {waited_text}"
    if notice.repeat:
        text += f" (level {notice.level} of {levels}, reminder {notice.repeat})"
    return text
