"""Communication metrics of a cutover, computed from the delivery log (used by templates and reports).

Every figure is an aggregate query (GROUP BY in SQLite), so a cutover with a million deliveries
costs a few index scans, never a million rows in memory.

- Delivery rate: sent deliveries over all deliveries except cancelled and covered ones (a cancelled cutover's
  unsent rows were never meant to go out).
- Lateness: per occurrence, its first successful send minus its ``due_at``. An occurrence that was
  due and sent nothing (missed, or every delivery dead) counts as not on time; one still sending
  with nothing sent yet is left out until it settles.
- Escalations: the notices sent because something needed a person: incident level notices
  (``notified``) and escalated delivery failures and missed messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from comms.core import jsoncodec
from comms.store import reporting
from comms.store.tables import CutoverRow
from comms.store.transaction import Transaction

__all__ = [
    "ESCALATION_KINDS",
    "ON_TIME_SECONDS",
    "OccurrenceLateness",
    "SETTLED_OCCURRENCE_STATES",
    "communication_metrics",
    "occurrence_lateness",
    "percentile",
    "rate",
    "stored_kpis",
]

ON_TIME_SECONDS = 60.0
"""An occurrence is on time when its first successful send left within this many seconds of its due time."""

SETTLED_OCCURRENCE_STATES = ("dispatching", "done", "missed")
"""Occurrences that came due and were not cancelled or held."""

ESCALATION_KINDS = ("notified", "delivery_failure", "missed")
"""Escalation steps that paged someone (see ``comms.store.incident_tables``)."""


@dataclass(frozen=True)
class OccurrenceLateness:
    """When an occurrence was due and when its first delivery went out (None: nothing went out)."""

    occurrence_id: int
    key: str
    message: str
    due_at: datetime
    first_sent_at: datetime | None
    state: str

    @property
    def seconds(self) -> float | None:
        """Seconds late (never negative), or None when nothing was sent."""
        if self.first_sent_at is None:
            return None
        return max((self.first_sent_at - self.due_at).total_seconds(), 0.0)

    @property
    def on_time(self) -> bool:
        """Whether the first send left within ``ON_TIME_SECONDS`` of the due time."""
        seconds = self.seconds
        return seconds is not None and seconds <= ON_TIME_SECONDS


def communication_metrics(tx: Transaction, cutover: CutoverRow) -> dict[str, Any]:
    """Delivery counts and rates, on-time rate and lateness, escalations, plus the migration KPIs given by the user."""
    assert cutover.id is not None
    counts = reporting.delivery_state_counts(tx, cutover.id)
    total = sum(count for state, count in counts.items() if state not in ("cancelled", "covered", "suppressed"))
    sent = counts.get("sent", 0)
    lateness = occurrence_lateness(tx, cutover.id)
    values = sorted(v for v in (item.seconds for item in lateness) if v is not None)
    return {
        "deliveries_sent": sent,
        "deliveries_total": total,
        "delivery_rate": rate(sent, total),
        "on_time_rate": rate(sum(1 for item in lateness if item.on_time), len(lateness)),
        "lateness_median_seconds": percentile(values, 50),
        "lateness_p95_seconds": percentile(values, 95),
        "lateness_max_seconds": round(values[-1], 1) if values else 0.0,
        "dead": counts.get("dead", 0),
        "uncertain": counts.get("uncertain", 0),
        "missed": counts.get("missed", 0),
        "suppressed": counts.get("suppressed", 0),
        "missed_occurrences": sum(1 for item in lateness if item.state == "missed"),
        "retries": reporting.transient_attempts(tx, cutover.id),
        "escalations": reporting.escalation_count(tx, cutover.id, kinds=ESCALATION_KINDS),
        "kpis": stored_kpis(cutover),
    }


def occurrence_lateness(tx: Transaction, cutover_id: int) -> list[OccurrenceLateness]:
    """Per settled occurrence, its due time and first successful send, in due order."""
    rows = reporting.first_sends(tx, cutover_id, states=SETTLED_OCCURRENCE_STATES)
    result = []
    for occurrence, first in rows:
        if occurrence.due_at is None or occurrence.id is None:
            continue
        if first is None and occurrence.state == "dispatching":
            continue  # still sending: not settled yet
        result.append(
            OccurrenceLateness(
                occurrence_id=occurrence.id,
                key=occurrence.key,
                message=occurrence.message,
                due_at=occurrence.due_at,
                first_sent_at=first,
                state=occurrence.state,
            )
        )
    return result


def stored_kpis(cutover: CutoverRow) -> dict[str, str]:
    """The migration's own KPIs stored with ``comms kpis set`` (name -> value), in file order."""
    data = jsoncodec.loads(cutover.metrics_json) or {}
    return {str(name): str(value) for name, value in dict(data).items()}


def rate(part: int, whole: int) -> float:
    """``part`` as a percentage of ``whole`` with one decimal (100.0 when there is nothing to count)."""
    return round(100.0 * part / whole, 1) if whole else 100.0


def percentile(sorted_values: list[float], pct: float) -> float:
    """The nearest-rank percentile of already sorted values, rounded to 0.1 (0.0 for no values)."""
    if not sorted_values:
        return 0.0
    rank = max(1, -(-len(sorted_values) * pct // 100))  # ceil(n * pct / 100), at least 1
    return round(sorted_values[int(rank) - 1], 1)
