"""Due occurrences -> rendered messages -> channel sends -> delivery rows; retries, pacing, K in flight.

A tick serves the due occurrences round-robin: one batch per lane (occurrence x audience x channel)
per turn, re-reading what is due between turns, with up to ``max_in_flight`` requests in flight
(Slack and the status page keep one: their limits are per channel and per page). The main thread
claims, builds envelopes and records outcomes; a thread pool makes the requests (the channel builds
its body there, then marks the attempt ``started`` through its ``leaving`` callback just before the
first byte goes, so a crash before that leaves the batch pending, not uncertain), so claiming the
next batch overlaps with the requests in flight. Before every claim the sender looks at its stop flag and
the occurrence's lateness bound; a rollback or cancel flips pending rows to ``cancelled``, so the
next claim finds nothing: events reach a send in flight within one batch. Opening a due occurrence
and writing its rows one chunk per turn is ``comms.delivery.opening``, so a big message's first
request leaves after one chunk. How fast each provider may be asked is ``comms.delivery.shared_pacing``.
Claims are ``comms.store.ledger``; what a request came back with is written by
``comms.delivery.outcomes``; what a dead process left in flight is settled by
``comms.delivery.recovery`` on every tick.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from comms.channels.base import Channel, Envelope, Receipt, Reconciliation
from comms.clock import Clock
from comms.delivery.envelopes import ThreadSlot, build_envelope
from comms.delivery.materialize import MetricsProvider
from comms.delivery.opening import WRITER_AFTER, OccurrenceOpener
from comms.delivery.outcomes import Batch, FailureHook, OutcomeRecorder
from comms.delivery.progress import NULL_PROGRESS, ProgressSink, SendSummary
from comms.delivery.recovery import new_claim_token, recover
from comms.delivery.sending import Sending, TickReport
from comms.delivery.shared_pacing import SERIAL_KINDS, RequestPacing
from comms.errors import ChannelError, PermanentChannelError, TransientChannelError
from comms.plan.cache import PlanCache
from comms.plan.fields import Channel as ChannelKind
from comms.store import ledger, sending_queries
from comms.store import occurrences as occurrence_store
from comms.store.engine import Engine
from comms.store.lease import new_owner_id
from comms.store.ledger import Claim, Lane
from comms.store.transaction import transaction

__all__ = ["Dispatcher", "FailureHook", "RetryPolicy", "Sleeper", "TickHook", "TickReport"]

log = logging.getLogger(__name__)

Sleeper = Callable[[float], None]
TickHook = Callable[[Engine, datetime], None]
"""Runs at the start of every tick (escalation timers); may add due occurrences."""


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with exponential backoff that never undercuts the provider's Retry-After."""

    max_attempts: int = 6
    base_seconds: float = 5.0
    max_seconds: float = 600.0

    def delay(self, attempts: int, retry_after: float | None) -> float:
        """Seconds to wait before the next attempt after ``attempts`` failed ones."""
        backoff = min(self.base_seconds * 2 ** max(attempts - 1, 0), self.max_seconds)
        return max(backoff, retry_after or 0.0)


@dataclass(frozen=True)
class _Flight:
    """A batch whose request is out: everything needed to record its outcome."""

    sending: Sending
    lane: Lane
    claim: Claim
    slot: ThreadSlot | None
    channel: Channel
    envelope: Envelope
    left: threading.Event = field(default_factory=threading.Event)
    """Set once the attempt is recorded ``started``, just before the request's first byte goes out."""

    @property
    def batch(self) -> Batch:
        """What the batch's outcome is recorded against."""
        cutover_id, occurrence_id = self.sending.cutover.id, self.sending.occurrence.id
        assert cutover_id is not None and occurrence_id is not None
        return Batch(self.sending.task, cutover_id, occurrence_id, self.lane.channel, self.claim, self.slot)


@dataclass(frozen=True)
class _Answer:
    """What a request came back with: a receipt, or an error and (if it may have left) a reconciliation."""

    receipt: Receipt | None = None
    error: ChannelError | None = None
    verdict: Reconciliation | None = None


