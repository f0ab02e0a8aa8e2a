"""Writing a big message's rows in a process of its own, so the sender keeps its core for the requests.

Materializing a million recipients (reading the CSV, checking each address, inserting the rows) is
Python work that held the sender's GIL for about half of a big send. After the sender has written the
first rows itself (``WRITER_AFTER``, 50,000: the first request leaves after 5000), it hands the rest to a
child process:
``python -m comms.delivery.writer_process`` writes the remaining chunks through its own connection,
under the sender's fill lease (the sender renews it), and reports each committed chunk on its stdout as
one JSON line, which the sender reads without blocking to add the new lanes and grow the progress total.

The child stops after the chunk in which it finds the occurrence ended (an event); a chunk commits only
while its parent lives and holds the fill lease, so an orphan never writes beside the next writer. A chunk
is one transaction, so a killed child leaves whole chunks, and whoever writes next resumes (skipping the
addresses its lanes have). The database URL travels in the environment, never in argv.
"""

from __future__ import annotations

import json
import logging
import os
import select
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime

from comms.delivery.materialize import Written

__all__ = ["URL_ENV", "WriterProcess", "main"]

log = logging.getLogger(__name__)

URL_ENV = "COMMS_WRITER_DATABASE_URL"
ENDED_EXIT = 3
"""The child's exit status when it stopped because the occurrence ended (or its parent went away)."""


@dataclass
class WriterProcess:
    """A running child writing one occurrence's rows; ``poll`` returns the chunks it committed since."""

    process: subprocess.Popen[bytes]
    occurrence_id: int
    _partial: bytes = b""
    done: bool = field(default=False)

    @classmethod
    def start(cls, database_url: str, *, occurrence_id: int, owner: str, now: datetime) -> WriterProcess:
        """Start the child for ``occurrence_id``, writing under ``owner``'s fill lease with the facts as at ``now``."""
        spec = json.dumps(
            {"occurrence_id": occurrence_id, "owner": owner, "now": now.isoformat(), "parent": os.getpid()}
        )
        process = subprocess.Popen(
            [sys.executable, "-m", "comms.delivery.writer_process", spec],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env={**os.environ, URL_ENV: database_url},
        )
        assert process.stdout is not None
        os.set_blocking(process.stdout.fileno(), False)
        return cls(process, occurrence_id)

    def poll(self) -> list[Written]:
        """The chunks reported since the last call (``done`` once the child has exited and all is read)."""
        assert self.process.stdout is not None
        chunks: list[Written] = []
        while True:
            try:
                data = os.read(self.process.stdout.fileno(), 65536)
            except BlockingIOError:
                break
            if not data:
                self.process.wait()
                self.done = True
                break
            self._partial += data
        *lines, self._partial = self._partial.split(b"\n")
        for line in lines:
            chunks.append(Written(*json.loads(line)))
        return chunks

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    def wait_for_output(self, timeout: float) -> None:
        """Block until the child writes or exits, at most ``timeout`` seconds (a sender with nothing to send)."""
        assert self.process.stdout is not None
        select.select([self.process.stdout.fileno()], [], [], timeout)

    def stop(self) -> None:
        """Stop the child now (an event ended the occurrence, or the sender stops); its last chunk is whole."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.done = True


def main(argv: list[str]) -> int:
    """The child: write the rest of one occurrence's rows, one JSON line per committed chunk."""
    from comms.delivery.materialize import FillLost, materialize
    from comms.plan.cache import PlanCache
    from comms.reports.metrics import communication_metrics
    from comms.store import lease, sending_queries
    from comms.store import occurrences as occurrence_store
    from comms.store import repository as repo
    from comms.store.engine import WORKER_BUSY_TIMEOUT_S, make_engine
    from comms.store.transaction import Transaction, open_transaction

    logging.basicConfig(level=logging.WARNING, format="comms writer: %(message)s")
    spec = json.loads(argv[0])
    occurrence_id, parent, owner = int(spec["occurrence_id"]), int(spec["parent"]), str(spec["owner"])
    now = datetime.fromisoformat(spec["now"])
    engine = make_engine(os.environ[URL_ENV], busy_timeout=WORKER_BUSY_TIMEOUT_S)
    tx = open_transaction(engine)
    try:
        occurrence = occurrence_store.get_occurrence(tx, occurrence_id)
        if occurrence is None or occurrence.materialized:
            return 0
        if occurrence.state not in occurrence_store.ACTIVE_OCCURRENCE_STATES:
            return ENDED_EXIT
        cutover = repo.get_cutover(tx, occurrence.cutover_id)
        plan, renderer = PlanCache().get(cutover.plan_dir)

        def guard(chunk_tx: Transaction) -> bool:  # the sender is alive and still holds the fill lease
            return os.getppid() == parent and lease.holds_fill(chunk_tx, occurrence_id, owner)

        chunks = materialize(
            tx,
            plan,
            renderer,
            cutover,
            occurrence,
            now=now,
            metrics=communication_metrics,
            resuming=True,
            guard=guard,
        )
        for chunk in chunks:
            sys.stdout.write(json.dumps(list(chunk)) + "\n")
            sys.stdout.flush()
            state = sending_queries.occurrence_state(engine, occurrence_id)
            if state not in occurrence_store.ACTIVE_OCCURRENCE_STATES:  # an event ended it: so do the rows written
                sending_queries.end_pending(engine, occurrence_id, state=state, reason=f"occurrence {state}", now=now)
                return ENDED_EXIT  # the sender writes the rest ended
        return 0
    except FillLost:
        return ENDED_EXIT  # the sender is gone (or stalled past its lease): whoever writes next carries on
    finally:
        tx.close()
        engine.dispose()


if __name__ == "__main__":  # pragma: no cover - run by WriterProcess.start
    sys.exit(main(sys.argv[1:]))
