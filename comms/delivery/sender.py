"""One sender at a time: the lease a sending process holds, and how a command gets its messages sent.

``SenderLease`` takes the sender lease (``comms.store.lease``) for a dispatcher and keeps it alive with a
heartbeat thread; when a renewal finds the lease taken (this process stalled past its expiry), it sets
the dispatcher's stop flag, so two processes never send side by side for longer than one batch.

``send_queued`` is what commands that cause sends (``event``, ``incident``, ``send``, ``retry``) call
after writing their rows: with a live worker holding the lease it wakes the worker and waits for the
rows to be settled; with none, it takes the lease for its own messages and releases it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from comms.clock import Clock, utc_now
from comms.delivery.dispatcher import Dispatcher, TickReport
from comms.errors import SenderError
from comms.store import lease, sending_queries
from comms.store.lease import LeaseHolder
from comms.store.sending_queries import QueuedOutcome

__all__ = ["SendResult", "SenderLease", "send_queued"]

log = logging.getLogger(__name__)


class SenderLease:
    """The sender lease of one dispatcher: acquire (or wait as standby), heartbeat, release."""

    def __init__(self, dispatcher: Dispatcher, *, role: str, ttl: float, clock: Clock = utc_now) -> None:
        self.dispatcher = dispatcher
        self.role = role
        self.ttl = ttl
        self.clock = clock
        """The real clock: a lease is judged across processes, never on a test's simulated time."""
        self.held = False
        self.lost = False
        self._heartbeat: threading.Thread | None = None
        self._stop_heartbeat = threading.Event()

    @property
    def owner(self) -> str:
        """The owner id the lease and every claim of this dispatcher carry."""
        return self.dispatcher.owner

    def try_acquire(self) -> LeaseHolder | None:
        """Take the lease if nobody live holds it; return the live holder when someone else does."""
        engine = self.dispatcher.engine
        if lease.acquire(engine, self.owner, role=self.role, now=self.clock(), ttl=self.ttl) is not None:
            self.held = True
            self._start_heartbeat()
            return None
        return lease.holder(engine, now=self.clock())

    def other_workers(self) -> list[LeaseHolder]:
        """The other live workers on this database (on PostgreSQL several may hold leases at once)."""
        holders = lease.live_holders(self.dispatcher.engine, now=self.clock())
        return [found for found in holders if found.owner != self.owner and found.role == self.role]

    def wait_for(self, *, on_wait: Callable[[LeaseHolder], None], poll: float = 0.5) -> bool:
        """Stand by until the lease is ours (True) or the dispatcher is asked to stop (False)."""
        told = False
        while not self.dispatcher.stop_requested.is_set():
            other = self.try_acquire()
            if self.held:
                return True
            if other is not None and not told:
                on_wait(other)
                told = True
            self.dispatcher.stop_requested.wait(poll)
        return False

    def release(self) -> None:
        """Stop the heartbeat and give the lease up at once (a standby takes over without waiting)."""
        self._stop_heartbeat.set()
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=self.ttl)
            self._heartbeat = None
        if self.held:
            lease.release(self.dispatcher.engine, self.owner)
            self.held = False

    def _start_heartbeat(self) -> None:
        if self._heartbeat is not None:
            return
        self._stop_heartbeat.clear()
        self._heartbeat = threading.Thread(target=self._beat, name="comms-lease", daemon=True)
        self._heartbeat.start()

    def _beat(self) -> None:
        interval = max(self.ttl / 4, 0.2)
        while not self._stop_heartbeat.wait(interval):
            try:
                still_ours = lease.renew(self.dispatcher.engine, self.owner, now=self.clock(), ttl=self.ttl)
            except Exception:  # the database is briefly unavailable: try again at the next beat
                log.warning("could not renew the sender lease; retrying", exc_info=True)
                continue
            if not still_ours:
                log.error("the sender lease was taken by another process; stopping after the requests in flight")
                self.lost = True
                self.held = False
                self.dispatcher.stop_requested.set()
                return


@dataclass(frozen=True)
class SendResult:
    """What became of the rows a command queued, and who sent them."""

    report: TickReport
    sent_by: str
    """``this command`` or the worker that holds the lease."""
    settled: bool = True
    """False when ``--no-wait`` returned at once, or the wait timed out with rows still open."""


def send_queued(
    dispatcher: Dispatcher,
    occurrence_ids: Sequence[int],
    *,
    ttl: float,
    wait: bool = True,
    timeout: float = 600.0,
    poll: float = 0.25,
    clock: Clock = utc_now,
) -> SendResult:
    """Send what a command queued through the one sender: the live worker if there is one, else ourselves."""
    engine = dispatcher.engine
    keeper = SenderLease(dispatcher, role="command", ttl=ttl, clock=clock)
    holder = keeper.try_acquire()
    if keeper.held:
        try:
            return SendResult(dispatcher.dispatch_now(occurrence_ids), "this command")
        finally:
            keeper.release()
    if holder is None:  # the holder let go between our two looks: try once more
        return send_queued(dispatcher, occurrence_ids, ttl=ttl, wait=wait, timeout=timeout, poll=poll, clock=clock)
    lease.wake(engine)
    described = holder.describe(clock())
    if not wait:
        return SendResult(TickReport(), f"the worker, {described}", settled=False)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if dispatcher.stop_requested.wait(poll):
            break
        progress = sending_queries.outcome_of(engine, occurrence_ids, now=dispatcher.clock(), count_unsettled=False)
        if progress.settled:
            return SendResult(_as_report(progress), f"the worker, {described}")
        if lease.holder(engine, now=clock()) is None:
            raise SenderError(
                f"the worker ({described}) stopped before sending this; its rows are queued for the next 'comms run'"
            )
    progress = sending_queries.outcome_of(engine, occurrence_ids, now=dispatcher.clock())
    return SendResult(_as_report(progress), f"the worker, {described}", settled=progress.settled)


def _as_report(outcome: QueuedOutcome) -> TickReport:
    states = outcome.states
    return TickReport(
        sent=states.get("sent", 0),
        retrying=states.get("pending", 0),
        dead=states.get("dead", 0),
        missed=states.get("missed", 0),
        requests=outcome.requests,
    )
