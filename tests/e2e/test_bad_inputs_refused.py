"""Issue 14's bad inputs that used to pass: `comms validate` and `comms schedule` refuse them with exit 2,
the file and line named, and nothing stored."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import Result

Cli = Callable[..., Result]


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} must occur exactly once in {path}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def _line_of(path: Path, needle: str) -> int:
    lines = [n for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1) if needle in line]
    assert len(lines) == 1, f"{needle!r} must be on exactly one line of {path}"
    return lines[0]


def _refused(cli: Cli, plan: Path, *expected: str) -> None:
    result = cli("validate", "--plan", plan)
    output = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for fragment in expected:
        assert fragment in output, f"{fragment!r} not in:\n{result.output}"


def test_duplicate_yaml_key_names_both_lines(cli: Cli, plan_copy: Path) -> None:
    """A key given twice in one mapping is refused (not 'the last one wins'), naming both lines."""
    schedule = plan_copy / "schedules/cutover.yaml"
    first = _line_of(schedule, "at: T-48h")
    _edit(schedule, "    at: T-48h\n", "    at: T-48h\n    at: T-24h\n")
    _refused(cli, plan_copy, f"schedules/cutover.yaml:{first + 1}: duplicate key 'at' (first given on line {first})")


def test_duplicate_key_in_audience_is_refused(cli: Cli, plan_copy: Path) -> None:
    """A duplicate key in an audience file is refused with the audience file and line."""
    audience = plan_copy / "audiences/support.yaml"
    _edit(audience, "timezone: Europe/Dublin\n", "timezone: Europe/Dublin\ntimezone: UTC\n")
    line = _line_of(audience, "timezone: UTC")
    _refused(cli, plan_copy, f"audiences/support.yaml:{line}: duplicate key 'timezone'")


def test_audience_with_no_channel_is_refused(cli: Cli, plan_copy: Path) -> None:
    """An audience that reaches no one (no channel at all) is refused."""
    audience = plan_copy / "audiences/support.yaml"
    text = audience.read_text(encoding="utf-8")
    head = text[: text.index("channels:")]
    audience.write_text(head + "channels: {}\n", encoding="utf-8")
    _refused(cli, plan_copy, "audiences/support.yaml", "the audience reaches no one")


def test_recurrence_starting_after_the_window_is_refused(cli: Cli, plan_copy: Path) -> None:
    """A recurrence whose 'from' is past the window's end never fires: refused at its 'from' line."""
    schedule = plan_copy / "schedules/cutover.yaml"
    _edit(schedule, "    from: T+2h\n", "    from: T+13h\n")
    line = _line_of(schedule, "from: T+13h")
    _refused(cli, plan_copy, f"schedules/cutover.yaml:{line}: message 'progress-update' never fires")


def test_zero_length_window_is_refused(cli: Cli, plan_copy: Path) -> None:
    """`window: 0h` is refused at its line instead of silently yielding nothing."""
    schedule = plan_copy / "schedules/cutover.yaml"
    _edit(schedule, "  window: 12h\n", "  window: 0h\n")
    line = _line_of(schedule, "window: 0h")
    _refused(cli, plan_copy, f"schedules/cutover.yaml:{line}:", "window must be longer than 0")


@pytest.mark.parametrize("start", ["2020-01-01T00:00:00Z"])
def test_schedule_in_the_past_exits_2_and_stores_nothing(
    cli: Cli, plan_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, start: str
) -> None:
    """`comms schedule --start 2020-01-01T00:00:00Z` exits 2 saying T0 is in the past; no database rows."""
    monkeypatch.setenv("COMMS_DATABASE_URL", f"sqlite:///{tmp_path}/comms.db")
    monkeypatch.setenv("COMMS_OUTBOX_DIR", str(tmp_path / "outbox"))
    result = cli("schedule", "--start", start, "--plan", plan_copy)
    assert result.exit_code == 2, result.output
    assert "is in the past" in " ".join(result.output.split())
    status = cli("status")
    assert status.exit_code == 2 and "comms schedule" in " ".join(status.output.split())


def test_go_long_before_t0_exits_2_with_the_window_and_force_records_it(
    cli: Cli, plan_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`comms event go` days before T0 exits 2 naming the go window; `--force --reason` records it (exit 0)."""
    from datetime import UTC, datetime, timedelta

    monkeypatch.setenv("COMMS_DATABASE_URL", f"sqlite:///{tmp_path}/comms.db")
    monkeypatch.setenv("COMMS_OUTBOX_DIR", str(tmp_path / "outbox"))
    start = (datetime.now(UTC) + timedelta(days=4, hours=12)).replace(microsecond=0)
    assert cli("schedule", "--start", start.isoformat(), "--plan", plan_copy).exit_code == 0
    refused = cli("event", "go")
    output = " ".join(refused.output.split())
    assert refused.exit_code == 2, refused.output
    assert "'go' may be recorded from" in output and "--force --reason" in output
    forced = cli("event", "go", "--force", "--reason", "dress rehearsal")
    assert forced.exit_code == 0, forced.output
    assert "cutover firestore-to-supabase is now go" in " ".join(forced.output.split())
