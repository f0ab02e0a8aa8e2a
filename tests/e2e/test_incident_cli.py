"""`comms incident ...` and `comms send` as a user runs them, against the outbox channels."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select
from typer.testing import Result

from comms.plan.loader import load_plan
from comms.services.scheduling import schedule_cutover
from comms.store.engine import make_engine
from comms.store.tables import OccurrenceRow

REPO_ROOT = Path(__file__).resolve().parents[2]
PLAN = load_plan(REPO_ROOT, check_templates=False)  # scheduled through the service: `comms schedule` has its own tests

Cli = Callable[..., Result]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A database and an outbox under tmp_path, no credentials, and a cutover scheduled a month ahead."""
    values = {"COMMS_DATABASE_URL": f"sqlite:///{tmp_path}/comms.db", "COMMS_OUTBOX_DIR": str(tmp_path / "outbox")}
    for name in ("COMMS_SENDGRID_API_KEY", "COMMS_SLACK_TOKEN", "COMMS_STATUSPAGE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    now = datetime.now(UTC)
    schedule_cutover(make_engine(values["COMMS_DATABASE_URL"]), PLAN, start=now + timedelta(days=30), now=now)
    return values


def _incidents(cli: Cli) -> list[dict[str, Any]]:
    result = cli("incident", "list", "--json")
    assert result.exit_code == 0, result.output
    data: list[dict[str, Any]] = json.loads(result.stdout)
    return data


def _outbox_text(env: dict[str, str]) -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in Path(env["COMMS_OUTBOX_DIR"]).rglob("*.json"))


def _adhoc_rows(env: dict[str, str]) -> list[OccurrenceRow]:
    with Session(make_engine(env["COMMS_DATABASE_URL"])) as session:
        return list(session.exec(select(OccurrenceRow).where(OccurrenceRow.trigger == "adhoc")).all())


def test_open_then_list_shows_the_incident_and_its_first_steps(env: dict[str, str], cli: Cli) -> None:
    """`incident open` exits 0; `incident list --json` shows it open with the opened and level-1 steps."""
    result = cli("incident", "open", "--severity", "sev1", "--summary", "Sign-in fails", "--component", "Auth")
    assert result.exit_code == 0, result.output
    assert "Incident #1 opened" in result.output
    [incident] = _incidents(cli)
    assert (incident["id"], incident["severity"], incident["state"], incident["summary"]) == (
        1,
        "sev1",
        "open",
        "Sign-in fails",
    )
    assert [step["kind"] for step in incident["history"]] == ["opened", "notified"]


def test_open_writes_the_announcements_to_the_outbox(env: dict[str, str], cli: Cli) -> None:
    """Opening a sev1 writes Slack posts and the status-page incident request to the outbox."""
    cli("incident", "open", "--severity", "sev1", "--summary", "Sign-in fails")
    outbox = _outbox_text(env)
    assert "Sign-in fails" in outbox and '"impact_override": "major"' in outbox


def test_lifecycle_through_the_cli(env: dict[str, str], cli: Cli) -> None:
    """open -> update -> ack -> resolve each exit 0 and leave a resolved incident with its history."""
    assert cli("incident", "open", "--severity", "sev2", "--summary", "Search is slow").exit_code == 0
    for args in (
        ("update", "1", "--status", "identified", "--message", "An index is missing"),
        ("ack", "1", "--by", "Dana"),
        ("resolve", "1", "--message", "Index rebuilt"),
    ):
        result = cli("incident", *args)
        assert result.exit_code == 0, result.output
    [incident] = _incidents(cli)
    assert (incident["state"], incident["acked_by"]) == ("resolved", "Dana")
    kinds = [step["kind"] for step in incident["history"]]
    assert kinds == ["opened", "notified", "updated", "acked", "resolved"]


def test_ack_of_a_resolved_incident_exits_2(env: dict[str, str], cli: Cli) -> None:
    """Acknowledging a resolved incident exits 2 with a clear message."""
    cli("incident", "open", "--severity", "sev3", "--summary", "Typo on the banner")
    cli("incident", "resolve", "1", "--message", "Fixed")
    result = cli("incident", "ack", "1", "--by", "Dana")
    assert result.exit_code == 2 and "incident #1 is already resolved" in result.output


def test_update_of_an_unknown_incident_exits_2(env: dict[str, str], cli: Cli) -> None:
    """Updating an incident that does not exist exits 2 and names it."""
    result = cli("incident", "update", "9", "--status", "identified", "--message", "x")
    assert result.exit_code == 2 and "no incident #9" in result.output


def test_unknown_severity_exits_2(env: dict[str, str], cli: Cli) -> None:
    """--severity sev5 exits 2 naming --severity, and no incident is stored."""
    result = cli("incident", "open", "--severity", "sev5", "--summary", "x")
    assert result.exit_code == 2 and "--severity" in result.output
    assert _incidents(cli) == []


def test_list_table_shows_the_summary(env: dict[str, str], cli: Cli) -> None:
    """`incident list` without --json prints a table with the summary, rich markup left as typed."""
    cli("incident", "open", "--severity", "sev3", "--summary", "[bold]Banner[/bold] typo")
    result = cli("incident", "list")
    assert result.exit_code == 0 and "[bold]Banner[/bold] typo" in result.output


def test_send_delivers_an_announcement_with_literal_vars(env: dict[str, str], cli: Cli) -> None:
    """`comms send announcement` exits 0; its Slack post shows --var values escaped and unevaluated."""
    result = cli(
        "send",
        "announcement",
        "--audience",
        "engineering,executives",
        "--channel",
        "slack",
        "--var",
        "summary=<!channel> {{ 7*7 }} <script>x</script> @here",
        "--var",
        "details=ok",
    )
    assert result.exit_code == 0, result.output
    assert "adhoc:announcement/1" in result.output
    outbox = _outbox_text(env)
    assert "&lt;!channel&gt; {{ 7*7 }} &lt;script&gt;x&lt;/script&gt; @here" in outbox
    assert "<!channel>" not in outbox and "<script>" not in outbox


def test_send_bad_audience_exits_2_and_stores_nothing(env: dict[str, str], cli: Cli) -> None:
    """An unknown --audience exits 2 naming the argument; no occurrence is stored."""
    result = cli("send", "announcement", "--audience", "board", "--var", "summary=x")
    assert result.exit_code == 2 and "--audience" in result.output
    assert _adhoc_rows(env) == []


def test_send_malformed_var_exits_2(env: dict[str, str], cli: Cli) -> None:
    """--var without '=' exits 2 naming --var."""
    result = cli("send", "announcement", "--audience", "engineering", "--var", "summary")
    assert result.exit_code == 2 and "--var" in result.output
    assert _adhoc_rows(env) == []


def test_send_missing_var_exits_2(env: dict[str, str], cli: Cli) -> None:
    """A template value the command did not give exits 2 naming --var."""
    result = cli("send", "announcement", "--audience", "engineering")
    assert result.exit_code == 2 and "--var" in result.output
    assert _adhoc_rows(env) == []
