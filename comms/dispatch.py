"""Due occurrences -> rendered messages -> channel sends -> delivery rows; retries and pacing.

Crash safety: a batch of deliveries is claimed (``in_flight``, with a claim token naming this
process) and committed before its request leaves; the outcome is committed right after. On start,
``recover`` reconciles what a dead process left in flight: sent, back to pending, or ``uncertain``.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, and_, func, or_, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from comms.channels.base import Channel, Envelope, Receipt, Reconciliation
from comms.clock import Clock
from comms.envelopes import ThreadSlot, build_envelope
from comms.errors import ChannelError, PermanentChannelError, TransientChannelError
from comms.events import CutoverState, releases_held
from comms.materialize import MetricsProvider, materialize
from comms.plan.loader import load_plan
from comms.plan.models import Channel as ChannelKind
from comms.plan.models import Plan
from comms.progress import NULL_PROGRESS, ProgressSink
from comms.rendering import Renderer
from comms.store import repository as repo
from comms.store.content import content_from_json
from comms.store.tables import AttemptRow, ContentRow, CutoverRow, DeliveryRow, OccurrenceRow

log = logging.getLogger(__name__)
DELIVERY = DeliveryRow.__table__  # type: ignore[attr-defined]  # Core updates skip the ORM bulk machinery

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


class PlanCache:
    """Loads each cutover's plan folder once per process."""

    def __init__(self) -> None:
        self._plans: dict[str, tuple[Plan, Renderer]] = {}

    def get(self, plan_dir: str) -> tuple[Plan, Renderer]:
        """The plan and its renderer for ``plan_dir``."""
        if plan_dir not in self._plans:
            plan = load_plan(Path(plan_dir), check_templates=False)
            self._plans[plan_dir] = (plan, Renderer(plan.root / "templates"))
        return self._plans[plan_dir]

    def put(self, plan: Plan) -> None:
        """Use an already loaded plan for its folder."""
        self._plans[str(plan.root)] = (plan, Renderer(plan.root / "templates"))


