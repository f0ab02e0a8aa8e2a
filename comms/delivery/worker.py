"""The long-running worker: APScheduler wakes the dispatcher; the database says what is due.

A regular tick, a short poll of the lease's wake counter (a command queued work; on PostgreSQL also a
LISTEN for the wake's notification), and one precise
date job for the next due row; after a restart the jobs are rebuilt from the rows (there is nothing
else to rebuild them from). The worker runs until the dispatcher's stop flag is set (a signal, or a
lost lease); the tick in progress then ends after the requests in flight.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, timedelta

from apscheduler.schedulers.background import BackgroundScheduler

from comms.delivery.dispatcher import Dispatcher
from comms.errors import StoreError
from comms.store import lease, wake_channel
from comms.store.engine import Engine
from comms.store.occurrences import next_due_at, next_future_due_at
from comms.store.transaction import transaction

__all__ = ["Worker"]

log = logging.getLogger(__name__)


class Worker:
    """Runs ``Dispatcher.tick`` on a schedule and on wake-ups until the dispatcher is asked to stop."""

    def __init__(
        self, engine: Engine, dispatcher: Dispatcher, *, tick_seconds: float = 5.0, wake_seconds: float = 0.5
    ) -> None:
        self.engine = engine
        self.dispatcher = dispatcher
        self.tick_seconds = tick_seconds
        self.wake_seconds = wake_seconds
        self.failure: StoreError | None = None
        """The database refused an outcome: the worker stopped sending rather than report over it."""
        self._lock = threading.Lock()
        self._wakes = lease.wake_count(engine)
        self._listener = wake_channel.listener(engine)
        """On PostgreSQL a wake arrives as a notification at once; the counter poll stays as the fallback."""
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )

    def run_forever(self) -> None:
        """Start ticking now and block until the stop flag is set; return once the last tick has ended."""
        self.scheduler.add_job(
            self._tick, "interval", seconds=self.tick_seconds, id="tick", next_run_time=self.dispatcher.clock()
        )
        self.scheduler.add_job(self._check_wake, "interval", seconds=self.wake_seconds, id="wake")
        self.scheduler.start()
        if self._listener is not None:
            threading.Thread(target=self._listen, name="comms-wake", daemon=True).start()
        try:
            while not self.dispatcher.stop_requested.wait(0.5):
                pass
        finally:
            self.scheduler.shutdown(wait=True)

    def stop(self) -> None:
        """Ask the worker to stop after the requests in flight."""
        self.dispatcher.stop_requested.set()

    def _listen(self) -> None:
        assert self._listener is not None
        try:
            while not self.dispatcher.stop_requested.is_set():
                if self._listener.wait(1.0):
                    self._tick()
        except Exception:  # the connection broke: the wake counter poll carries on
            log.warning("stopped listening for wakes; polling the wake counter instead", exc_info=True)
        finally:
            self._listener.close()

    def _check_wake(self) -> None:
        try:
            wakes = lease.wake_count(self.engine)
        except StoreError:
            return  # the next tick reports a database that stays unavailable
        if wakes != self._wakes:
            self._wakes = wakes
            self._tick()

    def _tick(self) -> None:
        if self.dispatcher.stop_requested.is_set() or not self._lock.acquire(blocking=False):
            return
        try:
            while not self.dispatcher.stop_requested.is_set():
                report = self.dispatcher.tick()
                if report.requests or report.missed:
                    log.info(
                        "tick: %s sent, %s retrying, %s dead, %s missed",
                        report.sent,
                        report.retrying,
                        report.dead,
                        report.missed,
                    )
                if not (report.requests or report.missed or report.occurrences):
                    break  # nothing moved: what is due is held until go or waits for its retry
                with transaction(self.engine) as tx:
                    upcoming = next_due_at(tx)
                if upcoming is None or upcoming > self.dispatcher.clock():
                    break  # else something fell due while this tick ran: send it now, not next tick
        except StoreError as exc:
            log.error("the database refused the worker's writes: %s; stopping", exc)
            self.failure = exc
            self.dispatcher.stop_requested.set()
        except Exception:
            log.exception("worker tick failed; the next tick retries")
        finally:
            self._lock.release()
        if not self.dispatcher.stop_requested.is_set():
            self._arm_next_due()

    def _arm_next_due(self) -> None:
        now = self.dispatcher.clock()
        try:
            with transaction(self.engine) as tx:
                upcoming = next_future_due_at(tx, now)
        except StoreError:
            return
        if upcoming is not None and upcoming < now + timedelta(seconds=self.tick_seconds):
            try:
                self.scheduler.add_job(
                    self._tick, "date", run_date=upcoming, id="next-due", replace_existing=True, max_instances=2
                )
            except Exception:  # the scheduler is shutting down
                log.debug("not arming the next-due job", exc_info=True)
