"""Due occurrences -> rendered messages -> channel sends -> delivery rows; retries and pacing.

A tick serves the due occurrences round-robin: one batch per lane (occurrence x audience x channel)
per pass, re-reading what is due between passes. A message that falls due during a big send waits
for one batch of each busy lane, not for the whole send. Each batch is claimed and committed before
its request leaves and its outcome committed right after (``comms.store.ledger``); what a dead process
left in flight is settled by ``comms.delivery.recovery``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine, func, update
from sqlmodel import Session, col, select

from comms.channels.base import Channel, Envelope, Receipt, Reconciliation
from comms.channels.pacing import Pacer, monotonic_for
from comms.clock import Clock
from comms.core.content import Content, content_from_json
from comms.core.events import CutoverState, releases_held
from comms.delivery.envelopes import ThreadSlot, build_envelope, remember_ref
from comms.delivery.materialize import MetricsProvider, materialize
from comms.delivery.progress import NULL_PROGRESS, ProgressSink
from comms.delivery.recovery import new_claim_token, recover
from comms.errors import ChannelError, PermanentChannelError, TransientChannelError
from comms.plan.cache import PlanCache
from comms.plan.models import Channel as ChannelKind
from comms.plan.models import Plan
from comms.store import ledger
from comms.store import repository as repo
from comms.store.ledger import Claim, Lane
from comms.store.tables import ContentRow, CutoverRow, DeliveryRow, OccurrenceRow

log = logging.getLogger(__name__)

Sleeper = Callable[[float], None]
FailureHook = Callable[[Session, CutoverRow, OccurrenceRow, str], None]
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


@dataclass
class TickReport:
    """What one pass over the due work did."""

    sent: int = 0
    retrying: int = 0
    dead: int = 0
    missed: int = 0
    requests: int = 0
    occurrences: list[str] = field(default_factory=list)


@dataclass
class _Sending:
    """An occurrence being sent in this tick: what every batch of it shares, and its lanes still busy."""

    task: str
    cutover: CutoverRow
    occurrence: OccurrenceRow
    plan: Plan
    contents: dict[int, Content]
    lanes: list[Lane]
    shown: bool = False
    """Whether the progress sink was told about this task (only when it had something to send)."""


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
    ) -> None:
        self.engine = engine
        self.channels = channels
        self.clock = clock
        self.sleep = sleep
        self.retry = retry or RetryPolicy()
        self.plans = plans or PlanCache()
        self.metrics = metrics
        self.on_failure = on_failure
        self.slack_interval = slack_interval
        self.tick_hooks = list(tick_hooks)
        self.progress = progress
        self._slack_pacer = Pacer(slack_interval, monotonic=monotonic_for(clock), sleep=sleep)

    # -- the loop ------------------------------------------------------------------------------

    def tick(self, only: Sequence[int] | None = None) -> TickReport:
        """Send what is due (or only the given occurrences) until nothing more can go now."""
        report = TickReport()
        for hook in self.tick_hooks:
            try:
                hook(self.engine, self.clock())
            except Exception:
                log.exception("tick hook %s failed; the next tick runs it again", hook)
        sending: dict[int, _Sending] = {}
        settled: set[int] = set()
        while True:
            with Session(self.engine, expire_on_commit=False) as session:
                due = [o.id for o in repo.due_occurrences(session, self.clock()) if o.id is not None]
            todo = [i for i in due if i not in settled and (only is None or i in only)]
            if not todo:
                return report
            for occurrence_id in todo:
                try:
                    current = sending.get(occurrence_id) or self._open(occurrence_id, report)
                    if current is None:
                        settled.add(occurrence_id)
                        continue
                    sending[occurrence_id] = current
                    current.lanes = [lane for lane in current.lanes if self._send_batch(current, lane, report)]
                    if current.lanes:
                        continue
                except Exception:  # one broken occurrence must not stop the others
                    log.exception("occurrence %s failed to dispatch; it stays due for the next tick", occurrence_id)
                settled.add(occurrence_id)
                done = sending.pop(occurrence_id, None)
                if done is not None and done.shown:
                    self.progress.finished(done.task)
                self._finish_if_done(occurrence_id)

    def dispatch_now(self, occurrence_ids: Sequence[int]) -> TickReport:
        """Send the given (just triggered) occurrences at once, waiting out short retries."""
        return self.tick(only=occurrence_ids)

    def run_until_idle(self, *, horizon: timedelta = timedelta(minutes=15)) -> TickReport:
        """Tick until nothing is due now or within ``horizon`` (retries wait out their backoff)."""
        total = TickReport()
        while True:
            report = self.tick()
            for name in ("sent", "retrying", "dead", "missed", "requests"):
                setattr(total, name, getattr(total, name) + getattr(report, name))
            total.occurrences.extend(report.occurrences)
            now = self.clock()
            with Session(self.engine, expire_on_commit=False) as session:
                upcoming = repo.next_due_at(session)
            if upcoming is None or upcoming > now + horizon:
                return total
            if upcoming > now:
                self.sleep((upcoming - now).total_seconds())
            elif report.requests == 0 and report.missed == 0 and not report.occurrences:
                return total  # due but blocked (held until go): nothing more to do now

    def recover(self) -> dict[str, int]:
        """Settle what a dead process left in flight (see ``comms.delivery.recovery``)."""
        return recover(self.engine, self.channels, self.plans, self.clock)

    # -- one occurrence -------------------------------------------------------------------------

    def _open(self, occurrence_id: int, report: TickReport) -> _Sending | None:
        """Materialize (or miss) a due occurrence and list its lanes; None when it cannot be sent now."""
        now = self.clock()
        with Session(self.engine, expire_on_commit=False) as session:
            occurrence = session.get(OccurrenceRow, occurrence_id)
            if occurrence is None or occurrence.state not in repo.ACTIVE_OCCURRENCE_STATES:
                return None
            cutover = session.get(CutoverRow, occurrence.cutover_id)
            assert cutover is not None and occurrence.due_at is not None
            plan, renderer = self.plans.get(cutover.plan_dir)
            deadline = occurrence.due_at + timedelta(seconds=occurrence.max_lateness_seconds)
            if not occurrence.materialized:
                if now > deadline:
                    self._miss(session, cutover, occurrence, now, report)
                    return None
                if occurrence.hold_until_go and not releases_held(CutoverState(cutover.state)):
                    return None
                materialize(session, plan, renderer, cutover, occurrence, now=now, metrics=self.metrics)
                session.commit()
                report.occurrences.append(occurrence.key)
            elif now > deadline:
                missed = session.execute(
                    update(DeliveryRow)
                    .where(col(DeliveryRow.occurrence_id) == occurrence_id, col(DeliveryRow.state) == "pending")
                    .values(state="missed", last_error="past the message's lateness bound", updated_at=now)
                )
                report.missed += missed.rowcount  # type: ignore[attr-defined]
                session.commit()
            groups = session.exec(  # one pass over the pending rows: the lanes and how much each holds
                select(DeliveryRow.audience, DeliveryRow.channel, DeliveryRow.content_id, func.count())
                .where(DeliveryRow.occurrence_id == occurrence_id, DeliveryRow.state == "pending")
                .group_by(col(DeliveryRow.audience), col(DeliveryRow.channel), col(DeliveryRow.content_id))
            ).all()
            contents = {
                row.id: content_from_json(row.body_json)
                for row in session.exec(select(ContentRow).where(ContentRow.occurrence_id == occurrence_id)).all()
                if row.id is not None
            }
        lanes = [Lane(occurrence_id, audience, channel, content_id) for audience, channel, content_id, _ in groups]
        if lanes:
            self.progress.started(occurrence.key, total=sum(int(count) for *_, count in groups))
        return _Sending(occurrence.key, cutover, occurrence, plan, contents, lanes, shown=bool(lanes))

    def _miss(
        self, session: Session, cutover: CutoverRow, occurrence: OccurrenceRow, now: datetime, report: TickReport
    ) -> None:
        occurrence.state = "missed"
        occurrence.finished_at = now
        session.add(occurrence)
        session.commit()
        report.missed += 1
        log.warning("occurrence %s missed: past its lateness bound", occurrence.key)
        if self.on_failure:
            self.on_failure(session, cutover, occurrence, "missed")
            session.commit()

    def _finish_if_done(self, occurrence_id: int) -> None:
        with Session(self.engine, expire_on_commit=False) as session:
            still_open = session.exec(
                select(DeliveryRow.id)
                .where(
                    DeliveryRow.occurrence_id == occurrence_id,
                    col(DeliveryRow.state).in_(("pending", "in_flight")),
                )
                .limit(1)
            ).first()
            occurrence = session.get(OccurrenceRow, occurrence_id)
            if still_open is None and occurrence is not None and occurrence.state == "dispatching":
                occurrence.state = "done"
                occurrence.finished_at = self.clock()
                session.add(occurrence)
                session.commit()

    # -- one batch ------------------------------------------------------------------------------

    def _send_batch(self, sending: _Sending, lane: Lane, report: TickReport) -> bool:
        """Claim, send and record one batch of the lane; return whether another batch may follow now."""
        channel = self.channels[ChannelKind(lane.channel)]
        assert sending.cutover.id is not None
        claim = ledger.claim_batch(
            self.engine,
            lane,
            cutover_id=sending.cutover.id,
            limit=channel.max_batch,
            token=new_claim_token(),
            now=self.clock(),
        )
        if claim is None:
            return False
        try:
            with Session(self.engine) as session:  # the Slack thread root or status-page incident so far
                envelope, slot = build_envelope(
                    session, sending.plan, sending.cutover, sending.occurrence, sending.contents[lane.content_id],
                    claim.deliveries,
                )
        except Exception:
            ledger.release_claim(self.engine, claim)
            raise
        self._pace(channel, envelope.recipients[0].address)
        report.requests += 1
        try:
            receipt = channel.send(envelope)
        except TransientChannelError as exc:
            if exc.maybe_delivered:
                return self._settle_unanswered(channel, sending, claim, slot, envelope, exc, report)
            self._record_failure(sending, claim, exc, retry_after=exc.retry_after, permanent=False, report=report)
            return False
        except PermanentChannelError as exc:
            self._record_failure(sending, claim, exc, retry_after=None, permanent=True, report=report)
            return True
        except ChannelError as exc:
            self._record_failure(sending, claim, exc, retry_after=None, permanent=False, report=report)
            return False
        finally:
            self.progress.advanced(sending.task, count=len(claim.deliveries))
        self._record_success(sending, claim, slot, receipt, report)
        return True

    def _settle_unanswered(
        self,
        channel: Channel,
        sending: _Sending,
        claim: Claim,
        slot: ThreadSlot | None,
        envelope: Envelope,
        exc: TransientChannelError,
        report: TickReport,
    ) -> bool:
        """The request left but no answer came: ask the provider; if it cannot tell, record ``uncertain``."""
        try:
            verdict = channel.reconcile(envelope)
        except ChannelError as reconcile_error:
            log.warning("could not reconcile %s: %s", sending.task, reconcile_error)
            verdict = Reconciliation("unknown")
        if verdict.state == "sent":
            self._record_success(sending, claim, slot, verdict.receipt or Receipt(None), report)
            return True
        if verdict.state == "not_sent":
            self._record_failure(sending, claim, exc, retry_after=exc.retry_after, permanent=False, report=report)
            return False
        with Session(self.engine) as session:
            ledger.record_uncertain(session, claim, str(exc), now=self.clock())
            session.commit()
        log.warning("no answer from %s for %s; recorded uncertain", channel.kind.value, sending.task)
        return False

    def _pace(self, channel: Channel, target: str) -> None:
        """Slack accepts about one post per second per channel: wait out the rest of that second."""
        if channel.kind is not ChannelKind.SLACK or channel.dry_run:
            return
        self._slack_pacer.wait(target)

    def _record_success(
        self, sending: _Sending, claim: Claim, slot: ThreadSlot | None, receipt: Receipt, report: TickReport
    ) -> None:
        assert sending.cutover.id is not None
        with Session(self.engine) as session:
            report.sent += ledger.record_sent(
                session.connection(), claim, provider_id=receipt.provider_id, now=self.clock()
            )
            remember_ref(session, sending.cutover.id, slot, receipt)
            session.commit()

    def _record_failure(
        self,
        sending: _Sending,
        claim: Claim,
        exc: ChannelError,
        *,
        retry_after: float | None,
        permanent: bool,
        report: TickReport,
    ) -> None:
        with Session(self.engine, expire_on_commit=False) as session:
            outcome = ledger.record_failure(
                session,
                claim,
                str(exc),
                retry_after=retry_after,
                permanent=permanent,
                max_attempts=self.retry.max_attempts,
                delay=self.retry.delay,
                now=self.clock(),
            )
            session.commit()
            report.dead += len(outcome.dead)
            report.retrying += outcome.retrying
            log.warning("send failed (%s): %s", "permanent" if permanent else "transient", exc)
            if outcome.dead and self.on_failure:
                occurrence = session.get(OccurrenceRow, sending.occurrence.id)
                cutover = session.get(CutoverRow, sending.cutover.id)
                if occurrence is not None and cutover is not None:
                    self.on_failure(session, cutover, occurrence, f"{len(outcome.dead)} delivery(ies) dead: {exc}")
                    session.commit()
