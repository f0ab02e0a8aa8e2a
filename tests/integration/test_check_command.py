"""Readiness (`comms check`) against the live fakes: ready, FAIL rows with exit 1, WARN rows when unconfigured."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from typer.testing import CliRunner

from comms.channels.factory import build_channels, close_channels
from comms.cli import app
from comms.clock import utc_now
from comms.core.times import iso_utc
from comms.reports.readiness import ReadinessReport, check_readiness, check_recipients_csv

from .builders import NOW, PAGE_ID, SENDGRID_KEY, SLACK_TOKEN, STATUSPAGE_KEY, T0, make_settings, write_plan


@pytest.fixture
def plan(tmp_path):
    return write_plan(tmp_path / "plan")


def _check(plan, settings, *, start=T0, now=NOW, clock=None) -> ReadinessReport:
    channels = build_channels(settings, sleep=clock.sleep if clock else lambda s: None)
    try:
        return check_readiness(plan, settings, start=start, now=now, channels=channels)
    finally:
        close_channels(channels)


def _row(report: ReadinessReport, name: str):
    return next(r for r in report.rows if r.name == name)


@pytest.fixture
def live(tmp_path, sendgrid, slack, statuspage):
    return make_settings(tmp_path, sendgrid=sendgrid, slack=slack, statuspage=statuspage)


def test_everything_in_place_is_ready_with_full_score(plan, live):
    """With valid plan, credentials, channels, components and T0, every row passes."""
    report = _check(plan, live, now=NOW - timedelta(hours=1))
    assert report.ready and report.score == 100.0, report.rows


def test_rows_cover_plan_templates_providers_recipients_and_t0(plan, live):
    """The report has a row for each area checked."""
    names = [r.name for r in _check(plan, live).rows]
    assert names == [
        "plan validates",
        "templates render",
        "email: SendGrid key",
        "slack: token",
        "slack: #cutover",
        "statuspage: page",
        "statuspage: components",
        "recipients: end-users",
        "T0 in the future",
        "earliest message on time",
    ]


def test_bot_not_in_channel_fails(plan, live, slack):
    """A Slack channel the bot is not a member of is a FAIL telling how to invite it."""
    slack.channel("cutover").is_member = False
    report = _check(plan, live)
    row = _row(report, "slack: #cutover")
    assert not report.ready and row.status == "FAIL" and "/invite @comms-bot" in row.detail


def test_missing_slack_channel_fails(plan, live, slack):
    """A Slack channel that does not exist is a FAIL."""
    del slack.channels[slack.channel("cutover").id]
    assert _row(_check(plan, live), "slack: #cutover").status == "FAIL"


def test_key_without_mail_send_fails(plan, live, sendgrid):
    """A SendGrid key lacking the mail.send scope is a FAIL."""
    sendgrid.scopes.remove("mail.send")
    row = _row(_check(plan, live), "email: SendGrid key")
    assert row.status == "FAIL" and "mail.send" in row.detail


def test_invalid_sendgrid_key_fails(tmp_path, plan, sendgrid, slack, statuspage):
    """A SendGrid key the provider refuses is a FAIL naming the setting to fix."""
    settings = make_settings(tmp_path, sendgrid=sendgrid, slack=slack, statuspage=statuspage, sendgrid_api_key="SG.bad")
    assert "COMMS_SENDGRID_API_KEY" in _row(_check(plan, settings), "email: SendGrid key").detail


def test_missing_component_fails(tmp_path, live):
    """A component id of the plan that is not on the page is a FAIL naming it."""
    plan = write_plan(tmp_path / "plan", components=("cmpgone00001",))
    row = _row(_check(plan, live), "statuspage: components")
    assert row.status == "FAIL" and "cmpgone00001" in row.detail


def test_wrong_page_id_fails(tmp_path, plan, sendgrid, slack, statuspage):
    """A page id the API does not know is a FAIL on the page row."""
    settings = make_settings(
        tmp_path, sendgrid=sendgrid, slack=slack, statuspage=statuspage, statuspage_page_id="nopage"
    )
    assert _row(_check(plan, settings), "statuspage: page").status == "FAIL"


def test_unconfigured_channels_warn_dry_run(tmp_path, plan):
    """Channels without credentials are WARN rows (dry run), which do not block readiness."""
    report = _check(plan, make_settings(tmp_path))
    warned = [r for r in report.rows if r.status == "WARN"]
    assert report.ready and len(warned) == 3 and all("dry run: no credentials" in r.detail for r in warned)


def test_warnings_lower_the_score(tmp_path, plan):
    """The score counts passed rows only: three dry-run warnings of eight rows give 62.5 %."""
    report = _check(plan, make_settings(tmp_path))
    assert report.score == pytest.approx(62.5)


def test_invalid_plan_fails(tmp_path, live):
    """A plan that does not validate is a FAIL listing the problem with its file."""
    plan = write_plan(tmp_path / "plan")
    (plan / "schedules" / "cutover.yaml").write_text("cutover: {name: x}\nmessages: {}\n")
    row = _row(_check(plan, live), "plan validates")
    assert row.status == "FAIL" and "cutover.yaml" in row.detail


def test_template_that_does_not_render_fails(tmp_path, live):
    """A template using an unknown variable is a FAIL on the templates row."""
    plan = write_plan(tmp_path / "plan")
    (plan / "templates" / "advance-notice" / "slack.j2").write_text("{{ nothing.here }}")
    assert _row(_check(plan, live), "templates render").status == "FAIL"


def test_invalid_csv_addresses_fail_with_line_numbers(tmp_path, live):
    """Invalid addresses in a recipients CSV are reported with their line numbers."""
    plan = write_plan(tmp_path / "plan", csv="email,name\nada@example.com,Ada\nnot-an-address,X\n\nbob@,Bob\n")
    row = _row(_check(plan, live), "recipients: end-users")
    assert row.status == "FAIL" and "line 3: 'not-an-address'" in row.detail and "line 5: 'bob@'" in row.detail


def test_csv_rows_are_counted(tmp_path):
    """A valid CSV passes with its row count."""
    path = tmp_path / "people.csv"
    path.write_text("email\n" + "".join(f"user{n}@example.com\n" for n in range(2500)))
    assert check_recipients_csv(path, name="x").detail.endswith("2500 recipients")


def test_csv_duplicates_warn(tmp_path):
    """The same address twice (any case) is a WARN."""
    path = tmp_path / "people.csv"
    path.write_text("email\nada@example.com\nADA@example.com\n")
    assert check_recipients_csv(path, name="x").status == "WARN"


def test_t0_in_the_past_fails(plan, live):
    """A T0 that is not in the future is a FAIL."""
    row = _row(_check(plan, live, start=NOW - timedelta(hours=1)), "T0 in the future")
    assert row.status == "FAIL"


def test_t0_too_soon_for_the_advance_notice_fails(plan, live):
    """T0 in 24 h makes the T-48h notice 24 h late, beyond its 6 h lateness: FAIL with the earliest T0."""
    row = _row(_check(plan, live, start=NOW + timedelta(hours=24)), "earliest message on time")
    assert row.status == "FAIL" and iso_utc(NOW + timedelta(hours=48)) in row.detail


def test_t0_slightly_too_soon_warns(plan, live):
    """T0 in 46 h makes the T-48h notice 2 h late, within its 6 h lateness: WARN."""
    assert _row(_check(plan, live, start=NOW + timedelta(hours=46)), "earliest message on time").status == "WARN"


def test_without_start_there_are_no_timing_rows(plan, live):
    """Without T0 no timing row is reported."""
    names = [r.name for r in _check(plan, live, start=None).rows]
    assert "T0 in the future" not in names


# the command ---------------------------------------------------------------------------------


@pytest.fixture
def cli_env(tmp_path, monkeypatch, sendgrid, slack, statuspage):
    """Point the CLI's environment at the fakes; run from an empty folder (no .env)."""
    monkeypatch.chdir(tmp_path)
    values = {
        "COMMS_SENDGRID_API_KEY": SENDGRID_KEY,
        "COMMS_SENDGRID_HOST": sendgrid.url,
        "COMMS_SLACK_TOKEN": SLACK_TOKEN,
        "COMMS_SLACK_BASE_URL": slack.api_url,
        "COMMS_STATUSPAGE_API_KEY": STATUSPAGE_KEY,
        "COMMS_STATUSPAGE_PAGE_ID": PAGE_ID,
        "COMMS_STATUSPAGE_BASE_URL": statuspage.api_url,
        "COMMS_OUTBOX_DIR": str(tmp_path / "outbox"),
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def _start() -> str:
    return iso_utc(utc_now() + timedelta(days=10))


def test_cli_check_ready_exits_0(plan, cli_env):
    """`comms check` with everything in place prints the table and score and exits 0."""
    result = CliRunner().invoke(app, ["check", "--plan", str(plan), "--start", _start()])
    assert result.exit_code == 0, result.output
    assert "Score 100%" in result.output and "ready" in result.output


def test_cli_check_json_prints_the_same_rows(plan, cli_env):
    """--json prints ready, score and every row."""
    result = CliRunner().invoke(app, ["check", "--plan", str(plan), "--start", _start(), "--json"])
    data = json.loads(result.stdout)
    assert result.exit_code == 0 and data["ready"] is True and data["score"] == 100.0
    assert {r["status"] for r in data["rows"]} == {"PASS"} and len(data["rows"]) == data["total"]


def test_cli_check_bot_not_in_channel_exits_1(plan, cli_env, slack):
    """A FAIL row (bot not in #cutover) makes `comms check` exit 1."""
    slack.channel("cutover").is_member = False
    result = CliRunner().invoke(app, ["check", "--plan", str(plan), "--json"])
    data = json.loads(result.stdout)
    assert result.exit_code == 1 and data["ready"] is False
    assert any(r["name"] == "slack: #cutover" and r["status"] == "FAIL" for r in data["rows"])


def test_cli_check_key_without_mail_send_exits_1(plan, cli_env, sendgrid):
    """A key lacking mail.send makes `comms check` exit 1."""
    sendgrid.scopes.remove("mail.send")
    result = CliRunner().invoke(app, ["check", "--plan", str(plan)])
    assert result.exit_code == 1 and "mail.send" in result.output


def test_cli_check_missing_component_exits_1(tmp_path, cli_env):
    """A plan component missing from the page makes `comms check` exit 1."""
    plan = write_plan(tmp_path / "plan2", components=("cmpgone00001",))
    result = CliRunner().invoke(app, ["check", "--plan", str(plan), "--json"])
    assert result.exit_code == 1 and "cmpgone00001" in result.stdout


def test_cli_check_unconfigured_warns_and_exits_0(plan, tmp_path, monkeypatch):
    """Without credentials the rows WARN (dry run) and `comms check` still exits 0."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COMMS_OUTBOX_DIR", str(tmp_path / "outbox"))
    result = CliRunner().invoke(app, ["check", "--plan", str(plan), "--json"])
    data = json.loads(result.stdout)
    assert result.exit_code == 0 and [r["status"] for r in data["rows"]].count("WARN") == 3


def test_cli_check_naive_start_needs_tz(plan, cli_env):
    """A naive --start without --tz is an input error (exit 2)."""
    result = CliRunner().invoke(app, ["check", "--plan", str(plan), "--start", "2030-01-01T10:00"])
    assert result.exit_code == 2
