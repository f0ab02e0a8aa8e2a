"""What a tick carries: its report, and the state of each occurrence it is sending (shared by the
dispatcher's send loop and ``comms.delivery.opening``, which opens occurrences and writes their rows)."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from datetime import datetime

from comms.core.content import Content
from comms.delivery.materialize import Written
from comms.delivery.progress import SendSummary
from comms.delivery.writer_process import WriterProcess
from comms.plan.models import Plan
from comms.store.ledger import Lane
from comms.store.tables import CutoverRow, OccurrenceRow
from comms.store.transaction import Transaction

__all__ = ["Sending", "TickReport"]


@dataclass
class TickReport:
    """What one pass over the due work did."""

    sent: int = 0
    retrying: int = 0
    dead: int = 0
    missed: int = 0
    requests: int = 0
    occurrences: list[str] = field(default_factory=list)
    stopped: bool = False
    """The stop flag ended the pass early: the remaining batches are pending for the next run."""


@dataclass
class Sending:
    """An occurrence being sent in this tick: what every batch of it shares, and its lanes still busy."""

    task: str
    cutover: CutoverRow
    occurrence: OccurrenceRow
    plan: Plan
    contents: dict[int, Content]
    lanes: list[Lane]
    deadline: datetime
    filling: Generator[Written, None, None] | None = None
    """The materialization still running (one chunk per turn), with the transaction it writes through."""
    writer: WriterProcess | None = None
    """The child process writing the rest of the rows instead (a big message, after its first rows)."""
    written_here: int = 0
    """Rows this sender wrote of it in this tick (past ``writer_after`` a child process writes the rest)."""
    tx: Transaction | None = None
    shown: bool = False
    expected: int = 0
    """The deliveries announced to the progress sink so far (it grows while the rows are written)."""
    in_flight: int = 0
    ending: tuple[str, str] | None = None
    """The occurrence ended while being written: the rest of its rows go in this (state, reason), unsent."""
    summaries: dict[Lane, SendSummary] = field(default_factory=dict)
    """What each lane's requests did in this tick (one line per send when the occurrence settles)."""

    @property
    def writing(self) -> bool:
        """Rows of the occurrence are still being written (here, one chunk per turn, or by a child process)."""
        return self.filling is not None or self.writer is not None
