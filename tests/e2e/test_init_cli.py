"""`comms init` writes a plan that validates and rehearses as written; its options choose audiences and channels."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import Result

Cli = Callable[..., Result]
T0 = "2026-12-05T22:00:00Z"


def test_init_then_validate_then_simulate(cli: Cli, tmp_path: Path) -> None:
    """The default scaffold validates and its rehearsal sends every message on email, Slack and the status page."""
    plan = tmp_path / "x"
    assert cli("init", plan).exit_code == 0
    validated = cli("validate", "--plan", plan)
    assert validated.exit_code == 0, validated.output
    assert "3 audiences, 4 messages" in validated.output
    rehearsal = cli("simulate", "--plan", plan, "--start", T0, "--json", "--outbox", tmp_path / "outbox")
    assert rehearsal.exit_code == 0, rehearsal.output
    lines = json.loads(rehearsal.output)["occurrences"]
    assert {line["key"].split("/")[0] for line in lines} == {"announcement", "starting", "complete"}
    assert all(line["state"] == "done" for line in lines)
    assert all(line["deliveries"] == {"email": 2, "slack": 1, "statuspage": 1} for line in lines)


def test_init_rollback_rehearsal(cli: Cli, tmp_path: Path) -> None:
    """The scaffold's rollback message goes out when the rehearsal rolls back at its one stage (100 %)."""
    plan = tmp_path / "x"
    cli("init", plan)
    rehearsal = cli(
        "simulate", "--plan", plan, "--start", T0, "--json", "--rollback-at", "100", "--outbox", tmp_path / "outbox"
    )
    assert rehearsal.exit_code == 0, rehearsal.output
    states = {o["key"].split("/")[0]: o["state"] for o in json.loads(rehearsal.output)["occurrences"]}
    assert states["rollback"] == "done" and "complete" not in states


def test_init_audience_option_chooses_audiences_and_channels(cli: Cli, tmp_path: Path) -> None:
    """`--audience ops=slack,webhook --audience users=email` writes exactly those audiences and channel templates."""
    plan = tmp_path / "p"
    result = cli("init", plan, "--audience", "ops=slack,webhook", "--audience", "users=email")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (plan / "audiences").iterdir()) == ["ops.yaml", "users.yaml"]
    assert sorted(p.name for p in (plan / "templates/complete").iterdir()) == [
        "email.html.j2",
        "email.subject.j2",
        "email.text.j2",
        "slack.j2",
        "webhook.subject.j2",
        "webhook.text.j2",
    ]
    assert cli("validate", "--plan", plan).exit_code == 0
    rehearsal = cli("simulate", "--plan", plan, "--start", T0, "--json", "--outbox", tmp_path / "outbox")
    assert rehearsal.exit_code == 0, rehearsal.output
    deliveries = json.loads(rehearsal.output)["occurrences"][0]["deliveries"]
    assert deliveries == {"email": 2, "slack": 1, "webhook": 1}


def test_init_channel_option(cli: Cli, tmp_path: Path) -> None:
    """`--channel email` writes one email audience and no Slack or status-page templates."""
    plan = tmp_path / "p"
    assert cli("init", plan, "--channel", "email").exit_code == 0
    assert [p.name for p in (plan / "audiences").iterdir()] == ["customers.yaml"]
    assert not list(plan.glob("templates/*/slack.j2")) and not list(plan.glob("templates/*/statuspage.*"))
    assert cli("validate", "--plan", plan).exit_code == 0


@pytest.mark.parametrize("args", [("--channel", "fax"), ("--audience", "Ops=slack"), ("--audience", "ops=pager")])
def test_init_rejects_bad_options(cli: Cli, tmp_path: Path, args: tuple[str, str]) -> None:
    """An unknown channel or a bad audience name is bad input (exit 2) and writes nothing."""
    result = cli("init", tmp_path / "p", *args)
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "p").exists()


def test_init_refuses_a_folder_holding_a_plan(cli: Cli, tmp_path: Path) -> None:
    """A second `comms init` into the same folder exits 2 and leaves the first plan alone."""
    cli("init", tmp_path)
    before = (tmp_path / "schedules/cutover.yaml").read_text()
    result = cli("init", tmp_path, "--channel", "slack")
    assert result.exit_code == 2 and "already holds a plan" in result.output
    assert (tmp_path / "schedules/cutover.yaml").read_text() == before


def test_scaffold_yaml_names_its_schemas(cli: Cli, tmp_path: Path) -> None:
    """Each YAML file's first line points the YAML language server at a schema file written beside it."""
    cli("init", tmp_path)
    for path in [*tmp_path.glob("audiences/*.yaml"), tmp_path / "schedules/cutover.yaml"]:
        first = path.read_text().splitlines()[0]
        assert first.startswith("# yaml-language-server: $schema=../schemas/")
        assert (path.parent / first.split("=", 1)[1]).resolve().is_file()


def test_every_scaffold_template_says_what_its_variables_are(cli: Cli, tmp_path: Path) -> None:
    """Every template that prints a variable other than message.title carries a Jinja comment."""
    cli("init", tmp_path, "--channel", "email", "--channel", "slack", "--channel", "statuspage", "--channel", "webhook")
    for path in tmp_path.glob("templates/*/*.j2"):
        text = path.read_text()
        if "{{" in text.replace("{{ cutover.title }}", "").replace("{{ message.title }}", ""):
            assert "{#" in text, path


def test_simulate_removes_its_temporary_database(cli: Cli, tmp_path: Path) -> None:
    """Without --db the rehearsal's database is gone afterwards and the output says it was not kept."""
    plan = tmp_path / "x"
    cli("init", plan)
    before = set(Path(tempfile.gettempdir()).glob("comms-rehearsal-*"))
    result = cli("simulate", "--plan", plan, "--start", T0, "--outbox", tmp_path / "outbox")
    assert result.exit_code == 0, result.output
    assert set(Path(tempfile.gettempdir()).glob("comms-rehearsal-*")) <= before
    assert "database not kept" in result.output


def test_simulate_keeps_the_database_given_with_db(cli: Cli, tmp_path: Path) -> None:
    """With --db FILE the rehearsal's database stays there and the output names it."""
    plan = tmp_path / "x"
    cli("init", plan)
    result = cli("simulate", "--plan", plan, "--start", T0, "--outbox", tmp_path / "o", "--db", tmp_path / "r.db")
    assert result.exit_code == 0 and (tmp_path / "r.db").is_file() and "r.db" in result.output


def test_schema_command_writes_the_three_schemas(cli: Cli, tmp_path: Path) -> None:
    """`comms schema --out DIR` writes the audience, schedule and escalation schemas as JSON."""
    assert cli("schema", "--out", tmp_path).exit_code == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["audience.schema.json", "escalation.schema.json", "schedule.schema.json"]
    assert json.loads((tmp_path / "audience.schema.json").read_text())["title"] == "Audience"


def test_vars_command_lists_variables_and_filters(cli: Cli, tmp_path: Path) -> None:
    """`comms vars complete` on a scaffold lists event.completed_at and the filters with examples."""
    cli("init", tmp_path / "x")
    result = cli("vars", "complete", "--plan", tmp_path / "x")
    assert result.exit_code == 0, result.output
    assert "event.completed_at" in result.output and "cutover.facts.support_email" in result.output
    assert "local_span(cutover.end)" in result.output
    assert cli("vars", "nope", "--plan", tmp_path / "x").exit_code == 2
