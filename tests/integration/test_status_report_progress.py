"""The progress sink: a line per send, rich bars on a terminal for large sends, silence with --json."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from rich.console import Console

from comms.cli.progress import SendLines, TerminalProgress, terminal_progress
from comms.delivery.progress import NULL_PROGRESS, ProgressSink, SendSummary


def _console(*, terminal: bool) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=terminal, width=100, color_system=None), out


def test_piped_output_gets_one_line_per_send_and_no_bars() -> None:
    """When stdout is not a terminal (a log), each send is one plain line and nothing is drawn."""
    console, out = _console(terminal=False)
    sink = terminal_progress(console)
    assert isinstance(sink, SendLines)
    sink.started("advance-notice", total=5000)
    sink.advanced("advance-notice", count=5000)
    sink.finished("advance-notice")
    at = datetime(2026, 12, 3, 22, 0, 5, tzinfo=UTC)
    sink.summarized(SendSummary("advance-notice", "end-users", "email", at, sent=4998, dead=2))
    assert out.getvalue() == "22:00:05Z advance-notice -> end-users by email: 4,998 sent, 2 dead\n"


def test_a_terminal_prints_the_line_above_its_bars() -> None:
    """On a terminal the send's line is printed too, with a bar drawn for a large send."""
    console, out = _console(terminal=True)
    sink = terminal_progress(console)
    sink.started("advance-notice", total=5000)
    sink.advanced("advance-notice", count=5000)
    sink.finished("advance-notice")
    sink.summarized(
        SendSummary("advance-notice", "end-users", "email", datetime(2026, 12, 3, 22, tzinfo=UTC), sent=5000)
    )
    assert "5000/5000" in out.getvalue() and "advance-notice -> end-users by email: 5,000 sent" in out.getvalue()


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


def test_a_bar_takes_a_grown_total_and_keeps_what_is_done() -> None:
    """A big message announces more deliveries as its rows are written: the bar grows, its count stays."""
    console, out = _console(terminal=True)
    sink = TerminalProgress(console, min_total=100)
    sink.started("advance-notice", total=5000)
    sink.advanced("advance-notice", count=3000)
    sink.started("advance-notice", total=12000)
    sink.advanced("advance-notice", count=9000)
    sink.finished("advance-notice")
    assert "12000/12000" in out.getvalue() and "5000/5000" not in out.getvalue()
