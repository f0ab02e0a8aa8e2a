"""The long-running worker: APScheduler wakes the dispatcher; the database says what is due.

A regular tick plus one precise date job for the next due row; after a restart, the jobs are
rebuilt from the rows (there is nothing else to rebuild them from).
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, timedelta

from apscheduler.schedulers.blocking import BlockingScheduler
from sqlalchemy import Engine
from sqlmodel import Session

from comms.delivery.dispatcher import Dispatcher
from comms.store import repository as repo

log = logging.getLogger(__name__)


class Worker:
    """Runs ``Dispatcher.tick`` on a schedule until stopped (SIGTERM, Ctrl-C)."""

    def __init__(self, engine: Engine, dispatcher: Dispatcher, *, tick_seconds: float = 5.0) -> None:
        self.engine = engine
        self.dispatcher = dispatcher
        self.tick_seconds = tick_seconds
        self._lock = threading.Lock()
        self.scheduler = BlockingScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )

    def run_forever(self) -> None:
        """Start ticking now and block until ``stop``."""
        self.scheduler.add_job(
            self._tick, "interval", seconds=self.tick_seconds, id="tick", next_run_time=self.dispatcher.clock()
        )
        self.scheduler.start()

    def stop(self) -> None:
        """Stop after the tick in progress, if any, finishes its current request."""
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    def _tick(self) -> None:
        if not self._lock.acquire(blocking=False):
            return
        try:
            while True:
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
                with Session(self.engine) as session:
                    upcoming = repo.next_due_at(session)
                if upcoming is None or upcoming > self.dispatcher.clock():
                    break  # else something fell due while this tick ran: send it now, not next tick
        except Exception:
            log.exception("worker tick failed; the next tick retries")
        finally:
            self._lock.release()
        self._arm_next_due()

    def _arm_next_due(self) -> None:
        now = self.dispatcher.clock()
        with Session(self.engine) as session:
            upcoming = repo.next_future_due_at(session, now)
        if upcoming is not None and upcoming < now + timedelta(seconds=self.tick_seconds):
            self.scheduler.add_job(
                self._tick, "date", run_date=upcoming, id="next-due", replace_existing=True, max_instances=2
            )
