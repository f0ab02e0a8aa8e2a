"""Progress of long dispatches: a three-method callback port, and the sink that shows nothing.

The dispatcher reports per task (one occurrence being sent):

    sink.started(task, total=N)     N deliveries are about to be sent
    sink.advanced(task, count=k)    k more deliveries got their outcome (sent, retrying or dead)
    sink.finished(task)             no more batches for now (done, or waiting for retries)
    sink.summarized(summary)        one line per send: a message to one audience on one channel

A sink never raises and never decides anything; it only shows. ``NULL_PROGRESS`` is the default
and does nothing; the CLI's terminal bars are ``comms.cli.progress.TerminalProgress`` (only the
CLI draws on a terminal).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

__all__ = ["NULL_PROGRESS", "NullProgress", "ProgressSink", "SendSummary"]


@dataclass
class SendSummary:
    """What one pass of the sender did with one message to one audience on one channel."""

    message: str
    audience: str
    channel: str
    at: datetime
    """When the pass over this send ended (UTC)."""
    sent: int = 0
    retrying: int = 0
    dead: int = 0
    uncertain: int = 0
    held: int = 0
    dry_run: bool = False
    """The channel has no credentials: "sent" went to the outbox."""

    @property
    def recipients(self) -> int:
        """How many deliveries got an outcome in this pass."""
        return self.sent + self.retrying + self.dead + self.uncertain + self.held

    def describe(self) -> str:
        """One line: ``14:05:03Z advance-notice -> end-users by email: 5,000 sent, 2 dead``."""
        counts = [f"{self.sent:,} {'written to the outbox' if self.dry_run else 'sent'}"] + [
            f"{count:,} {name}"
            for name, count in (
                ("retrying", self.retrying),
                ("dead", self.dead),
                ("uncertain", self.uncertain),
                ("held", self.held),
            )
            if count
        ]
        return f"{self.at:%H:%M:%S}Z {self.message} -> {self.audience} by {self.channel}: {', '.join(counts)}"


class ProgressSink(Protocol):
    """Receives the progress of sends; implementations must be cheap and must not raise."""

    def started(self, task: str, *, total: int) -> None:
        """``total`` deliveries of ``task`` are about to be sent; called again with a larger total while a big
        message's rows are still being written."""
        ...

    def advanced(self, task: str, *, count: int) -> None:
        """``count`` more deliveries of ``task`` have an outcome."""
        ...

    def finished(self, task: str) -> None:
        """``task`` has no more batches to send now."""
        ...

    def summarized(self, summary: SendSummary) -> None:
        """One send (a message to one audience on one channel) is over for this pass."""
        ...


class NullProgress:
    """The sink that shows nothing."""

    def started(self, task: str, *, total: int) -> None:
        """Ignore."""

    def advanced(self, task: str, *, count: int) -> None:
        """Ignore."""

    def finished(self, task: str) -> None:
        """Ignore."""

    def summarized(self, summary: SendSummary) -> None:
        """Ignore."""


NULL_PROGRESS = NullProgress()
