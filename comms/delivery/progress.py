"""Progress of long dispatches: a three-method callback port, and the sink that shows nothing.

The dispatcher reports per task (one occurrence being sent):

    sink.started(task, total=N)     N deliveries are about to be sent
    sink.advanced(task, count=k)    k more deliveries got their outcome (sent, retrying or dead)
    sink.finished(task)             no more batches for now (done, or waiting for retries)

A sink never raises and never decides anything; it only shows. ``NULL_PROGRESS`` is the default
and does nothing; the CLI's terminal bars are ``comms.cli.progress.TerminalProgress`` (only the
CLI draws on a terminal).
"""

from __future__ import annotations

from typing import Protocol


class ProgressSink(Protocol):
    """Receives the progress of sends; implementations must be cheap and must not raise."""

    def started(self, task: str, *, total: int) -> None:
        """``total`` deliveries of ``task`` are about to be sent."""
        ...

    def advanced(self, task: str, *, count: int) -> None:
        """``count`` more deliveries of ``task`` have an outcome."""
        ...

    def finished(self, task: str) -> None:
        """``task`` has no more batches to send now."""
        ...


class NullProgress:
    """The sink that shows nothing."""

    def started(self, task: str, *, total: int) -> None:
        """Ignore."""

    def advanced(self, task: str, *, count: int) -> None:
        """Ignore."""

    def finished(self, task: str) -> None:
        """Ignore."""


NULL_PROGRESS = NullProgress()
