"""After a crash: settle what a dead process left in flight, and put deliveries back on request.

A claim token names its lease owner (``<owner>/<nonce>``, see ``comms.store.lease``). Claims belong to a
lease, not a PID: whoever sends settles, on every tick, the claims of every owner that is neither itself
nor a live lease holder. A batch whose attempt was only ``claimed`` never left: back to pending. One
whose request had started is asked about at the provider (``Channel.reconcile``): sent, not sent (back to
pending), or nobody can tell (``uncertain``, shown, and re-sent only by ``comms retry --uncertain``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime

from sqlalchemy import Engine, update
from sqlmodel import Session, col, select

from comms.channels.base import Channel, Reconciliation
from comms.clock import Clock
from comms.core.content import content_from_json
from comms.delivery.envelopes import build_envelope, remember_ref
from comms.errors import ChannelError
from comms.plan.cache import PlanCache
from comms.plan.models import Channel as ChannelKind
from comms.store import lease, ledger
from comms.store.tables import ContentRow, CutoverRow, DeliveryRow, OccurrenceRow

log = logging.getLogger(__name__)

DIED_IN_FLIGHT = "the process died while this request may have been in flight; re-send with 'comms retry --uncertain'"


def new_claim_token(owner: str) -> str:
    """A claim token of the lease owner ``owner``: ``<owner>/<nonce>``."""
    return f"{owner}/{uuid.uuid4().hex[:12]}"


def claim_owner(claim: str) -> str:
    """The lease owner a claim token belongs to (a token from before leases is its own owner)."""
    return claim.rpartition("/")[0] or claim


def claim_is_live(claim: str | None, *, owner: str, live_owners: Collection[str]) -> bool:
    """Whether a claim belongs to this sender or to a live lease holder (so its request may still be out)."""
    if not claim:
        return False
    return claim_owner(claim) == owner or claim_owner(claim) in live_owners


def recover(
    engine: Engine, channels: Mapping[ChannelKind, Channel], plans: PlanCache, clock: Clock, *, owner: str
) -> dict[str, int]:
    """Reconcile deliveries a dead sender left in flight: sent, back to pending, or uncertain."""
    counts = {"sent": 0, "pending": 0, "uncertain": 0}
    claims = ledger.in_flight_claims(engine)
    if not claims:
        return counts
    live = lease.live_owners(engine, now=clock())
    for claim in claims:
        if claim_is_live(claim, owner=owner, live_owners=live):
            continue
        if ledger.attempt_outcome(engine, claim) == "claimed":
            counts["pending"] += ledger.release_unsent(engine, claim, now=clock())
            continue
        with Session(engine, expire_on_commit=False) as session:
            rows = session.exec(select(DeliveryRow).where(DeliveryRow.claim == claim)).all()
            if not rows:
                continue
            occurrence = session.get(OccurrenceRow, rows[0].occurrence_id)
            cutover = session.get(CutoverRow, rows[0].cutover_id)
            content = session.get(ContentRow, rows[0].content_id)
            assert occurrence is not None and cutover is not None and content is not None
            plan, _ = plans.get(cutover.plan_dir)
            envelope, slot = build_envelope(
                session, plan, cutover, occurrence, content_from_json(content.body_json), rows
            )
            try:
                verdict = channels[ChannelKind(rows[0].channel)].reconcile(envelope)
            except ChannelError as exc:
                log.warning("could not reconcile %s: %s", occurrence.key, exc)
                verdict = Reconciliation("unknown")
            now = clock()
            provider_id = verdict.receipt.provider_id if verdict.receipt else None
            for row in rows:
                row.claim = None
                row.updated_at = now
                if verdict.state == "sent":
                    row.state, row.sent_at = "sent", now
                    row.provider_id = provider_id or row.provider_id
                elif verdict.state == "not_sent":
                    row.state = "pending"
                else:
                    row.state, row.last_error = "uncertain", DIED_IN_FLIGHT
                session.add(row)
            outcome = {"sent": "sent", "not_sent": "pending"}.get(verdict.state, "uncertain")
            counts[outcome] += len(rows)
            if verdict.state == "sent" and verdict.receipt:
                remember_ref(session, rows[0].cutover_id, slot, verdict.receipt)
            session.commit()
    return counts


def retry_deliveries(engine: Engine, *, cutover_id: int, states: Sequence[str], now: datetime) -> int:
    """Put uncertain (or dead) deliveries back to pending so the next tick sends them again."""
    with Session(engine) as session:
        result = session.execute(
            update(DeliveryRow)
            .where(col(DeliveryRow.cutover_id) == cutover_id, col(DeliveryRow.state).in_(states))
            .values(state="pending", next_attempt_at=None, attempts=0, claim=None, updated_at=now)
        )
        occurrence_ids = session.exec(
            select(DeliveryRow.occurrence_id)
            .where(DeliveryRow.cutover_id == cutover_id, DeliveryRow.state == "pending")
            .distinct()
        ).all()
        if occurrence_ids:
            session.execute(
                update(OccurrenceRow)
                .where(col(OccurrenceRow.id).in_(occurrence_ids), col(OccurrenceRow.state).in_(("done", "missed")))
                .values(state="dispatching", finished_at=None)
            )
        session.commit()
        return int(result.rowcount)  # type: ignore[attr-defined]
