"""The engine's commands as a user runs them: schedule, run, event, reschedule, cancel, simulate."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from comms.cli import app
from tests.support.plans import wall_clock_plan

REPO_ROOT = Path(__file__).resolve().parents[2]
PLAN = wall_clock_plan()  # the worker runs on the wall clock: no quiet hours to depend on the time of day


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {"COMMS_DATABASE_URL": f"sqlite:///{tmp_path}/comms.db", "COMMS_OUTBOX_DIR": str(tmp_path / "outbox")}
    for name in ("COMMS_SENDGRID_API_KEY", "COMMS_SLACK_TOKEN", "COMMS_STATUSPAGE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    return values


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def _start(hours: float = 47.5) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).replace(microsecond=0).isoformat()


def test_schedule_twice_changes_nothing(env: dict[str, str]) -> None:
    """The second `comms schedule` with the same start reports that nothing changed."""
    start = _start()
    assert _run("schedule", "--start", start, "--plan", str(PLAN))[0] == 0
    code, output = _run("schedule", "--start", start, "--plan", str(PLAN))
    assert code == 0 and "nothing changed" in output


def test_schedule_other_start_points_to_reschedule(env: dict[str, str]) -> None:
    """A different start for an existing cutover exits 2 and names `comms reschedule`."""
    _run("schedule", "--start", _start(), "--plan", str(PLAN))
    code, output = _run("schedule", "--start", _start(72), "--plan", str(PLAN))
    assert code == 2 and "comms reschedule" in output


def test_naive_start_is_refused_without_tz(env: dict[str, str]) -> None:
    """A naive --start without --tz exits 2, names the option, and stores nothing."""
    code, output = _run("schedule", "--start", "2026-12-05T22:00:00", "--plan", str(REPO_ROOT))
    assert code == 2 and "--start" in output and "--tz" in output
    assert _run("run", "--until-idle")[0] == 0  # the store is still empty: nothing to send


def test_run_until_idle_sends_due_advance_notice_to_outbox(env: dict[str, str]) -> None:
    """With no credentials, the due advance notice lands in the outbox as .eml and JSON files."""
    _run("schedule", "--start", _start(), "--plan", str(PLAN))
    code, output = _run("run", "--until-idle")
    assert code == 0 and "Sent" in output
    # one line per send: time, message, audience, channel, what became of its recipients
    assert re.search(r"^\d\d:\d\d:\d\dZ advance-notice -> end-users by email: \d+ written to the outbox$", output, re.M)
    files = list(Path(env["COMMS_OUTBOX_DIR"]).rglob("*"))
    assert any(f.suffix == ".eml" for f in files) and any(f.suffix == ".json" for f in files)


def test_event_out_of_order_is_refused(env: dict[str, str]) -> None:
    """`comms event stage 50` before go exits 2 with the reason."""
    _run("schedule", "--start", _start(), "--plan", str(PLAN))
    code, output = _run("event", "stage", "50")
    assert code == 2 and "cannot record 'stage'" in output


def test_go_then_stage_records_and_sends(env: dict[str, str]) -> None:
    """Go and a stage are recorded and their messages written at once."""
    _run("schedule", "--start", _start(1), "--plan", str(PLAN), "--accept-missed")
    assert _run("event", "go")[0] == 0
    code, output = _run("event", "stage", "10", "--force", "--reason", "rehearsal before T0")
    assert code == 0 and "in_progress at 10 %" in output
    assert list(Path(env["COMMS_OUTBOX_DIR"]).rglob("traffic-stage_10*"))


def test_cancel_needs_reason(env: dict[str, str]) -> None:
    """`comms cancel` without --reason is a usage error (exit 2)."""
    _run("schedule", "--start", _start(), "--plan", str(PLAN))
    assert _run("cancel")[0] == 2


def test_event_without_cutover_is_a_clear_error(env: dict[str, str]) -> None:
    """An event before anything is scheduled exits 2 and says to run `comms schedule`."""
    code, output = _run("event", "go")
    assert code == 2 and "comms schedule" in output


def test_simulate_json_covers_the_timeline(env: dict[str, str], tmp_path: Path) -> None:
    """The rehearsal sends every time-based message and the event-bound success path."""
    code, output = _run(
        "simulate",
        "--start",
        "2026-12-05T22:00:00Z",
        "--plan",
        str(REPO_ROOT),
        "--json",
        "--outbox",
        str(tmp_path / "rehearsal"),
        "--db",
        str(tmp_path / "rehearsal.db"),
    )
    assert code == 0
    data = json.loads(output)
    keys = {o["key"].split("/")[0]: o["state"] for o in data["occurrences"]}
    assert keys["success-metrics"] == "done" and keys["success"] == "done" and keys["full-traffic@100"] == "done"
    assert all(state == "done" for state in keys.values())


def test_simulate_rollback_at_stage(env: dict[str, str], tmp_path: Path) -> None:
    """`--rollback-at 50` rehearses a rollback: the rollback notice goes out, the success path does not."""
    code, output = _run(
        "simulate",
        "--start",
        "2026-12-05T22:00:00Z",
        "--plan",
        str(REPO_ROOT),
        "--json",
        "--rollback-at",
        "50",
        "--outbox",
        str(tmp_path / "rehearsal"),
        "--db",
        str(tmp_path / "rehearsal.db"),
    )
    assert code == 0
    states = {o["key"].split("/")[0]: o["state"] for o in json.loads(output)["occurrences"]}
    assert states["rollback"] == "done" and "success" not in states and states["follow-up"] == "cancelled"


def test_worker_stops_cleanly_on_sigterm(env: dict[str, str]) -> None:
    """`comms run` exits 0 soon after SIGTERM."""
    _run("schedule", "--start", _start(), "--plan", str(PLAN))
    worker = subprocess.Popen(
        [sys.executable, "-m", "comms", "run", "--tick", "0.2"],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not list(Path(env["COMMS_OUTBOX_DIR"]).rglob("*.eml")):
        time.sleep(0.05)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=15) == 0


def test_schedule_with_metrics_file_stores_kpis(env: dict[str, str], tmp_path: Path) -> None:
    """`--metrics-file` stores the migration's KPIs with the cutover."""
    kpis = tmp_path / "kpis.yaml"
    kpis.write_text("uptime: 99.97 %\nerror_rate: 0.3 %\n")
    assert _run("schedule", "--start", _start(), "--plan", str(PLAN), "--metrics-file", str(kpis))[0] == 0
    code, output = _run("kpis", "show")
    assert code == 0 and "99.97 %" in output


def test_schedule_with_bad_metrics_file_stores_nothing(env: dict[str, str], tmp_path: Path) -> None:
    """A broken KPI file exits 2 naming the file, and no cutover is stored."""
    kpis = tmp_path / "kpis.yaml"
    kpis.write_text("uptime: [unclosed\n")
    code, output = _run("schedule", "--start", _start(), "--plan", str(PLAN), "--metrics-file", str(kpis))
    assert code == 2 and "kpis.yaml" in output
    assert _run("event", "go")[0] == 2
