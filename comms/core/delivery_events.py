"""What a provider's delivery events (SendGrid's Event Webhook) say about one delivery. Pure.

Events arrive batched, repeated and out of order, so a delivery keeps two things that do not depend
on arrival order: its **last event** (the latest by the provider's timestamp; a tie keeps the one
already stored) and its **outcome**, the strongest event seen: ``bounced`` or ``dropped`` (the
mail will not arrive) over ``delivered`` (also implied by an open or a click) over ``deferred``
(the receiving server asked to wait) over ``processed``. ``spamreport`` is recorded as an event,
and an outcome of its own only for a delivery that had none.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = ["COUNTED_OUTCOMES", "DeliveryEvent", "DeliveryEventState", "EVENT_OUTCOME", "OUTCOME_RANK", "merge_event"]

EVENT_OUTCOME = {
    "processed": "processed",
    "deferred": "deferred",
    "delivered": "delivered",
    "open": "delivered",
    "click": "delivered",
    "bounce": "bounced",
    "dropped": "dropped",
    "spamreport": "spamreport",
}
"""The outcome each SendGrid event type implies."""

OUTCOME_RANK = {"processed": 0, "spamreport": 1, "deferred": 2, "delivered": 3, "dropped": 4, "bounced": 5}
COUNTED_OUTCOMES = ("delivered", "bounced", "dropped", "deferred")
"""The outcomes ``status --json`` counts."""


@dataclass(frozen=True)
class DeliveryEvent:
    """One provider event for one delivery key."""

    delivery_key: str
    event: str
    at: datetime
    reason: str | None = None
    delivery_id: int | None = None
    """The row id comms sent beside the key (absent in events of sends from before it did)."""


@dataclass(frozen=True)
class DeliveryEventState:
    """A delivery's last provider event and its outcome so far."""

    last_event: str
    last_event_at: datetime
    outcome: str
    reason: str | None


def merge_event(current: DeliveryEventState | None, event: DeliveryEvent) -> DeliveryEventState | None:
    """The state after ``event``; None when the event changes nothing (a duplicate or an older, weaker one)."""
    outcome = EVENT_OUTCOME.get(event.event)
    if outcome is None:
        return None
    if current is None:
        return DeliveryEventState(event.event, event.at, outcome, event.reason)
    later = event.at > current.last_event_at
    stronger = OUTCOME_RANK[outcome] > OUTCOME_RANK.get(current.outcome, -1)
    if not later and not stronger:
        return None
    return DeliveryEventState(
        last_event=event.event if later else current.last_event,
        last_event_at=event.at if later else current.last_event_at,
        outcome=outcome if stronger else current.outcome,
        reason=event.reason if stronger and event.reason else current.reason,
    )
