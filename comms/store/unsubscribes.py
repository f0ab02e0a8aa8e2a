"""Who unsubscribed through their email link: one row per audience and address, written once.

``record_unsubscribe`` is what the console's one-click endpoint calls; ``unsubscribed_addresses`` is read
when an end-user message is materialized, beside the audience's suppression list in the plan.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from comms.store.engine import Engine
from comms.store.tables import UnsubscribeRow
from comms.store.transaction import add_once

__all__ = ["record_unsubscribe", "unsubscribed_addresses", "unsubscribed_at"]


def record_unsubscribe(engine: Engine, audience: str, address: str, *, now: datetime) -> bool:
    """Record that ``address`` left ``audience``; False when it had already (a replayed link changes nothing)."""
    return add_once(engine, UnsubscribeRow(audience=audience, address=address.strip().lower(), at=now))


def unsubscribed_at(engine: Engine, audience: str, address: str) -> datetime | None:
    """When ``address`` unsubscribed from ``audience``, if it did."""
    with Session(engine) as session:
        row = session.exec(
            select(UnsubscribeRow).where(
                UnsubscribeRow.audience == audience, UnsubscribeRow.address == address.strip().lower()
            )
        ).first()
    return row.at if row is not None else None


def unsubscribed_addresses(session: Session, audience: str) -> frozenset[str]:
    """Every address (lower case) that unsubscribed from ``audience`` through its link."""
    rows = session.exec(select(UnsubscribeRow.address).where(col(UnsubscribeRow.audience) == audience)).all()
    return frozenset(rows)