def _process_token() -> str:
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
        self._last_post: dict[str, datetime] = {}

    # -- the loop ------------------------------------------------------------------------------

    def tick(self, only: Sequence[int] | None = None) -> TickReport:
        """Process every due occurrence (or only the given ids) once."""
        report = TickReport()
        now = self.clock()
        for hook in self.tick_hooks:
            try:
                hook(self.engine, now)
            except Exception:
                log.exception("tick hook %s failed; the next tick runs it again", hook)
        with Session(self.engine, expire_on_commit=False) as session:
            due = repo.due_occurrences(session, now)
            ids = [o.id for o in due if o.id is not None and (only is None or o.id in only)]
        for occurrence_id in ids:
            try:
                self._process(occurrence_id, report)
            except Exception:  # one broken occurrence must not stop the others
                log.exception("occurrence %s failed to dispatch; it stays due and is retried next tick", occurrence_id)
        return report

    def dispatch_now(self, occurrence_ids: Sequence[int]) -> TickReport:
        """Send the given (just triggered) occurrences at once, waiting out short retries."""
        report = self.tick(only=occurrence_ids)
        return report

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

    # -- one occurrence -------------------------------------------------------------------------

    def _process(self, occurrence_id: int, report: TickReport) -> None:
        now = self.clock()
        with Session(self.engine, expire_on_commit=False) as session:
            occurrence = session.get(OccurrenceRow, occurrence_id)
            if occurrence is None or occurrence.state not in repo.ACTIVE_OCCURRENCE_STATES:
                return
            cutover = session.get(CutoverRow, occurrence.cutover_id)
            assert cutover is not None and occurrence.due_at is not None
            plan, renderer = self.plans.get(cutover.plan_dir)
            deadline = occurrence.due_at + timedelta(seconds=occurrence.max_lateness_seconds)
            if not occurrence.materialized:
                if now > deadline:
                    self._miss(session, cutover, occurrence, now, report)
                    return
                if occurrence.hold_until_go and not releases_held(CutoverState(cutover.state)):
                    return
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
        self._send_pending(occurrence_id, report)
        self._finish_if_done(occurrence_id)

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

    def _send_pending(self, occurrence_id: int, report: TickReport) -> None:
        with Session(self.engine, expire_on_commit=False) as session:
            groups = session.exec(
                select(DeliveryRow.audience, DeliveryRow.channel, DeliveryRow.content_id)
                .where(DeliveryRow.occurrence_id == occurrence_id, DeliveryRow.state == "pending")
                .distinct()
            ).all()
            if not groups:
                return
            pending = session.exec(
                select(func.count())
                .select_from(DeliveryRow)
                .where(DeliveryRow.occurrence_id == occurrence_id, DeliveryRow.state == "pending")
            ).one()
            occurrence = session.get(OccurrenceRow, occurrence_id)
            task = occurrence.key if occurrence else str(occurrence_id)
        self.progress.started(task, total=int(pending))
        try:
            for audience, channel_name, content_id in groups:
                channel = self.channels[ChannelKind(channel_name)]
                while self._send_batch(occurrence_id, audience, channel, content_id, report, task=task):
                    pass
        finally:
            self.progress.finished(task)

    def _ready(self, now: datetime) -> object:
        return or_(col(DeliveryRow.next_attempt_at).is_(None), col(DeliveryRow.next_attempt_at) <= now)

    def _send_batch(
        self, occurrence_id: int, audience: str, channel: Channel, content_id: int, report: TickReport, *, task: str
    ) -> bool:
        """Claim, send and record one batch; return whether another batch may follow now."""
        now = self.clock()
        token = _process_token()
        with Session(self.engine, expire_on_commit=False) as session:
            ids = session.exec(
                select(DeliveryRow.id)
                .where(
                    DeliveryRow.occurrence_id == occurrence_id,
                    DeliveryRow.audience == audience,
                    DeliveryRow.channel == channel.kind.value,
                    DeliveryRow.state == "pending",
                    self._ready(now),  # type: ignore[arg-type]
                )
                .order_by(col(DeliveryRow.next_attempt_at), col(DeliveryRow.id))
                .limit(channel.max_batch)
            ).all()
            if not ids:
                return False
            session.connection().execute(
                update(DELIVERY)
                .where(and_(col(DeliveryRow.id).in_(ids), col(DeliveryRow.state) == "pending"))
                .values(state="in_flight", claim=token, attempts=DeliveryRow.attempts + 1, updated_at=now)
            )
            rows = session.execute(
                sa_select(
                    col(DeliveryRow.id),
                    col(DeliveryRow.recipient),
                    col(DeliveryRow.recipient_name),
                    col(DeliveryRow.idempotency_key),
                    col(DeliveryRow.cutover_id),
                    col(DeliveryRow.channel),
                    col(DeliveryRow.audience),
                ).where(col(DeliveryRow.id).in_(ids), col(DeliveryRow.claim) == token)
            ).all()
            if not rows:
                session.rollback()
                return True
            claimed = [row.id for row in rows]
            occurrence = session.get(OccurrenceRow, occurrence_id)
            cutover = session.get(CutoverRow, rows[0].cutover_id)
            content = session.get(ContentRow, content_id)
            assert occurrence is not None and cutover is not None and content is not None
            plan, _ = self.plans.get(cutover.plan_dir)
            envelope, slot = build_envelope(
                session, plan, cutover, occurrence, content_from_json(content.body_json), rows
            )
            assert cutover.id is not None
            attempt = AttemptRow(
                cutover_id=cutover.id,
                occurrence_id=occurrence_id,
                channel=channel.kind.value,
                audience=audience,
                recipients=len(rows),
                started_at=now,
            )
            session.add(attempt)
            session.commit()
            attempt_id = attempt.id
        self._pace(channel, envelope)
        report.requests += 1
        try:
            receipt = channel.send(envelope)
        except TransientChannelError as exc:
            if exc.maybe_delivered:
                return self._settle_unanswered(
                    channel, envelope, token, claimed, attempt_id, rows[0].cutover_id, slot, exc, report
                )
            self._record_failure(
                token, claimed, attempt_id, exc, retry_after=exc.retry_after, permanent=False, report=report
            )
            return False
        except PermanentChannelError as exc:
            self._record_failure(token, claimed, attempt_id, exc, retry_after=None, permanent=True, report=report)
            return True
        except ChannelError as exc:
            self._record_failure(token, claimed, attempt_id, exc, retry_after=None, permanent=False, report=report)
            return False
        finally:
            self.progress.advanced(task, count=len(rows))
        self._record_success(token, claimed, attempt_id, rows[0].cutover_id, slot, receipt, report)
        return True

    def _settle_unanswered(
        self,
        channel: Channel,
        envelope: Envelope,
        token: str,
        claimed: Sequence[int],
        attempt_id: int | None,
        cutover_id: int,
        slot: ThreadSlot | None,
        exc: TransientChannelError,
        report: TickReport,
    ) -> bool:
        """The request left but no answer came: ask the provider; if it cannot tell, record ``uncertain``."""
        try:
            verdict = channel.reconcile(envelope)
        except ChannelError as reconcile_error:
            log.warning("could not reconcile %s: %s", envelope.occurrence, reconcile_error)
            verdict = Reconciliation("unknown")
        if verdict.state == "sent":
            self._record_success(token, claimed, attempt_id, cutover_id, slot, verdict.receipt or Receipt(None), report)
            return True
        if verdict.state == "not_sent":
            self._record_failure(
                token, claimed, attempt_id, exc, retry_after=exc.retry_after, permanent=False, report=report
            )
            return False
        now = self.clock()
        with Session(self.engine, expire_on_commit=False) as session:
            session.execute(
                update(DeliveryRow)
                .where(col(DeliveryRow.id).in_(claimed), col(DeliveryRow.claim) == token)
                .values(
                    state="uncertain",
                    claim=None,
                    updated_at=now,
                    last_error=f"no answer ({exc}); re-send with 'comms retry --uncertain' if it did not arrive",
                )
            )
            attempt = session.get(AttemptRow, attempt_id)
            if attempt is not None:
                attempt.outcome, attempt.finished_at, attempt.error = "uncertain", now, str(exc)[:2000]
                session.add(attempt)
            session.commit()
        log.warning("no answer from %s for %s; recorded uncertain", channel.kind.value, envelope.occurrence)
        return False

    def _pace(self, channel: Channel, envelope: Envelope) -> None:
        if channel.kind is not ChannelKind.SLACK or channel.dry_run:
            return
        target = envelope.recipients[0].address
        last = self._last_post.get(target)
        now = self.clock()
        if last is not None:
            wait = self.slack_interval - (now - last).total_seconds()
            if wait > 0:
                self.sleep(wait)
        self._last_post[target] = self.clock()

    def _record_success(
        self,
        token: str,
        claimed: Sequence[int],
        attempt_id: int | None,
        cutover_id: int,
        slot: ThreadSlot | None,
        receipt: Receipt,
        report: TickReport,
    ) -> None:
        now = self.clock()
        with Session(self.engine, expire_on_commit=False) as session:
            result = session.connection().execute(
                update(DELIVERY)
                .where(col(DeliveryRow.id).in_(claimed), col(DeliveryRow.claim) == token)
                .values(
                    state="sent",
                    provider_id=receipt.provider_id,
                    sent_at=now,
                    claim=None,
                    last_error=None,
                    updated_at=now,
                )
            )
            report.sent += result.rowcount  # type: ignore[attr-defined]
            attempt = session.get(AttemptRow, attempt_id)
            if attempt is not None:
                attempt.outcome, attempt.finished_at, attempt.provider_id = "sent", now, receipt.provider_id
                session.add(attempt)
            _remember_ref(session, cutover_id, slot, receipt)
            session.commit()

    def _record_failure(
        self,
        token: str,
        claimed: Sequence[int],
        attempt_id: int | None,
        exc: ChannelError,
        *,
        retry_after: float | None,
        permanent: bool,
        report: TickReport,
    ) -> None:
        now = self.clock()
        with Session(self.engine, expire_on_commit=False) as session:
            rows = session.exec(
                select(DeliveryRow).where(col(DeliveryRow.id).in_(claimed), DeliveryRow.claim == token)
            ).all()
            dead_rows = []
            for row in rows:
                row.claim = None
                row.last_error = str(exc)[:2000]
                row.updated_at = now
                if permanent or row.attempts >= self.retry.max_attempts:
                    row.state = "dead"
                    dead_rows.append(row)
                else:
                    row.state = "pending"
                    row.next_attempt_at = now + timedelta(seconds=self.retry.delay(row.attempts, retry_after))
                session.add(row)
            report.dead += len(dead_rows)
            report.retrying += len(rows) - len(dead_rows)
            if retry_after and not permanent and rows:
                # The provider asked the whole account to wait: hold every pending send on this channel too.
                until = now + timedelta(seconds=retry_after)
                session.execute(
                    update(DeliveryRow)
                    .where(
                        col(DeliveryRow.channel) == rows[0].channel,
                        col(DeliveryRow.state) == "pending",
                        or_(col(DeliveryRow.next_attempt_at).is_(None), col(DeliveryRow.next_attempt_at) < until),
                    )
                    .values(next_attempt_at=until)
                )
            attempt = session.get(AttemptRow, attempt_id)
            if attempt is not None:
                attempt.outcome = "permanent" if permanent else "transient"
                attempt.finished_at, attempt.error, attempt.retry_after = now, str(exc)[:2000], retry_after
                session.add(attempt)
            session.commit()
            log.warning("send failed (%s): %s", "permanent" if permanent else "transient", exc)
            if dead_rows and self.on_failure:
                occurrence = session.get(OccurrenceRow, dead_rows[0].occurrence_id)
                cutover = session.get(CutoverRow, dead_rows[0].cutover_id)
                if occurrence is not None and cutover is not None:
                    self.on_failure(session, cutover, occurrence, f"{len(dead_rows)} delivery(ies) dead: {exc}")
                    session.commit()

    def _finish_if_done(self, occurrence_id: int) -> None:
        with Session(self.engine, expire_on_commit=False) as session:
            open_count = session.exec(
                select(DeliveryRow.id)
                .where(
                    DeliveryRow.occurrence_id == occurrence_id,
                    col(DeliveryRow.state).in_(("pending", "in_flight")),
                )
                .limit(1)
            ).first()
            occurrence = session.get(OccurrenceRow, occurrence_id)
            if open_count is None and occurrence is not None and occurrence.state == "dispatching":
                occurrence.state = "done"
                occurrence.finished_at = self.clock()
                session.add(occurrence)
                session.commit()

    # -- recovery -------------------------------------------------------------------------------

    def recover(self) -> dict[str, int]:
        """Reconcile deliveries a dead process left in flight: sent, back to pending, or uncertain."""
        counts = {"sent": 0, "pending": 0, "uncertain": 0}
        with Session(self.engine, expire_on_commit=False) as session:
            claims = session.exec(select(DeliveryRow.claim).where(DeliveryRow.state == "in_flight").distinct()).all()
        for claim in claims:
            if claim is None or claim_is_live(claim):
                continue
            with Session(self.engine, expire_on_commit=False) as session:
                rows = session.exec(select(DeliveryRow).where(DeliveryRow.claim == claim)).all()
                if not rows:
                    continue
                occurrence = session.get(OccurrenceRow, rows[0].occurrence_id)
                cutover = session.get(CutoverRow, rows[0].cutover_id)
                content = session.get(ContentRow, rows[0].content_id)
                assert occurrence is not None and cutover is not None and content is not None
                plan, _ = self.plans.get(cutover.plan_dir)
                envelope, slot = build_envelope(
                    session, plan, cutover, occurrence, content_from_json(content.body_json), rows
                )
                channel = self.channels[ChannelKind(rows[0].channel)]
                try:
                    verdict = channel.reconcile(envelope)
                except ChannelError as exc:
                    log.warning("could not reconcile %s: %s", occurrence.key, exc)
                    verdict = None
                now = self.clock()
                state = verdict.state if verdict else "unknown"
                for row in rows:
                    row.claim = None
                    row.updated_at = now
                    if state == "sent":
                        row.state, row.sent_at = "sent", now
                        row.provider_id = (
                            verdict.receipt.provider_id if verdict and verdict.receipt else row.provider_id
                        )
                    elif state == "not_sent":
                        row.state = "pending"
                    else:
                        row.state = "uncertain"
                        row.last_error = "the process died while this request may have been in flight; re-send with 'comms retry --uncertain'"
                    session.add(row)
                counts["pending" if state == "not_sent" else "sent" if state == "sent" else "uncertain"] += len(rows)
                if state == "sent" and verdict and verdict.receipt:
                    _remember_ref(session, rows[0].cutover_id, slot, verdict.receipt)
                session.commit()
        return counts


def _remember_ref(session: Session, cutover_id: int, slot: ThreadSlot | None, receipt: Receipt) -> None:
    if slot is not None and receipt.thread_ref is not None:
        repo.remember_thread(
            session,
            cutover_id=cutover_id,
            channel=slot.channel,
            scope=slot.scope,
            target=slot.target,
            ref=receipt.thread_ref,
        )


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
