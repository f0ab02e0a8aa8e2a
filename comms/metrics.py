"""Communication metrics of a cutover, computed from the delivery log (used by templates and reports)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func
from sqlmodel import Session, select

from comms import jsoncodec
from comms.store.tables import CutoverRow, DeliveryRow, OccurrenceRow


def communication_metrics(session: Session, cutover: CutoverRow) -> dict[str, Any]:
    """Delivery counts and rates, on-time rate and p95 lateness, plus the migration KPIs given by the user."""
    counts = dict(
        session.exec(
            select(DeliveryRow.state, func.count())
            .where(DeliveryRow.cutover_id == cutover.id)
            .group_by(DeliveryRow.state)
        ).all()
    )
    total = sum(counts.values())
    sent = counts.get("sent", 0)
    lateness = _lateness_seconds(session, cutover)
    on_time = [value for value in lateness if value <= 60]
    return {
        "deliveries_sent": sent,
        "deliveries_total": total,
        "delivery_rate": round(100.0 * sent / total, 1) if total else 100.0,
        "on_time_rate": round(100.0 * len(on_time) / len(lateness), 1) if lateness else 100.0,
        "lateness_p95_seconds": _percentile(lateness, 95),
        "dead": counts.get("dead", 0),
        "escalations": 0,
        "kpis": dict(jsoncodec.loads(cutover.metrics_json) or {}),
    }


def _lateness_seconds(session: Session, cutover: CutoverRow) -> list[float]:
    rows = session.exec(
        select(OccurrenceRow.due_at, func.min(DeliveryRow.sent_at))
        .join(DeliveryRow, DeliveryRow.occurrence_id == OccurrenceRow.id)
        .where(OccurrenceRow.cutover_id == cutover.id, DeliveryRow.state == "sent")
        .group_by(OccurrenceRow.id)
    ).all()
    values = []
    for due_at, first_sent in rows:
        if due_at is not None and first_sent is not None:
            first = first_sent if first_sent.tzinfo else first_sent.replace(tzinfo=due_at.tzinfo)
            values.append(max((first - due_at).total_seconds(), 0.0))
    return sorted(values)


def _percentile(values: list[float], pct: float) -> float:
    if not values:
        return 0.0
    index = min(len(values) - 1, max(0, round(pct / 100 * len(values) + 0.5) - 1))
    return round(values[index], 1)
