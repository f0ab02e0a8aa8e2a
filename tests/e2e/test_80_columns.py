"""Every table command reads whole at COLUMNS=80: no cell cut ('…'), no key, word or timestamp broken across lines.

Each test renders a command at 80 columns and checks its cells against the command's own --json data:
short values (keys, states, times) must stand whole on one line, prose must keep every word whole.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import Result

from tests.integration.test_status_report import Scenario, run_scenario

REPO_ROOT = Path(__file__).resolve().parents[2]
Cli = Callable[..., Result]


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No COMMS_* variable of the developer's reaches the commands."""
    for name in list(os.environ):
        if name.upper().startswith("COMMS_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory, module_database_url: str) -> Scenario:
    """One real run (failures, retries, incidents) whose database the commands read, on SQLite and PostgreSQL."""
    return run_scenario(tmp_path_factory.mktemp("columns"), module_database_url)


@pytest.fixture
def run80(cli: Cli, scenario: Scenario) -> Callable[..., str]:
    """Run a command against the scenario at COLUMNS=80 and return its stdout (exit 0)."""

    def run(*args: str, columns: str = "80") -> str:
        result = cli(
            *args,
            env={"COMMS_DATABASE_URL": scenario.engine.url.render_as_string(hide_password=False), "COLUMNS": columns},
        )
        assert result.exit_code == 0, result.output
        return result.stdout

    return run


def short(instant: str | None) -> str:
    """An ISO-8601 UTC instant as the tables show it (``12-05 22:00``)."""
    if instant is None:
        return "-"
    return datetime.fromisoformat(instant.replace("Z", "+00:00")).astimezone(UTC).strftime("%m-%d %H:%M")


def key_parts(key: str) -> list[str]:
    """A long occurrence key may wrap after ':' or '/': its pieces between them must each stay whole."""
    return [part for part in re.split(r"(?<=[:/])", key) if part] if len(key) > 20 else [key]


def assert_reads_whole(output: str, *, short_cells: Iterable[str], prose: Iterable[str]) -> None:
    """At most 80 columns, no ellipsis, each short cell whole on one line, each word of prose whole."""
    lines = output.splitlines()
    assert lines and max(len(line) for line in lines) <= 80
    assert "…" not in output
    for cell in short_cells:
        assert any(cell in line for line in lines), f"{cell!r} is not whole on one line:\n{output}"
    tokens = set(output.split())
    for text in prose:
        for word in text.split():
            assert word in tokens, f"word {word!r} of {text!r} was cut:\n{output}"


def test_timeline_at_80_columns(cli: Cli) -> None:
    """`comms timeline` at 80 columns: every key, offset, UTC time and channel whole."""
    args = ("timeline", "--start", "2026-12-05T22:00:00Z", "--plan", str(REPO_ROOT))
    result = cli(*args, env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    rows = json.loads(cli(*args, "--json").stdout)
    cells = [part for row in rows for part in key_parts(row["key"])]
    cells += [short(row["due_at"]) for row in rows if row["due_at"]]
    everyone = {name for row in rows for name in row["audiences"]}
    prose = [", ".join(row["channels"]) for row in rows]
    prose += ["all" if set(row["audiences"]) == everyone else ", ".join(row["audiences"]) for row in rows]
    assert_reads_whole(result.stdout, short_cells=cells, prose=prose)
    assert "America/New_York" not in result.stdout  # zone columns only when wide or asked for


def test_timeline_local_times_of_one_audience_at_80_columns(cli: Cli) -> None:
    """`--local executives` shows that audience's local times, each whole, under a header naming it."""
    args = ("timeline", "--start", "2026-12-05T22:00:00Z", "--plan", str(REPO_ROOT), "--local", "executives")
    result = cli(*args, env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "executives" in result.stdout.splitlines()[2]
    for local in ("12-03 22:00 GMT", "12-05 20:00 GMT", "12-12 22:00 GMT"):
        assert any(local in line for line in result.stdout.splitlines()), local
    assert_reads_whole(result.stdout, short_cells=["advance-notice", "success-metrics"], prose=[])


def test_timeline_wide_names_the_audiences_of_each_zone(cli: Cli) -> None:
    """`--wide` has a column per zone whose header names the audiences living in it."""
    args = ("timeline", "--start", "2026-12-05T22:00:00Z", "--plan", str(REPO_ROOT), "--wide")
    result = cli(*args, env={"COLUMNS": "300"})
    assert "America/New_York (end-users)" in result.stdout and "Europe/London (executives)" in result.stdout


def test_status_at_80_columns(run80: Callable[..., str]) -> None:
    """`comms status` at 80 columns: keys, states, channels, counts, due times and incidents whole."""
    output = run80("status")
    data = json.loads(run80("status", "--json", columns="400"))
    cells = [part for o in data["occurrences"] for part in key_parts(o["key"])]
    cells += [o["state"] for o in data["occurrences"]] + [c for o in data["occurrences"] for c in o["channels"]]
    cells += [short(m["due_at"]) for m in data["next"]] + [m["relative"] for m in data["next"]]
    cells += [short(i["opened_at"]) for i in data["incidents"]] + [short(e["at"]) for e in data["escalations"]]
    prose = [i["summary"] for i in data["incidents"]] + [e["detail"] for e in data["escalations"]]
    prose += [f"{n} sent" for o in data["occurrences"] for n in [c["sent"] for c in o["channels"].values()] if n]
    assert_reads_whole(output, short_cells=cells, prose=prose)
    assert "1 retrying" in output and "1 dead" in output


def test_report_at_80_columns(run80: Callable[..., str]) -> None:
    """`comms report` at 80 columns: rates, times, failure reasons and dead letters whole."""
    output = run80("report")
    data = json.loads(run80("report", "--json", columns="400"))
    cells = [r["key"] for r in data["by_channel"] + data["by_audience"]]
    cells += [part for i in data["lateness"] for part in key_parts(i["key"])]
    cells += [short(i["due_at"]) for i in data["lateness"]]
    cells += [short(i["first_sent_at"]) for i in data["lateness"] if i["first_sent_at"]]
    cells += [str(d["recipient"]) for d in data["dead_letters"]]
    prose = [f["reason"] for f in data["failures"]] + [d["error"] for d in data["dead_letters"]]
    prose += [i["summary"] for i in data["incidents"]] + [e["detail"] for e in data["failure_escalations"]]
    assert_reads_whole(output, short_cells=cells, prose=prose)


def test_incident_list_at_80_columns(run80: Callable[..., str]) -> None:
    """`comms incident list` at 80 columns: severity, state, status, times and summary whole."""
    output = run80("incident", "list")
    views = json.loads(run80("incident", "list", "--json", columns="400"))
    cells = [v["severity"] for v in views] + [v["state"] for v in views] + [v["status"] for v in views]
    cells += [short(v["opened_at"]) for v in views] + [short(v["next_escalation_at"]) for v in views]
    assert_reads_whole(output, short_cells=cells, prose=[v["summary"] for v in views])


def test_check_at_80_columns(cli: Cli, plan_copy: Path) -> None:
    """`comms check` at 80 columns, run in the folder above the plan: every name, result and detail whole."""
    start = (datetime.now(UTC) + timedelta(days=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    env = {"COMMS_OUTBOX_DIR": "outbox"}
    args = ("check", "--start", start, "--plan", plan_copy.name)
    output = cli(*args, env={**env, "COLUMNS": "80"}).stdout
    rows = json.loads(cli(*args, "--json", env=env).stdout)["rows"]
    assert_reads_whole(
        output, short_cells=[r["status"] for r in rows], prose=[r["name"] for r in rows] + [r["detail"] for r in rows]
    )
    assert "ready for a dry run" in " ".join(output.split())


def test_simulate_at_80_columns(cli: Cli, tmp_path: Path) -> None:
    """`comms simulate` of the default plan at 80 columns: every time, offset, key and state whole."""
    args = ("simulate", "--start", "2026-12-05T22:00:00Z", "--plan", str(REPO_ROOT), "--outbox", "outbox")
    result = cli(*args, env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = json.loads(cli(*args, "--json").stdout)["occurrences"]
    cells = [part for line in lines for part in key_parts(line["key"])] + [line["state"] for line in lines]
    cells += [short(line["sent_at"] or line["due_at"]) for line in lines]
    assert_reads_whole(result.stdout, short_cells=cells, prose=[])
