"""Recording what a request came back with: sent, failed (retry or dead), held, uncertain.

Each outcome is one short transaction of the ledger. A failure that kills deliveries, or holds a whole
channel, is escalated by the failure hook inside the same transaction, so the two commit together; if
escalating itself fails, the failure is recorded alone (and the error logged). The dispatcher decides
which outcome a request had and what its lane does next; this module only writes it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from comms.channels.base import Receipt
from comms.clock import Clock
from comms.delivery.envelopes import ThreadSlot, remember_ref
from comms.errors import ChannelError, PermanentChannelError
from comms.store import ledger
from comms.store import occurrences as occurrence_store
from comms.store import repository as repo
from comms.store.engine import Engine
from comms.store.ledger import Claim, RetryDelay
from comms.store.tables import CutoverRow, OccurrenceRow
from comms.store.transaction import Transaction, transaction

__all__ = ["Batch", "FailureCounts", "FailureHook", "OutcomeRecorder"]

log = logging.getLogger(__name__)

FailureHook = Callable[[Transaction, CutoverRow, OccurrenceRow, str], None]
"""Escalates a failed occurrence (dead deliveries, missed) inside the transaction that records the failure."""


@dataclass(frozen=True)
class Batch:
    """One claimed batch whose request came back: what its outcome is recorded against."""

    task: str
    """The occurrence key, for logs."""
    cutover_id: int
    occurrence_id: int
    channel: str
    claim: Claim
    slot: ThreadSlot | None


@dataclass(frozen=True)
class FailureCounts:
    """What a recorded failure did to its batch's deliveries."""

    dead: int = 0
    retrying: int = 0


class OutcomeRecorder:
    """Writes request outcomes through the ledger, escalating failures with ``on_failure`` in the same transaction."""

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Clock,
        max_attempts: int,
        delay: RetryDelay,
        on_failure: FailureHook | None,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.max_attempts = max_attempts
        self.delay = delay
        self.on_failure = on_failure

    def sent(self, batch: Batch, receipt: Receipt) -> int:
        """The provider accepted the batch: mark its rows sent and keep the thread reference; return how many."""
        with transaction(self.engine) as tx:
            count = ledger.record_sent(tx, batch.claim, provider_id=receipt.provider_id, now=self.clock())
            remember_ref(tx, batch.cutover_id, batch.slot, receipt)
            tx.commit()
        return count

    def uncertain(self, batch: Batch, error: str) -> None:
        """The request may have been delivered and nobody can tell: out of automatic retries."""
        with transaction(self.engine) as tx:
            ledger.record_uncertain(tx, batch.claim, error, now=self.clock())
            tx.commit()

    def failed(self, batch: Batch, error: ChannelError, *, retry_after: float | None, permanent: bool) -> FailureCounts:
        """Record the failure (retry later, or dead after the last attempt); escalate the rows that died."""
        log.warning("send failed (%s): %s", "permanent" if permanent else "transient", error)
        counts = FailureCounts()

        def write(tx: Transaction) -> str | None:
            nonlocal counts
            outcome = ledger.record_failure(
                tx,
                batch.claim,
                str(error),
                retry_after=retry_after,
                permanent=permanent,
                max_attempts=self.max_attempts,
                delay=self.delay,
                now=self.clock(),
            )
            counts = FailureCounts(dead=outcome.dead, retrying=outcome.retrying)
            return f"{outcome.dead} delivery(ies) dead: {error}" if outcome.dead else None

        self._commit_with_escalation(batch, write)
        return counts

    def held(self, batch: Batch, error: PermanentChannelError, *, escalate: bool) -> int:
        """Hold the channel's waiting rows until a person acts; escalate (once, with the remedy) if asked."""
        held = 0

        def write(tx: Transaction) -> str | None:
            nonlocal held
            held = ledger.hold_channel_rows(tx, batch.claim, batch.channel, str(error), now=self.clock())
            log.error("%s held (%s deliveries): %s", batch.channel, held, error)
            if not escalate:
                return None
            return (
                f"{batch.channel} is held, {held} deliveries waiting: {error.reason}. "
                f"Fix: {error.remedy}; then run 'comms retry --held'."
            )

        self._commit_with_escalation(batch, write)
        return held

    def _commit_with_escalation(self, batch: Batch, write: Callable[[Transaction], str | None]) -> None:
        """Run ``write`` and escalate what it returns in one transaction; if escalating fails, record alone."""
        for escalate in (True, False):
            with transaction(self.engine, keep_loaded=True) as tx:
                reason = write(tx)
                try:
                    if reason and escalate and self.on_failure:
                        occurrence = occurrence_store.get_occurrence(tx, batch.occurrence_id)
                        if occurrence is not None:
                            self.on_failure(tx, repo.get_cutover(tx, batch.cutover_id), occurrence, reason)
                    tx.commit()
                    return
                except Exception:
                    if not escalate:
                        raise
                    log.exception("could not escalate %s (%s); recording the failure alone", batch.task, reason)
                    tx.rollback()
