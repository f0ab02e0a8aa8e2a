"""`comms status`, `comms report`, `comms kpis` and `comms audit` as a user runs them, on a store filled by a real run."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import Result

from comms.plan.loader import load_plan
from comms.reports.audit import AUDIT_COLUMNS, iter_audit_rows
from comms.reports.effectiveness import effectiveness_report
from comms.reports.status import cutover_status
from comms.services.scheduling import schedule_cutover
from comms.store.engine import make_engine
from tests.integration.test_status_report import SLACK_ERROR, T0, Scenario, run_scenario

REPO_ROOT = Path(__file__).resolve().parents[2]
Cli = Callable[..., Result]


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No COMMS_* variable or .env file of the developer's reaches the commands."""
    for name in list(os.environ):
        if name.upper().startswith("COMMS_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory, module_database_url: str) -> Scenario:
    """One real run whose database the commands read, on SQLite and on PostgreSQL."""
    return run_scenario(tmp_path_factory.mktemp("report-cli"), module_database_url)


@pytest.fixture
def run(cli: Cli, scenario: Scenario) -> Callable[..., Result]:
    """Invoke comms against the scenario's database."""
    url = scenario.engine.url.render_as_string(hide_password=False)
    return lambda *args: cli(*args, env={"COMMS_DATABASE_URL": url})


@pytest.fixture
def scheduled(tmp_path: Path, cli: Cli) -> Callable[..., Result]:
    """Invoke comms against a fresh database holding just a scheduled cutover."""
    url = f"sqlite:///{tmp_path}/fresh.db"
    schedule_cutover(
        make_engine(url), load_plan(REPO_ROOT, check_templates=False), start=T0, now=T0 - timedelta(days=3)
    )
    return lambda *args: cli(*args, env={"COMMS_DATABASE_URL": url})


# -- status -----------------------------------------------------------------------------------


def test_status_without_a_cutover_exits_2(cli: Cli, tmp_path: Path) -> None:
    """With nothing scheduled, `comms status` exits 2 and says to schedule first."""
    result = cli("status", env={"COMMS_DATABASE_URL": f"sqlite:///{tmp_path}/empty.db"})
    assert result.exit_code == 2 and "comms schedule" in result.output


def test_status_json_is_the_service_view(run: Callable[..., Result], scenario: Scenario) -> None:
    """`status --json` prints the status service's data: state, totals and per-occurrence counts."""
    result = run("status", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    expected = cutover_status(scenario.engine, cutover_name=None, now=scenario.clock()).to_json()
    assert data["state_label"] == "in progress at stage 25 %"
    assert data["totals"] == expected["totals"] and data["occurrences"] == expected["occurrences"]
    assert [m["key"] for m in data["next"]] == [m["key"] for m in expected["next"]]


def test_status_table_shows_state_counts_and_incidents(run: Callable[..., Result]) -> None:
    """The terminal view names the state, the occurrences with their counts, and the open incidents."""
    result = run("status")
    assert result.exit_code == 0, result.output
    for text in ("in progress at stage 25 %", "advance-notice", "retrying", "Dashboards lag", "Next messages"):
        assert text in result.stdout, text


# -- report -----------------------------------------------------------------------------------


def test_report_json_is_the_service_report(run: Callable[..., Result], scenario: Scenario) -> None:
    """`report --json` prints the report service's figures."""
    result = run("report", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    expected = effectiveness_report(scenario.engine, cutover_name=None, now=scenario.clock()).to_json()
    for key in ("by_channel", "by_audience", "timeliness", "failures", "retries", "dead_letters", "incidents"):
        assert data[key] == expected[key], key


def test_report_table_shows_failures_as_text(run: Callable[..., Result]) -> None:
    """The terminal report lists rates and the failure reason verbatim (markup in it is not interpreted)."""
    result = run("report")
    assert result.exit_code == 0, result.output
    assert "By channel" in result.stdout and "By audience" in result.stdout
    assert SLACK_ERROR in result.stdout.replace("\n", "")


def test_report_html_writes_one_file_and_keeps_json_clean(run: Callable[..., Result], tmp_path: Path) -> None:
    """`--html FILE --json` writes the HTML file; stdout stays pure JSON, the note goes to stderr."""
    target = tmp_path / "report.html"
    result = run("report", "--json", "--html", str(target))
    assert result.exit_code == 0, result.output
    json.loads(result.stdout)
    assert target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert "Wrote the HTML report" in result.stderr
    assert not list(tmp_path.glob("*.partial"))


def test_report_html_to_a_missing_folder_exits_2(run: Callable[..., Result], tmp_path: Path) -> None:
    """An HTML path that cannot be written is an input error naming it."""
    target = tmp_path / "no" / "such" / "report.html"
    result = run("report", "--html", str(target))
    assert result.exit_code == 2 and "cannot write" in result.output


# -- KPIs -------------------------------------------------------------------------------------


def test_kpis_set_then_show(scheduled: Callable[..., Result], tmp_path: Path) -> None:
    """`kpis set --file` stores the mapping; `kpis show --json` prints it back."""
    (tmp_path / "kpis.yaml").write_text("uptime: 99.97 %\nerror_rate: 0.3 %\n", encoding="utf-8")
    result = scheduled("kpis", "set", "--file", str(tmp_path / "kpis.yaml"))
    assert result.exit_code == 0, result.output
    shown = scheduled("kpis", "show", "--json")
    assert json.loads(shown.stdout) == {"uptime": "99.97 %", "error_rate": "0.3 %"}


def test_kpis_set_with_a_bad_file_exits_2_naming_it(scheduled: Callable[..., Result], tmp_path: Path) -> None:
    """A KPI file that is not a mapping exits 2 and names the file."""
    bad = tmp_path / "kpis.yaml"
    bad.write_text("- uptime\n", encoding="utf-8")
    result = scheduled("kpis", "set", "--file", str(bad))
    assert result.exit_code == 2 and "kpis.yaml" in result.output and "mapping" in result.output


# -- audit ------------------------------------------------------------------------------------


def test_audit_export_csv_to_stdout(run: Callable[..., Result], scenario: Scenario) -> None:
    """`audit export` writes CSV to stdout: the header and one line per delivery."""
    result = run("audit", "export")
    assert result.exit_code == 0, result.output
    reader = csv.DictReader(io.StringIO(result.stdout))
    assert tuple(reader.fieldnames or ()) == AUDIT_COLUMNS
    assert len(list(reader)) == len(list(iter_audit_rows(scenario.engine, cutover_name=None)))


def test_audit_export_json_to_a_file(run: Callable[..., Result], scenario: Scenario, tmp_path: Path) -> None:
    """`--format json --out FILE` writes the rows to FILE and reports the count on stderr."""
    target = tmp_path / "audit.json"
    result = run("audit", "export", "--format", "json", "--out", str(target))
    assert result.exit_code == 0, result.output
    rows = json.loads(target.read_text(encoding="utf-8"))
    assert rows == [row.to_json() for row in iter_audit_rows(scenario.engine, cutover_name=None)]
    assert f"Exported {len(rows)} deliveries" in result.stderr and not list(tmp_path.glob("*.partial"))


def test_audit_export_unknown_format_exits_2(run: Callable[..., Result], tmp_path: Path) -> None:
    """An unknown format exits 2 before any file is created."""
    result = run("audit", "export", "--format", "xml", "--out", str(tmp_path / "audit.xml"))
    assert result.exit_code == 2 and "csv or json" in result.output
    assert not (tmp_path / "audit.xml").exists()


def test_audit_show_prints_the_content_and_its_check(run: Callable[..., Result], scenario: Scenario) -> None:
    """`audit show ID` prints the email's subject and text and confirms the hash."""
    row = next(r for r in iter_audit_rows(scenario.engine, cutover_name=None) if r.channel == "email")
    result = run("audit", "show", str(row.delivery_id))
    assert result.exit_code == 0, result.output
    assert "Subject" in result.stdout and f"{row.content_sha256} matches" in result.stdout
    assert row.recipient in result.stdout


def test_audit_show_unknown_delivery_exits_2(run: Callable[..., Result]) -> None:
    """An unknown delivery id exits 2."""
    result = run("audit", "show", "999999")
    assert result.exit_code == 2 and "no delivery #999999" in result.output
