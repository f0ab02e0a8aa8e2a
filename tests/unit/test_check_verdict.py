"""The readiness summary: 'ready' only without FAIL; dry-run channels and warnings are counted apart."""

from __future__ import annotations

from comms.channels.base import CheckRow
from comms.cli.check_commands import verdict_line
from comms.reports.readiness import ReadinessReport

PASS = CheckRow("plan validates", "PASS", "ok")
DRY = CheckRow("email credentials", "WARN", "dry run: no credentials", dry_run=True)
WARN = CheckRow("recipients: x", "WARN", "2 duplicate addresses")
FAIL = CheckRow("T0 in the future", "FAIL", "T0 is in the past")


def test_all_passed_is_plainly_ready() -> None:
    """Every row passed: 100 % and 'ready'."""
    assert verdict_line(ReadinessReport((PASS, PASS))) == "Score 100% (2/2 passed): [green]ready[/]"


def test_dry_run_channels_are_named_and_make_it_a_dry_run() -> None:
    """A channel without credentials is counted as dry run, named, and the verdict says 'ready for a dry run'."""
    line = verdict_line(ReadinessReport((PASS, DRY, WARN)))
    assert "1/3 passed; 1 in dry run: email; 1 warning" in line
    assert "ready for a dry run" in line and "email write to the outbox" in line


def test_a_failure_is_never_ready() -> None:
    """One FAIL among passes: the line says 'Not ready' and how many failed, with no score."""
    line = verdict_line(ReadinessReport((PASS, DRY, FAIL)))
    assert line.startswith("[bold red]Not ready[/]: 1 of 3 checks failed") and "Score" not in line
    assert ReadinessReport((PASS, FAIL)).failed == 1 and not ReadinessReport((PASS, FAIL)).ready
