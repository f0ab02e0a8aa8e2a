"""Summaries that say what happened: report before anything was sent, --version, flags in --help."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from typer.testing import Result

import comms

Cli = Callable[..., Result]


def test_report_before_any_send_says_nothing_sent_yet(cli: Cli, tmp_path: Path) -> None:
    """A scheduled cutover with no delivery yet reports 'Nothing sent yet', never '100.0 %' of 0."""
    env = {"COMMS_DATABASE_URL": f"sqlite:///{tmp_path}/c.db", "COMMS_OUTBOX_DIR": str(tmp_path / "outbox")}
    cli("init", tmp_path / "p")
    assert cli("schedule", "--start", "2030-01-01T00:00:00Z", "--plan", tmp_path / "p", env=env).exit_code == 0
    result = cli("report", env=env)
    assert result.exit_code == 0, result.output
    assert "Nothing sent yet" in result.output and "no occurrence due yet" in result.output
    assert "100.0 %" not in result.output and "of 0" not in result.output


def test_version_prints_the_package_version(cli: Cli) -> None:
    """`comms --version` prints 'comms X.Y.Z' and exits 0."""
    result = cli("--version")
    assert result.exit_code == 0 and result.output.strip() == f"comms {comms.__version__}"


def test_help_shows_flags_by_meaning_not_bool(cli: Cli) -> None:
    """No `--help` page shows '<bool>' for an on/off flag; the flag's help text is there."""
    for command in ((), ("preview",), ("simulate",), ("check",), ("timeline",), ("incident", "list")):
        result = cli(*command, "--help")
        assert result.exit_code == 0, result.output
        assert "<bool>" not in result.output, command
    assert "Print JSON instead of a table." in cli("check", "--help").output
