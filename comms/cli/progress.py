"""The terminal side of dispatch progress: the ``ProgressSink`` port of ``comms.delivery.progress``.

Every send prints one line (time, message, audience, channel, what happened to its recipients):
``SendLines`` does only that, for a worker whose output goes to a log. ``TerminalProgress`` also
draws rich bars, only for tasks of at least ``min_total`` deliveries (a Slack post is not worth a
bar). ``terminal_progress`` picks the sink for a command: nothing with ``--json`` (``quiet``), lines
when stdout is not a terminal, lines and bars on a terminal.
"""

from __future__ import annotations

import threading

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from comms.delivery.progress import NULL_PROGRESS, ProgressSink, SendSummary

__all__ = ["MIN_TOTAL", "SendLines", "TerminalProgress", "terminal_progress"]

MIN_TOTAL = 100
"""Tasks with fewer deliveries than this get no bar."""


class SendLines:
    """One line per send on the console, no bars (for output that goes to a log or a pipe)."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def started(self, task: str, *, total: int) -> None:
        """Nothing: the line comes when the send is over."""

    def advanced(self, task: str, *, count: int) -> None:
        """Nothing."""

    def finished(self, task: str) -> None:
        """Nothing."""

    def summarized(self, summary: SendSummary) -> None:
        """Print the send's line."""
        self.console.print(summary.describe(), markup=False, highlight=False, soft_wrap=True)


class TerminalProgress:
    """Rich progress bars on a terminal console, one per running task of at least ``min_total`` deliveries."""

    def __init__(self, console: Console, *, min_total: int = MIN_TOTAL) -> None:
        self.console = console
        self.min_total = min_total
        self._lock = threading.Lock()
        self._tasks: dict[str, TaskID] = {}
        self._progress: Progress | None = None

    def started(self, task: str, *, total: int) -> None:
        """Open a bar for ``task`` when it is large enough; a bar already open takes the new total."""
        if total < self.min_total and task not in self._tasks:
            return
        with self._lock:
            if self._progress is None:
                self._progress = Progress(
                    TextColumn("[bold]{task.description}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeRemainingColumn(),
                    console=self.console,
                    transient=False,
                )
                self._progress.start()
            if task in self._tasks:
                self._progress.update(self._tasks[task], total=total)
            else:
                self._tasks[task] = self._progress.add_task(task, total=total)

    def advanced(self, task: str, *, count: int) -> None:
        """Move the bar of ``task`` on, if it has one."""
        with self._lock:
            if self._progress is not None and task in self._tasks:
                self._progress.advance(self._tasks[task], count)

    def finished(self, task: str) -> None:
        """Close the bar of ``task``; stop drawing when no bar is left."""
        with self._lock:
            task_id = self._tasks.pop(task, None)
            if self._progress is None or task_id is None:
                return
            self._progress.stop_task(task_id)
            if not self._tasks:
                self._progress.refresh()
                self._progress.stop()
                self._progress = None

    def summarized(self, summary: SendSummary) -> None:
        """Print the send's line (above the bars while they are drawn)."""
        with self._lock:
            console = self._progress.console if self._progress is not None else self.console
            console.print(summary.describe(), markup=False, highlight=False, soft_wrap=True)

    def close(self) -> None:
        """Stop drawing (for a command that ends while tasks are still open)."""
        with self._lock:
            if self._progress is not None:
                self._progress.stop()
                self._progress = None
            self._tasks.clear()


def terminal_progress(console: Console, *, quiet: bool = False, min_total: int = MIN_TOTAL) -> ProgressSink:
    """The sink for a command: nothing with ``--json`` (``quiet``), lines when piped, lines and bars on a terminal."""
    if quiet:
        return NULL_PROGRESS
    if not console.is_terminal:
        return SendLines(console)
    return TerminalProgress(console, min_total=min_total)
