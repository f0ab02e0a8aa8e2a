"""Opening a due occurrence for a tick: miss it, hold it, or write its rows chunk by chunk and list its lanes.

A big message is materialized one chunk per turn (``comms.delivery.materialize``) under a fill lease
(one writer per occurrence across workers), so its first request leaves after one chunk; after that
first rows (``writer_after``) a child process writes the rest (``comms.delivery.writer_process``) while
this one sends.
The lanes to send are those of the chunks written so far. An occurrence that ends (cancelled, missed)
while it is being written gets the rest of its rows written in that end state, never sent. The send
loop itself is ``comms.delivery.dispatcher``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from comms.clock import Clock
from comms.core.content import content_from_json
from comms.core.events import CutoverState, releases_held
from comms.delivery.materialize import INSERT_BATCH, ChunkGuard, FillLost, MetricsProvider, Written, materialize
from comms.delivery.outcomes import FailureHook
from comms.delivery.progress import ProgressSink
from comms.delivery.sending import Sending, TickReport
from comms.delivery.writer_process import ENDED_EXIT, WriterProcess
from comms.plan.cache import PlanCache
from comms.store import lease, sending_queries
from comms.store import occurrences as occurrence_store
from comms.store import repository as repo
from comms.store.engine import Engine
from comms.store.ledger import Lane
from comms.store.tables import CutoverRow, OccurrenceRow
from comms.store.transaction import Transaction, open_transaction, refresh, transaction

__all__ = ["FILL_LEASE_SECONDS", "OccurrenceOpener", "WRITER_AFTER"]

log = logging.getLogger(__name__)

WRITER_AFTER = 50_000
"""Rows of a message the sender writes itself before a child process writes the rest: about half a second
of writing, what starting the child costs (a 10k message went 2.5 times slower through a child)."""

FILL_LEASE_SECONDS = 15.0
"""How long another worker waits for a silent writer of an occurrence's rows before it carries on (PostgreSQL)."""


