"""What the console's pages and their JSON twins show: a cutover's day and its incidents.

Built from the same reports the CLI prints (``comms.reports.status``, ``comms.services.incidents``)
plus one GROUP BY per cutover for the timeline's audience x channel lanes.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from comms.core.times import format_local, iso_utc
from comms.plan.cache import PlanCache
from comms.reports.status import CutoverStatus, cutover_status
from comms.store import console as console_store
from comms.store import occurrences as occurrence_store
from comms.store import repository as repo
from comms.store.engine import Engine
from comms.store.transaction import transaction

__all__ = ["CutoverView", "LANE_ORDER", "TimelineRow", "ZoneTimes", "cutover_names", "cutover_view"]

LANE_ORDER = ("sent", "in_flight", "pending", "retrying", "uncertain", "dead", "missed", "cancelled")


@dataclass(frozen=True)
class ZoneTimes:
    """T0 and the end of the window in one audience's zone."""

    audience: str
    title: str
    zone: str
    start: str
    end: str

    def to_json(self) -> dict[str, str]:
        """A JSON-ready dict."""
        return {"audience": self.audience, "title": self.title, "zone": self.zone, "start": self.start, "end": self.end}


@dataclass(frozen=True)
class TimelineRow:
    """One occurrence with its state per ``audience/channel`` lane."""

    key: str
    message: str
    trigger: str
    state: str
    due_at: datetime | None
    lanes: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "key": self.key,
            "message": self.message,
            "trigger": self.trigger,
            "state": self.state,
            "due_at": iso_utc(self.due_at) if self.due_at else None,
            "lanes": self.lanes,
        }


@dataclass(frozen=True)
class CutoverView:
    """The cutover page: its status, the window in every audience's zone, the timeline by lane."""

    status: CutoverStatus
    title: str
    end: datetime
    zones: list[ZoneTimes]
    lanes: list[str]
    timeline: list[TimelineRow]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (times in ISO-8601 UTC)."""
        return {
            **self.status.to_json(),
            "title": self.title,
            "end": iso_utc(self.end),
            "zones": [zone.to_json() for zone in self.zones],
            "lanes": self.lanes,
            "timeline": [row.to_json() for row in self.timeline],
        }


def cutover_names(engine: Engine) -> list[str]:
    """The names of every scheduled cutover, oldest first."""
    with transaction(engine) as tx:
        return [row.name for row in repo.list_cutovers(tx)]


def cutover_view(engine: Engine, plans: PlanCache, name: str, *, now: datetime) -> CutoverView:
    """The cutover page's content at ``now``; NotFoundError when there is no such cutover."""
    status = cutover_status(engine, cutover_name=name, now=now, next_limit=5)
    with transaction(engine) as tx:
        cutover = repo.find_cutover(tx, name)
        assert cutover.id is not None
        plan, _ = plans.get(cutover.plan_dir)
        occurrences = occurrence_store.occurrences(tx, cutover.id)
        counts = console_store.lane_counts(tx, cutover.id)
    end = cutover.start + plan.cutover.window
    zones = [
        ZoneTimes(
            key,
            audience.title,
            audience.timezone,
            format_local(cutover.start, audience.timezone),
            format_local(end, audience.timezone),
        )
        for key, audience in plan.audiences.items()
    ]
    by_lane: dict[int, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))
    for count in counts:
        by_lane[count.occurrence_id][f"{count.audience}/{count.channel}"][count.state] = count.count
    lanes: list[str] = []
    rows: list[TimelineRow] = []
    for occurrence in occurrences:
        assert occurrence.id is not None
        states = by_lane.get(occurrence.id, {})
        planned = (
            [
                f"{audience}/{channel}"
                for audience in filter(None, occurrence.audiences_csv.split(","))
                for channel in filter(None, occurrence.channels_csv.split(","))
                if audience not in plan.audiences
                or channel in {c.value for c in plan.audiences[audience].channels.kinds()}
            ]
            if not states
            else list(states)
        )
        cells = {lane: _lane_state(occurrence.state, states.get(lane)) for lane in planned}
        lanes.extend(lane for lane in cells if lane not in lanes)
        rows.append(
            TimelineRow(
                occurrence.key, occurrence.message, occurrence.trigger, occurrence.state, occurrence.due_at, cells
            )
        )
    return CutoverView(status, plan.cutover.title, end, zones, sorted(lanes), rows)


def _lane_state(occurrence_state: str, counts: dict[str, int] | None) -> str:
    """A lane's state in one word (with counts when its deliveries differ): ``sent``, ``pending 2 · sent 3``."""
    if not counts:
        return {"dispatching": "pending", "done": "sent"}.get(occurrence_state, occurrence_state)
    present = [state for state in LANE_ORDER if counts.get(state)] + sorted(set(counts) - set(LANE_ORDER))
    if len(present) == 1:
        return present[0]
    return " · ".join(f"{state} {counts[state]}" for state in present)
