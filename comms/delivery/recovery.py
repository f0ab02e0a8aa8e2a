"""After a crash: settle what a dead process left in flight, and put deliveries back on request.

A claim token names its process (``host:pid:nonce``). Rows claimed by a process that no longer runs
are asked about at the provider (``Channel.reconcile``): sent, not sent (back to pending), or nobody
can tell (``uncertain``, shown, and re-sent only by ``comms retry --uncertain``).
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Mapping, Sequence
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
from comms.store.tables import ContentRow, CutoverRow, DeliveryRow, OccurrenceRow

log = logging.getLogger(__name__)

DIED_IN_FLIGHT = (
    "the process died while this request may have been in flight; re-send with 'comms retry --uncertain'"
)


def new_claim_token() -> str:
    """A claim token naming this process: ``host:pid:nonce``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def claim_is_live(claim: str | None) -> bool:
    """Whether the process named by a claim token still runs on this host."""
    if not claim:
        return False
    host, _, rest = claim.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover(
    engine: Engine, channels: Mapping[ChannelKind, Channel], plans: PlanCache, clock: Clock
) -> dict[str, int]:
    """Reconcile deliveries a dead process left in flight: sent, back to pending, or uncertain."""
    counts = {"sent": 0, "pending": 0, "uncertain": 0}
    with Session(engine, expire_on_commit=False) as session:
        claims = session.exec(select(DeliveryRow.claim).where(DeliveryRow.state == "in_flight").distinct()).all()
    for claim in claims:
        if claim is None or claim_is_live(claim):
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