class OccurrenceOpener:
    """Opens the occurrences a tick sends and writes their rows; the dispatcher sends what is written."""

    def __init__(
        self,
        engine: Engine,
        *,
        plans: PlanCache,
        clock: Clock,
        metrics: MetricsProvider,
        on_failure: FailureHook | None,
        progress: ProgressSink,
        owner: str,
        writer_after: int | None = WRITER_AFTER,
    ) -> None:
        self.engine = engine
        self.plans = plans
        self.clock = clock
        self.metrics = metrics
        self.on_failure = on_failure
        self.progress = progress
        self.owner = owner
        self.writer_after = writer_after
        """Rows of a message written here before a child process writes the rest (None: all written here)."""
        self.look_for_unwritten = False
        """An occurrence ended while being written: look for the rest of its rows to write (next turn)."""
        self._opening: Transaction | None = None

    def close(self, current: Sending) -> None:
        """Done with the occurrence for this tick: stop writing it (the next tick resumes), say what it did."""
        if current.writing:  # a partial materialization resumes on the next tick (skipping who is written)
            self._stop_writing(current)
            self._release_fill(current)
        if current.tx is not None:
            current.tx.close()
            current.tx = None
        if current.shown:
            self.progress.finished(current.task)
            current.shown = False
        for summary in current.summaries.values():
            if summary.recipients:
                self.progress.summarized(summary)
        current.summaries.clear()

    def open(self, occurrence_id: int, report: TickReport) -> Sending | None:
        """``_open``, rolling its transaction back if it fails (an open transaction would hold its locks)."""
        try:
            return self._open(occurrence_id, report)
        except Exception:
            if self._opening is not None:
                self._opening.close()
            raise
        finally:
            self._opening = None

    def _open(self, occurrence_id: int, report: TickReport) -> Sending | None:
        """Start materializing (or miss) a due occurrence and list its lanes; None when it cannot be sent now."""
        now = self.clock()
        tx = self._opening = open_transaction(self.engine)
        occurrence = occurrence_store.get_occurrence(tx, occurrence_id)
        if occurrence is None or occurrence.state not in occurrence_store.ACTIVE_OCCURRENCE_STATES:
            tx.close()
            return None
        cutover = repo.get_cutover(tx, occurrence.cutover_id)
        assert occurrence.due_at is not None
        plan, renderer = self.plans.get(cutover.plan_dir)
        deadline = occurrence.due_at + timedelta(seconds=occurrence.max_lateness_seconds)
        current = Sending(occurrence.key, cutover, occurrence, plan, {}, [], deadline, tx=tx)
        if not occurrence.materialized:
            if now > deadline:
                self._miss(tx, cutover, occurrence, now, report)
                tx.close()
                return None
            if occurrence.hold_until_go and not releases_held(CutoverState(cutover.state)):
                tx.close()
                return None
            if not self._take_fill(occurrence_id):  # another worker writes its rows: send those written so far
                tx.close()
                current.tx = None
                self._refresh_lanes(current)
                return current
            current.filling = materialize(
                tx, plan, renderer, cutover, occurrence, now=now, metrics=self.metrics, guard=self._guard(occurrence_id)
            )
            report.occurrences.append(occurrence.key)
            self.advance(current)
            if current.filling is None and occurrence.state not in occurrence_store.ACTIVE_OCCURRENCE_STATES:
                return current
        elif now > deadline:
            report.missed += sending_queries.end_pending(
                self.engine, occurrence_id, state="missed", reason="past the message's lateness bound", now=now
            )
        self._refresh_lanes(current)
        return current

    def open_unwritten_rests(self, sending: dict[int, Sending]) -> None:
        """Write the rest of the rows of occurrences that ended (cancelled, missed) while being written.

        It looks only when there may be some: at a tick's start, and after this opener ended one.
        """
        if not self.look_for_unwritten:
            return
        self.look_for_unwritten = False
        with transaction(self.engine) as tx:
            unwritten = occurrence_store.partly_written_ended(tx)
        for occurrence_id in unwritten:
            if occurrence_id in sending or not self._take_fill(occurrence_id):
                continue
            try:
                self._open_unwritten_rest(occurrence_id, sending)
            except Exception:  # one broken occurrence must not stop the others, nor what is being sent
                log.exception("could not start writing the rest of occurrence %s's rows", occurrence_id)
                self._release_fill_of(occurrence_id)

    def _open_unwritten_rest(self, occurrence_id: int, sending: dict[int, Sending]) -> None:
        """Start writing the rest of one ended occurrence's rows in its end state (the fill lease is ours)."""
        tx = open_transaction(self.engine)
        try:
            occurrence = occurrence_store.get_occurrence(tx, occurrence_id)
            if occurrence is None or occurrence.materialized or occurrence.due_at is None:
                tx.close()
                self._release_fill_of(occurrence_id)
                return
            cutover = repo.get_cutover(tx, occurrence.cutover_id)
            plan, renderer = self.plans.get(cutover.plan_dir)
            ending = (occurrence.state, occurrence.ended_reason or f"occurrence {occurrence.state}")
            deadline = occurrence.due_at + timedelta(seconds=occurrence.max_lateness_seconds)
            current = Sending(occurrence.key, cutover, occurrence, plan, {}, [], deadline, tx=tx, ending=ending)
            # rows a writer committed after the event and before it saw it (it was killed, say) end now too
            sending_queries.end_pending(self.engine, occurrence_id, state=ending[0], reason=ending[1], now=self.clock())
            current.filling = materialize(
                tx,
                plan,
                renderer,
                cutover,
                occurrence,
                now=self.clock(),
                metrics=self.metrics,
                ending=ending,
                guard=self._guard(occurrence_id),
            )
        except Exception:
            tx.close()
            raise
        log.info("writing the rest of %s's rows as %s (it ended while being written)", occurrence.key, ending[0])
        sending[occurrence_id] = current

    def _hand_off(self, current: Sending) -> None:
        """``writer_after`` rows are written here and there are more: a child process writes the rest (not for
        an in-memory database, which no other process can open)."""
        url = self.engine.url
        if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
            return
        assert current.filling is not None and current.occurrence.id is not None
        current.filling.close()  # between chunks: everything it wrote is committed
        current.filling = None
        current.writer = WriterProcess.start(
            url.render_as_string(hide_password=False),
            occurrence_id=current.occurrence.id,
            owner=self.owner,
            now=self.clock(),
        )
        log.info("writing the rest of %s's rows in process %d", current.task, current.writer.process.pid)

    def wait_for_writers(self, sendings: Iterable[Sending], timeout: float = 0.05) -> None:
        """Nothing to send until a child process writes more: wait for one to write (at most ``timeout``)."""
        for current in sendings:
            if current.writer is not None:
                current.writer.wait_for_output(timeout)
                return

    def _end_written(self, current: Sending, state: str) -> None:
        """Cancelled or missed while being written: end the rows written so far; the next tick writes the rest
        ended (``open_unwritten_rests``)."""
        occurrence_id = current.occurrence.id
        assert occurrence_id is not None
        self._release_fill(current)
        self.look_for_unwritten = True
        sending_queries.end_pending(
            self.engine, occurrence_id, state=state, reason=f"occurrence {state}", now=self.clock()
        )
        current.lanes = []

    def _stop_writing(self, current: Sending) -> None:
        """Write no more of it in this tick: the generator is dropped, the child stopped after its last chunk."""
        if current.writer is not None:
            current.writer.stop()
            current.writer = None
        current.filling = None

    def advance(self, current: Sending) -> None:
        """Write one more turn of the occurrence's rows here, or take what its child process wrote; stop if an
        event ended it meanwhile. The fill lease stays this sender's while either writes."""
        occurrence_id = current.occurrence.id
        assert occurrence_id is not None
        if not self._take_fill(occurrence_id):  # this worker stalled past its fill lease; another carries on
            self._stop_writing(current)
            self._refresh_lanes(current)
            return
        chunks = self._poll_writer(current) if current.writer is not None else self._write_turn(current)
        if chunks is None:
            return
        state = sending_queries.occurrence_state(self.engine, occurrence_id)
        if state not in occurrence_store.ACTIVE_OCCURRENCE_STATES:
            self._stop_writing(current)  # after its last whole chunk: end what is written
            self._end_written(current, state)
            return
        if current.filling is not None and self.writer_after is not None and current.written_here >= self.writer_after:
            self._hand_off(current)
        first = not current.shown
        if not current.writing or first:
            self._refresh_lanes(current)  # first and last: every lane with pending rows, counted
        else:
            self._add_written_lanes(current, chunks)
        if not first:
            self._announce_growth(current, chunks)

    def _poll_writer(self, current: Sending) -> list[Written]:
        """The chunks the child process committed since the last turn; once it has exited, it is done."""
        writer = current.writer
        assert writer is not None
        chunks = writer.poll()
        if writer.done:
            current.writer = None
            self._release_fill(current)
            if writer.returncode not in (0, ENDED_EXIT):  # ended: the state check below says why
                log.error(
                    "the process writing %s's rows stopped (exit %s); the next tick writes the rest",
                    current.task,
                    writer.returncode,
                )
        return chunks

    def _write_turn(self, current: Sending) -> list[Written] | None:
        """Write chunks here until a turn's worth of rows; None when there is nothing to send of them (the rest of
        an ended occurrence, or another worker carries on)."""
        assert current.filling is not None and current.tx is not None
        chunks: list[Written] = []
        written = 0
        try:
            while written < INSERT_BATCH:  # small parts (a Slack channel, a few contacts) do not end a turn
                chunks.append(next(current.filling))
                written += chunks[-1].rows
        except StopIteration:
            current.filling = None
            self._release_fill(current)
        except FillLost:  # the lease was lost mid-chunk: that chunk is undone, another worker carries on
            current.filling = None
            self._refresh_lanes(current)
            return None
        except Exception:
            if current.ending is None:
                raise
            # the rest of an ended occurrence must not hold up what is being sent: the next tick tries again
            log.exception("could not write the rest of %s's rows; the next tick tries again", current.task)
            current.filling = None
            self._release_fill(current)
        if current.ending is not None:
            return None  # the rest of an ended occurrence, written ended: nothing to send
        current.written_here += written
        return chunks

    def _announce_growth(self, current: Sending, chunks: Sequence[Written]) -> None:
        """The send grew by the rows just written: its progress total says so (a bar does not stop at 5000)."""
        grown = sum(chunk.pending for chunk in chunks)
        if grown and current.shown:
            current.expected += grown
            self.progress.started(current.task, total=current.expected)

    def _add_written_lanes(self, current: Sending, chunks: Sequence[Written]) -> None:
        """While an occurrence is written, its lanes are those of the chunks just written: no query over the
        rows already there (counting a million pending rows after every chunk made a big send quadratic)."""
        occurrence_id = current.occurrence.id
        assert occurrence_id is not None
        for chunk in chunks:
            lane = Lane(occurrence_id, chunk.audience, chunk.channel, chunk.content_id)
            if lane not in current.lanes:
                self._load_content(current, lane.content_id)
                current.lanes.append(lane)

    def _load_content(self, current: Sending, content_id: int) -> None:
        """Keep the rendered content a lane sends (read once per occurrence and tick)."""
        if content_id not in current.contents:
            current.contents[content_id] = content_from_json(sending_queries.content_json(self.engine, content_id))

    def _guard(self, occurrence_id: int) -> ChunkGuard:
        """A chunk commits only while this worker holds the occurrence's fill lease."""
        owner = self.owner
        return lambda tx: lease.holds_fill(tx, occurrence_id, owner)

    def _take_fill(self, occurrence_id: int) -> bool:
        return lease.take_fill(self.engine, occurrence_id, self.owner, now=self.clock(), ttl=FILL_LEASE_SECONDS)

    def _release_fill(self, current: Sending) -> None:
        assert current.occurrence.id is not None
        self._release_fill_of(current.occurrence.id)

    def _release_fill_of(self, occurrence_id: int) -> None:
        lease.release_fill(self.engine, occurrence_id, self.owner)

    def _refresh_lanes(self, current: Sending) -> None:
        occurrence_id = current.occurrence.id
        assert occurrence_id is not None
        groups = sending_queries.pending_lanes(self.engine, occurrence_id)
        for content_id in {content_id for _, _, content_id, _ in groups}:
            self._load_content(current, content_id)
        known = set(current.lanes)
        for audience, channel, content_id, _ in groups:
            lane = Lane(occurrence_id, audience, channel, content_id)
            if lane not in known:
                current.lanes.append(lane)
        if groups and not current.shown:
            current.expected = sum(count for *_, count in groups)
            self.progress.started(current.task, total=current.expected)
            current.shown = True

    def _miss(
        self, tx: Transaction, cutover: CutoverRow, occurrence: OccurrenceRow, now: datetime, report: TickReport
    ) -> None:
        assert occurrence.id is not None
        occurrence_store.set_occurrence_states(tx, [occurrence.id], "missed", at=now)
        self.look_for_unwritten = True  # if it was partly written, the rest is written missed
        report.missed += 1
        log.warning("occurrence %s missed: past its lateness bound", occurrence.key)
        if self.on_failure:
            self.on_failure(tx, cutover, refresh(tx, occurrence), "missed")
        tx.commit()

    def miss_rest(self, current: Sending, report: TickReport) -> None:
        """The lateness bound passed mid-send: what is still pending is missed, never sent stale. The writing
        stops first, so no row lands pending after; the next tick misses the occurrence and writes the rest
        missed."""
        if current.writing:
            self._stop_writing(current)
            self._release_fill(current)
        occurrence_id = current.occurrence.id
        assert occurrence_id is not None
        report.missed += sending_queries.end_pending(
            self.engine, occurrence_id, state="missed", reason="past the message's lateness bound", now=self.clock()
        )
        current.lanes = []
