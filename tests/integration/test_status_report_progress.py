"""The progress sink: rich bars on a terminal for large sends, silence with --json or when piped."""

from __future__ import annotations

import io

from rich.console import Console

from comms.cli.progress import TerminalProgress, terminal_progress
from comms.delivery.progress import NULL_PROGRESS, ProgressSink


def _console(*, terminal: bool) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=terminal, width=100, color_system=None), out


def test_piped_output_gets_the_silent_sink() -> None:
    """When stdout is not a terminal, the command gets the null sink."""
    console, _ = _console(terminal=False)
    assert terminal_progress(console) is NULL_PROGRESS


def test_json_output_gets_the_silent_sink() -> None:
    """With --json (quiet), even a terminal gets the null sink."""
    console, _ = _console(terminal=True)
    assert terminal_progress(console, quiet=True) is NULL_PROGRESS


def test_terminal_gets_bars() -> None:
    """On a terminal without --json the sink draws bars."""
    console, _ = _console(terminal=True)
    assert isinstance(terminal_progress(console), TerminalProgress)


def test_large_send_draws_a_bar_to_completion() -> None:
    """A 5,000-delivery task shows its name and reaches 5000/5000."""
    console, out = _console(terminal=True)
    sink: ProgressSink = TerminalProgress(console, min_total=100)
    sink.started("advance-notice", total=5000)
    for _ in range(5):
        sink.advanced("advance-notice", count=1000)
    sink.finished("advance-notice")
    text = out.getvalue()
    assert "advance-notice" in text and "5000/5000" in text


def test_small_send_draws_nothing() -> None:
    """A task below the threshold (a Slack post) draws no bar."""
    console, out = _console(terminal=True)
    sink = TerminalProgress(console, min_total=100)
    sink.started("starting", total=3)
    sink.advanced("starting", count=3)
    sink.finished("starting")
    assert out.getvalue() == ""