class Dispatcher:
    """Sends due occurrences through the channels and records every delivery's fate."""

    def __init__(
        self,
        engine: Engine,
        channels: Mapping[ChannelKind, Channel],
        *,
        clock: Clock,
        sleep: Sleeper,
        retry: RetryPolicy | None = None,
        plans: PlanCache | None = None,
        metrics: MetricsProvider,
        on_failure: FailureHook | None = None,
        slack_interval: float = 1.0,
        tick_hooks: Sequence[TickHook] = (),
        progress: ProgressSink = NULL_PROGRESS,
        max_in_flight: int = 8,
        owner: str | None = None,
        writer_after: int | None = WRITER_AFTER,
    ) -> None:
        self.engine = engine
        self.channels = channels
        self.clock = clock
        self.sleep = sleep
        self.retry = retry or RetryPolicy()
        self.plans = plans or PlanCache()
        self.metrics = metrics
        self.on_failure = on_failure
        self.outcomes = OutcomeRecorder(
            engine, clock=clock, max_attempts=self.retry.max_attempts, delay=self.retry.delay, on_failure=on_failure
        )
        self.slack_interval = slack_interval
        self.tick_hooks = list(tick_hooks)
        self.max_in_flight = max(1, max_in_flight)
        self.owner = owner or new_owner_id()
        """The lease owner id; every claim token this dispatcher makes starts with it."""
        self._opener = OccurrenceOpener(
            engine,
            plans=self.plans,
            clock=clock,
            metrics=metrics,
            on_failure=on_failure,
            progress=progress,
            owner=self.owner,
            writer_after=writer_after,
        )
        self.stop_requested = threading.Event()
        self.in_flight = 0
        """Deliveries whose request is out right now (read by a second Ctrl-C to say what it leaves)."""
        self._pool: ThreadPoolExecutor | None = None
        self._lane_limits: dict[Lane, int] = {}
        """Smaller batches for a lane whose request was refused over some recipients (halved per refusal)."""
        self._held_channels: set[str] = set()
        """Channels held in this tick after a channel-wide refusal (one escalation, no more requests)."""
        self._pacing = RequestPacing(engine, slack_interval=slack_interval, clock=clock, sleep=sleep)

    @property
    def progress(self) -> ProgressSink:
        """Where sends report their progress and their one line each (the CLI sets a terminal's)."""
        return self._opener.progress

    @progress.setter
    def progress(self, sink: ProgressSink) -> None:
        self._opener.progress = sink

    # -- the loop ------------------------------------------------------------------------------

    def tick(self, only: Sequence[int] | None = None) -> TickReport:
        """Send what is due (or only the given occurrences) until nothing more can go now, or a stop."""
        report = TickReport()
        for hook in self.tick_hooks:
            try:
                hook(self.engine, self.clock())
            except Exception:
                log.exception("tick hook %s failed; the next tick runs it again", hook)
        self.recover()
        self._held_channels.clear()
        sending: dict[int, Sending] = {}
        settled: set[int] = set()
        flights: dict[Future[_Answer], _Flight] = {}
        self._opener.look_for_unwritten = only is None
        try:
            while True:
                started = 0 if self.stop_requested.is_set() else self._fill(sending, settled, flights, only, report)
                if flights:
                    done, _ = wait(list(flights), return_when=FIRST_COMPLETED)
                    for future in done:
                        self._complete(flights.pop(future), future, report)
                    continue
                self._settle_idle(sending, settled)
                if self.stop_requested.is_set():
                    report.stopped = True
                    return report
                writing = any(current.writing for current in sending.values())
                if started == 0 and not writing and not self._has_unsettled_due(settled, only):
                    return report
                if started == 0 and writing:  # nothing to send until a child process writes more
                    self._opener.wait_for_writers(sending.values())
        finally:
            for future in list(flights):  # an error above: still record what the requests out did
                self._complete(flights.pop(future), future, report)
            for current in sending.values():
                self._opener.close(current)

    def dispatch_now(self, occurrence_ids: Sequence[int]) -> TickReport:
        """Send the given (just triggered) occurrences at once, waiting out short retries."""
        return self.tick(only=occurrence_ids)

    def run_until_idle(self, *, horizon: timedelta = timedelta(minutes=15)) -> TickReport:
        """Tick until nothing is due now or within ``horizon`` (retries wait out their backoff), or a stop."""
        total = TickReport()
        while True:
            report = self.tick()
            for name in ("sent", "retrying", "dead", "missed", "requests"):
                setattr(total, name, getattr(total, name) + getattr(report, name))
            total.occurrences.extend(report.occurrences)
            if report.stopped or self.stop_requested.is_set():
                total.stopped = True
                return total
            now = self.clock()
            with transaction(self.engine) as tx:
                upcoming = occurrence_store.next_due_at(tx)
            if upcoming is None or upcoming > now + horizon:
                return total
            if upcoming > now:
                self.sleep((upcoming - now).total_seconds())
            elif report.requests == 0 and report.missed == 0 and not report.occurrences:
                return total  # due but blocked (held until go): nothing more to do now

    def recover(self) -> dict[str, int]:
        """Settle what a dead process (or an expired lease) left in flight (``comms.delivery.recovery``)."""
        return recover(self.engine, self.channels, self.plans, self.clock, owner=self.owner)

    def close(self) -> None:
        """Stop the request threads (after the requests they are making)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    # -- filling the window ---------------------------------------------------------------------

    def _fill(
        self,
        sending: dict[int, Sending],
        settled: set[int],
        flights: dict[Future[_Answer], _Flight],
        only: Sequence[int] | None,
        report: TickReport,
    ) -> int:
        """Open what fell due, advance each materialization one chunk, and start batches in turns."""
        if only is None:
            self._opener.open_unwritten_rests(sending)
        with transaction(self.engine) as tx:
            due = [o.id for o in occurrence_store.due_occurrences(tx, self.clock()) if o.id is not None]
        for occurrence_id in due:
            if occurrence_id in settled or occurrence_id in sending or (only is not None and occurrence_id not in only):
                continue
            try:
                opened = self._opener.open(occurrence_id, report)
            except Exception:  # one broken occurrence must not stop the others
                log.exception("occurrence %s failed to open; it stays due for the next tick", occurrence_id)
                opened = None
            if opened is None:
                settled.add(occurrence_id)
            else:
                sending[occurrence_id] = opened
        for current in sending.values():
            if current.writing:
                self._opener.advance(current)
            if current.lanes and self.clock() > current.deadline:
                self._opener.miss_rest(current, report)
        started = 0
        while len(flights) < self.max_in_flight:
            self._drain(flights, report)  # a 429 that came back meanwhile holds its channel before the next claim
            turn = 0
            for current in list(sending.values()):
                for lane in list(current.lanes):
                    if len(flights) >= self.max_in_flight or self.stop_requested.is_set():
                        break
                    if lane not in current.lanes:
                        continue
                    if lane.channel in self._held_channels:
                        current.lanes.remove(lane)  # its rows are held; 'comms retry --held' resumes them
                        continue
                    if not self._has_room(lane, flights):
                        continue
                    flight = self._start_batch(current, lane)
                    if flight is None:
                        current.lanes.remove(lane)
                        continue
                    future = self._executor().submit(self._request, flight)
                    flights[future] = flight
                    current.in_flight += 1
                    self.in_flight += len(flight.claim.deliveries)
                    report.requests += 1
                    turn += 1
            started += turn
            if turn == 0:
                break
        return started

    def _drain(self, flights: dict[Future[_Answer], _Flight], report: TickReport) -> None:
        """Record every request that has come back, before the next claim is made."""
        for future in [f for f in flights if f.done()]:
            self._complete(flights.pop(future), future, report)

    def _has_room(self, lane: Lane, flights: Mapping[Future[_Answer], _Flight]) -> bool:
        kind = ChannelKind(lane.channel)
        if kind not in SERIAL_KINDS or self.channels[kind].dry_run:
            return True
        return not any(flight.lane.channel == lane.channel for flight in flights.values())

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.max_in_flight, thread_name_prefix="comms-send")
        return self._pool

    def _has_unsettled_due(self, settled: set[int], only: Sequence[int] | None) -> bool:
        with transaction(self.engine) as tx:
            due = [o.id for o in occurrence_store.due_occurrences(tx, self.clock()) if o.id is not None]
        return any(i not in settled and (only is None or i in only) for i in due)

    def _settle_idle(self, sending: dict[int, Sending], settled: set[int]) -> None:
        """Occurrences with no lane, no chunk left to write and nothing in flight are done for this tick."""
        for occurrence_id, current in list(sending.items()):
            if current.lanes or current.writing or current.in_flight:
                continue
            settled.add(occurrence_id)
            del sending[occurrence_id]
            self._opener.close(current)
            sending_queries.finish_if_done(self.engine, occurrence_id, now=self.clock())

    # -- one batch ------------------------------------------------------------------------------

    def _start_batch(self, sending: Sending, lane: Lane) -> _Flight | None:
        """Claim one batch of the lane and build its envelope; None when none is ready ("started" is marked later,
        by the channel, once the request is built and about to leave)."""
        channel = self.channels[ChannelKind(lane.channel)]
        assert sending.cutover.id is not None
        claim = ledger.claim_batch(
            self.engine,
            lane,
            cutover_id=sending.cutover.id,
            limit=min(channel.max_batch, self._lane_limits.get(lane, channel.max_batch)),
            token=new_claim_token(self.owner),
            now=self.clock(),
        )
        if claim is None:
            return None
        try:
            with transaction(self.engine) as tx:  # the Slack thread root or status-page incident so far
                envelope, slot = build_envelope(
                    tx,
                    sending.plan,
                    sending.cutover,
                    sending.occurrence,
                    sending.contents[lane.content_id],
                    claim.deliveries,
                )
        except Exception:
            ledger.release_claim(self.engine, claim)
            raise
        return _Flight(sending, lane, claim, slot, channel, envelope)

    def _request(self, flight: _Flight) -> _Answer:
        """In a request thread: pace, send, and if no answer came, ask the provider what happened."""
        channel, envelope = flight.channel, flight.envelope
        self._pacing.wait(channel, envelope.recipients[0].address)

        def leaving() -> None:  # built and paced: from now on a crash leaves the batch uncertain, not pending
            ledger.mark_started(self.engine, flight.claim, now=self.clock())
            flight.left.set()

        try:
            return _Answer(receipt=channel.send(envelope, leaving))
        except TransientChannelError as exc:
            if not exc.maybe_delivered:
                return _Answer(error=exc)
            try:
                return _Answer(error=exc, verdict=channel.reconcile(envelope))
            except ChannelError as reconcile_error:
                log.warning("could not reconcile %s: %s", flight.sending.task, reconcile_error)
                return _Answer(error=exc, verdict=Reconciliation("unknown"))
        except ChannelError as exc:
            return _Answer(error=exc)

    def _complete(self, flight: _Flight, future: Future[_Answer], report: TickReport) -> None:
        """Record a finished request's outcome (in the main thread: every write goes through it)."""
        sending, claim = flight.sending, flight.claim
        sending.in_flight -= 1
        self.in_flight -= len(claim.deliveries)
        try:
            answer = future.result()
        except Exception as exc:  # a bug in an adapter, or the store refusing "started"
            reason = str(exc) or type(exc).__name__
            if not flight.left.is_set():  # before its request left: nothing was sent, so it is retried
                log.exception("sending %s failed before its request left; retrying it", sending.task)
                failure = TransientChannelError(f"{flight.channel.kind.value} send of {sending.task} failed: {reason}")
                self._record_failure(flight, failure, retry_after=None, permanent=False, report=report)
                if flight.lane in sending.lanes:
                    sending.lanes.remove(flight.lane)
                return
            log.exception("sending %s failed unexpectedly; recorded uncertain", sending.task)  # it may have left
            self._record_uncertain(flight, reason)
            return
        finally:
            self.progress.advanced(sending.task, count=len(claim.deliveries))
        if answer.receipt is not None:
            self._record_success(flight, answer.receipt, report)
            return
        error = answer.error
        assert error is not None
        if answer.verdict is not None and answer.verdict.state == "sent":
            self._record_success(flight, answer.verdict.receipt or Receipt(None), report)
        elif answer.verdict is not None and answer.verdict.state != "not_sent":
            self._record_uncertain(flight, str(error))
            log.warning("no answer from %s for %s; recorded uncertain", flight.channel.kind.value, sending.task)
        elif isinstance(error, PermanentChannelError) and error.channel_wide:
            self._hold_channel(flight, error)
        elif isinstance(error, PermanentChannelError) and error.status == 400 and len(claim.deliveries) > 1:
            ledger.split_back(self.engine, claim, str(error), now=self.clock())  # find who, in halves
            self._lane_limits[flight.lane] = max(1, len(claim.deliveries) // 2)
            if flight.lane not in sending.lanes:
                sending.lanes.append(flight.lane)
        elif isinstance(error, PermanentChannelError):
            self._record_failure(flight, error, retry_after=None, permanent=True, report=report)
        else:
            retry_after = error.retry_after if isinstance(error, TransientChannelError) else None
            self._record_failure(flight, error, retry_after=retry_after, permanent=False, report=report)
            if flight.lane in sending.lanes:
                sending.lanes.remove(flight.lane)  # this lane waits for its retry time

    def _hold_channel(self, flight: _Flight, error: PermanentChannelError) -> None:
        """No request on this channel can succeed until a person acts: hold it, escalate once with the remedy."""
        first = flight.lane.channel not in self._held_channels
        self._held_channels.add(flight.lane.channel)
        held = self.outcomes.held(flight.batch, error, escalate=first)
        self._summary(flight).held += held  # the channel's waiting rows, this batch among them

    def _record_success(self, flight: _Flight, receipt: Receipt, report: TickReport) -> None:
        if flight.lane in self._lane_limits:  # the refused recipients are split off: grow back towards full batches
            grown = self._lane_limits[flight.lane] * 2
            if grown >= flight.channel.max_batch:
                del self._lane_limits[flight.lane]
            else:
                self._lane_limits[flight.lane] = grown
        sent = self.outcomes.sent(flight.batch, receipt)
        report.sent += sent
        self._summary(flight).sent += sent

    def _record_uncertain(self, flight: _Flight, error: str) -> None:
        self.outcomes.uncertain(flight.batch, error)
        self._summary(flight).uncertain += len(flight.claim.deliveries)

    def _record_failure(
        self, flight: _Flight, exc: ChannelError, *, retry_after: float | None, permanent: bool, report: TickReport
    ) -> None:
        """Record the failure and, when rows died, their escalation in the same transaction."""
        counts = self.outcomes.failed(flight.batch, exc, retry_after=retry_after, permanent=permanent)
        report.dead += counts.dead
        report.retrying += counts.retrying
        summary = self._summary(flight)
        summary.dead += counts.dead
        summary.retrying += counts.retrying

    def _summary(self, flight: _Flight) -> SendSummary:
        """The running summary of the flight's send (its lane in this tick), stamped with the latest outcome."""
        summary = flight.sending.summaries.get(flight.lane)
        if summary is None:
            lane = flight.lane
            summary = SendSummary(
                flight.sending.task, lane.audience, lane.channel, at=self.clock(), dry_run=flight.channel.dry_run
            )
            flight.sending.summaries[lane] = summary
        summary.at = self.clock()
        return summary
