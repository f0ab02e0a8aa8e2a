"""After a crash: settle what a dead process left in flight, and put deliveries back on request.

A claim token names its lease owner (``<owner>/<nonce>``, see ``comms.store.lease``). Claims belong to a
lease, not a PID: whoever sends settles, on every tick, the claims of every owner that is neither itself
nor a live lease holder. A batch whose attempt was only ``claimed`` never left: back to pending. One
whose request had started is asked about at the provider (``Channel.reconcile``): sent, not sent (back to
pending), or nobody can tell (``uncertain``, shown, and re-sent only by ``comms retry --uncertain``).
"""

from __future__ import annotations

import itertools
import logging
import uuid
from collections.abc import Collection, Mapping

from comms.channels.base import Channel, Reconciliation
from comms.clock import Clock
from comms.core.content import content_from_json
from comms.delivery.envelopes import build_envelope, remember_ref
from comms.errors import ChannelError
from comms.plan.cache import PlanCache
from comms.plan.fields import Channel as ChannelKind
from comms.store import lease, ledger, ledger_repair, recipient_writes
from comms.store import occurrences as occurrence_store
from comms.store import repository as repo
from comms.store.engine import Engine
from comms.store.transaction import transaction

__all__ = ["DIED_IN_FLIGHT", "claim_is_live", "claim_owner", "new_claim_token", "recover"]

log = logging.getLogger(__name__)

DIED_IN_FLIGHT = "the process died while this request may have been in flight; re-send with 'comms retry --uncertain'"


_TOKEN_PREFIX = uuid.uuid4().hex[:8]
_TOKEN_COUNTER = itertools.count(1)


def new_claim_token(owner: str) -> str:
    """A claim token of the lease owner ``owner``: ``<owner>/<nonce>``, the nonce unique to this process and
    claim (drawn once per process, then counted: a claim per request made urandom a cost under load)."""
    return f"{owner}/{_TOKEN_PREFIX}{next(_TOKEN_COUNTER):x}"


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
    claims = ledger_repair.in_flight_claims(engine)
    if not claims:
        return counts
    live = lease.live_owners(engine, now=clock())
    for claim in claims:
        if claim_is_live(claim, owner=owner, live_owners=live):
            continue
        if ledger_repair.attempt_outcome(engine, claim) == "claimed":
            counts["pending"] += ledger.release_unsent(engine, claim, now=clock())
            continue
        with transaction(engine, keep_loaded=True) as tx:
            rows = ledger_repair.claimed_rows(tx, claim)
            if not rows:
                continue
            occurrence = occurrence_store.get_occurrence(tx, rows[0].occurrence_id)
            cutover = repo.get_cutover(tx, rows[0].cutover_id)
            content = recipient_writes.get_content(tx, rows[0].content_id)
            assert occurrence is not None
            plan, _ = plans.get(cutover.plan_dir)
            envelope, slot = build_envelope(tx, plan, cutover, occurrence, content_from_json(content.body_json), rows)
            try:
                verdict = channels[ChannelKind(rows[0].channel)].reconcile(envelope)
            except ChannelError as exc:
                log.warning("could not reconcile %s: %s", occurrence.key, exc)
                verdict = Reconciliation("unknown")
            provider_id = verdict.receipt.provider_id if verdict.receipt else None
            ledger_repair.settle_reconciled(
                tx, claim, verdict.state, provider_id=provider_id, error=DIED_IN_FLIGHT, now=clock()
            )
            outcome = {"sent": "sent", "not_sent": "pending"}.get(verdict.state, "uncertain")
            counts[outcome] += len(rows)
            if verdict.state == "sent" and verdict.receipt:
                remember_ref(tx, rows[0].cutover_id, slot, verdict.receipt)
            tx.commit()
    return counts
