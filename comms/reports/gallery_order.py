"""The order of the preview gallery: messages grouped in timeline order, and templates the plan never sends.

Time-based messages sit at their offset; event messages where the rehearsal plays them (go just after
the T-2h notice, stages over the middle third of the window, completion and rollback at its end);
rescheduling and cancellation, then messages sent only by commands (incidents, ad hoc, escalations) last.
"""

from __future__ import annotations

from datetime import timedelta

from comms.core.times import format_offset
from comms.plan.loader import sent_combinations
from comms.plan.models import Message, Plan, Trigger

__all__ = ["gallery_groups", "unsent_templates"]

_LAST = timedelta(days=10_000)
_OUTSIDE = {Trigger.INCIDENT: "an incident", Trigger.ADHOC: "`comms send`", Trigger.ESCALATION: "an escalation"}


def gallery_groups(plan: Plan) -> list[tuple[str, str, str, str]]:
    """(message key, title, when it goes out, phase) of every message, in timeline order."""
    ordered = sorted(plan.schedule.messages, key=lambda m: (_notional(plan, m), _rank(m)))
    return [(m.key, m.title, _when(m), _phase(plan, m)) for m in ordered]


def unsent_templates(plan: Plan) -> list[str]:
    """Template folders the plan never uses: messages not in the schedule, audience overrides never sent."""
    root = plan.root / "templates"
    if not root.is_dir():
        return []
    sent = {(message, audience) for message, audience, _ in sent_combinations(plan)}
    keys = {m.key for m in plan.schedule.messages}
    found = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("_")):
        if folder.name not in keys:
            found.append(f"templates/{folder.name}/ (no message '{folder.name}' in the schedule)")
            continue
        for override in sorted(p for p in folder.iterdir() if p.is_dir()):
            if (folder.name, override.name) not in sent:
                found.append(
                    f"templates/{folder.name}/{override.name}/ ('{folder.name}' never goes to {override.name})"
                )
    return found


def _notional(plan: Plan, message: Message) -> timedelta:
    window = plan.cutover.window
    if message.at is not None:
        return message.at
    if message.start is not None:
        return message.start
    event = message.event
    if event in (Trigger.GO, Trigger.NO_GO):
        return timedelta(hours=-2, minutes=10)
    if event is Trigger.STAGE:
        stages = message.stages or plan.cutover.traffic_stages
        position = plan.cutover.traffic_stages.index(stages[0]) if stages[0] in plan.cutover.traffic_stages else 0
        return window / 3 + window / 3 * position / max(len(plan.cutover.traffic_stages) - 1, 1)
    if event in (Trigger.COMPLETE, Trigger.ROLLBACK):
        return window
    return _LAST


def _rank(message: Message) -> int:
    order = [None, Trigger.GO, Trigger.NO_GO, Trigger.STAGE, Trigger.COMPLETE, Trigger.ROLLBACK]
    order += [Trigger.RESCHEDULE, Trigger.CANCEL, Trigger.INCIDENT, Trigger.ADHOC, Trigger.ESCALATION]
    return order.index(message.event) if message.event in order else len(order)


def _when(message: Message) -> str:
    if message.at is not None:
        return format_offset(message.at)
    if message.every is not None and message.start is not None:
        until = "the window's end" if message.until == "window_end" else format_offset(message.until)  # type: ignore[arg-type]
        return f"every {format_offset(message.every).removeprefix('T+')} from {format_offset(message.start)} to {until}"
    assert message.event is not None
    if message.event in _OUTSIDE:
        return f"sent only by {_OUTSIDE[message.event]}"
    stages = f" {', '.join(f'{s} %' for s in message.stages)}" if message.stages else ""
    return f"on {message.event.value}{stages}"


def _phase(plan: Plan, message: Message) -> str:
    if message.event in _OUTSIDE:
        return "outside the timeline"
    if message.event in (Trigger.RESCHEDULE, Trigger.CANCEL):
        return "if the plan changes"
    offset = _notional(plan, message)
    if offset < timedelta(0):
        return "before the window"
    if offset <= plan.cutover.window:
        return "during the window"
    return "after the window"
