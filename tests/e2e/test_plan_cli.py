"""The plan commands run in-process: validate, timeline (table and --json), preview and the gallery."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from comms.cli import app
from comms.core.timeline import build_timeline
from comms.plan.loader import sent_combinations
from comms.plan.models import Plan

Cli = Callable[..., Result]
REPO_ROOT = Path(__file__).resolve().parents[2]

T0 = "2026-12-05T22:00:00Z"


def test_validate_default_plan_exits_zero(cli: Cli, repo_root: Path) -> None:
    """`comms validate` on the default plan succeeds and says what it checked."""
    result = cli("validate", "--plan", repo_root)
    assert result.exit_code == 0, result.output
    assert "Plan is valid: 5 audiences, 21 messages" in result.output


def test_validate_accepts_a_spreadsheet_csv_with_bom_semicolons_and_crlf(cli: Cli, plan_copy: Path) -> None:
    """A recipients CSV saved by a spreadsheet (BOM, ``;``, CRLF) validates like a plain one."""
    csv = plan_copy / "audiences/end-users.csv"
    text = csv.read_text(encoding="utf-8").replace(",", ";").replace("\n", "\r\n")
    csv.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    result = cli("validate", "--plan", plan_copy)
    assert result.exit_code == 0, result.output
    assert "Plan is valid" in result.output


def test_timeline_json_lists_every_occurrence_with_its_fields(cli: Cli, repo_root: Path, default_plan: Plan) -> None:
    """`comms timeline --json` prints one object per occurrence with message, due_at, trigger, audiences, channels."""
    result = cli("timeline", "--start", T0, "--plan", repo_root, "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [row["key"] for row in rows] == [
        o.key for o in build_timeline(default_plan, datetime(2026, 12, 5, 22, tzinfo=UTC))
    ]
    for row in rows:
        assert {"message", "due_at", "trigger", "audiences", "channels"} <= set(row)


def test_timeline_json_times_are_utc_iso(cli: Cli, repo_root: Path) -> None:
    """Timed occurrences carry ISO UTC instants; event-bound ones carry null and their trigger."""
    rows = {row["key"]: row for row in json.loads(cli("timeline", "--start", T0, "--plan", repo_root, "--json").stdout)}
    assert rows["advance-notice"]["due_at"] == "2026-12-03T22:00:00Z"
    assert rows["progress-update#5"]["due_at"] == "2026-12-06T08:00:00Z"
    assert "progress-update#6" not in rows
    assert (rows["traffic-stage@50"]["due_at"], rows["traffic-stage@50"]["trigger"]) == (None, "stage")
    assert rows["reminder"]["audiences"] == ["end-users", "executives", "support", "engineering", "customer-success"]
    assert rows["reminder"]["channels"] == ["email", "slack"]


def test_timeline_json_gives_each_audience_its_local_time(cli: Cli, repo_root: Path) -> None:
    """The JSON shows each audience's local time of a timed occurrence."""
    rows = {row["key"]: row for row in json.loads(cli("timeline", "--start", T0, "--plan", repo_root, "--json").stdout)}
    assert rows["starting"]["local"]["end-users"] == "Sat 5 Dec 2026, 17:00 EST"
    assert rows["starting"]["local"]["engineering"] == "Sat 5 Dec 2026, 22:00 UTC"


def test_timeline_naive_start_with_tz(cli: Cli, repo_root: Path) -> None:
    """A naive --start with --tz is read in that zone."""
    result = cli(
        "timeline", "--start", "2026-12-05T17:00:00", "--tz", "America/New_York", "--plan", repo_root, "--json"
    )
    rows = {row["key"]: row for row in json.loads(result.stdout)}
    assert rows["starting"]["due_at"] == "2026-12-05T22:00:00Z"


def test_timeline_table_shows_local_columns(cli: Cli, repo_root: Path) -> None:
    """The table view shows the T0 and audience-zone columns."""
    result = cli("timeline", "--start", T0, "--plan", repo_root)
    assert result.exit_code == 0, result.output
    assert "2026-12-05T22:00:00Z" in result.output
    assert "America/New_York" in result.output


def test_timeline_naive_start_without_tz_exits_2(cli: Cli, repo_root: Path) -> None:
    """A naive --start without --tz exits 2 with the reason and no traceback."""
    result = cli("timeline", "--start", "2026-12-05T22:00:00", "--plan", repo_root)
    assert result.exit_code == 2
    assert "has no time zone" in result.output
    assert "Traceback" not in result.output


def test_timeline_start_in_dst_gap_exits_2(cli: Cli, repo_root: Path) -> None:
    """A --start in the spring-forward gap exits 2 saying the time does not exist."""
    result = cli("timeline", "--start", "2027-03-28T01:30:00", "--tz", "Europe/London", "--plan", repo_root)
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_preview_email_prints_subject_and_text(cli: Cli, repo_root: Path) -> None:
    """`comms preview MESSAGE --audience A --channel email` prints the subject and the text part."""
    result = cli("preview", "reminder", "--audience", "end-users", "--channel", "email", "--plan", repo_root)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Subject: Reminder: planned maintenance tomorrow, Sat 5 Dec 2026, 17:00 EST")


def test_preview_slack_prints_blocks_json(cli: Cli, repo_root: Path) -> None:
    """A Slack preview prints the message as JSON with its blocks."""
    result = cli("preview", "starting", "--audience", "engineering", "--channel", "slack", "--plan", repo_root)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["blocks"][0]["type"] == "header"


def test_preview_var_is_passed_as_data(cli: Cli, repo_root: Path) -> None:
    """--var summary={{ 7*7 }} is shown literally in the preview."""
    result = cli("preview", "announcement", "--audience", "support", "--var", "summary={{ 7*7 }}", "--plan", repo_root)
    assert result.exit_code == 0, result.output
    assert "{{ 7*7 }}" in result.output


def test_preview_with_start_renders_that_t0(cli: Cli, repo_root: Path) -> None:
    """--start changes the rendered times, in the audience's zone and across DST."""
    result = cli(
        "preview", "advance-notice", "--audience", "executives", "--start", "2027-03-28T00:30:00Z", "--plan", repo_root
    )
    assert "Sun 28 Mar 2027, 00:30 GMT to 13:30 BST" in result.output


def test_preview_unknown_audience_exits_2(cli: Cli, repo_root: Path) -> None:
    """An unknown --audience exits 2 listing the known audiences."""
    result = cli("preview", "reminder", "--audience", "investors", "--plan", repo_root)
    assert result.exit_code == 2
    assert "unknown audience 'investors'" in result.output


def test_preview_unknown_message_exits_2(cli: Cli, repo_root: Path) -> None:
    """An unknown message key exits 2 and names it."""
    result = cli("preview", "newsletter", "--audience", "support", "--plan", repo_root)
    assert result.exit_code == 2
    assert "unknown message 'newsletter'" in result.output


@pytest.fixture(scope="module")
def gallery(tmp_path_factory: pytest.TempPathFactory) -> tuple[Result, Path]:
    """One `comms preview --all --out DIR` run of the default plan, shared by the gallery tests."""
    out = tmp_path_factory.mktemp("gallery")
    result = CliRunner().invoke(
        app, ["preview", "--all", "--out", str(out), "--plan", str(REPO_ROOT)], env={"COLUMNS": "400"}
    )
    return result, out


def test_gallery_links_one_existing_page_per_sent_combination(gallery: tuple[Result, Path], default_plan: Plan) -> None:
    """`comms preview --all --out DIR` writes index.html linking one existing page per sent combination."""
    result, out = gallery
    assert result.exit_code == 0, result.output
    links = re.findall(r"href='([^']+)'", (out / "index.html").read_text(encoding="utf-8"))
    assert len(links) == len(set(links)) == len(sent_combinations(default_plan))
    assert all((out / link).is_file() for link in links)


def test_gallery_reports_how_many_previews_it_wrote(gallery: tuple[Result, Path], default_plan: Plan) -> None:
    """The gallery command says how many previews it wrote and where the index is."""
    result, out = gallery
    assert f"Wrote {len(sent_combinations(default_plan))} previews" in " ".join(result.output.split())
    assert "index.html" in result.output


def test_gallery_pages_link_back_to_index(gallery: tuple[Result, Path]) -> None:
    """Every gallery page links back to the index."""
    _, out = gallery
    pages = [page for page in out.glob("*.html") if page.name != "index.html"]
    assert pages and all("href='index.html'" in page.read_text(encoding="utf-8") for page in pages)


def test_gallery_shows_a_hostile_cutover_title_as_text(cli: Cli, plan_copy: Path, tmp_path: Path) -> None:
    """A cutover title holding <script> and a quote-breaking onload= shows as text on the index and the pages, forming no tag."""
    hostile = '<script>alert(1)</script>"onload=alert(2) & more'
    schedule = plan_copy / "schedules" / "cutover.yaml"
    text = schedule.read_text(encoding="utf-8")
    schedule.write_text(text.replace("title: Firestore to Supabase migration", f"title: {json.dumps(hostile)}", 1))
    out = tmp_path / "gallery"
    result = cli("preview", "--all", "--out", out, "--plan", plan_copy)
    assert result.exit_code == 0, result.output
    pages = {page.name: page.read_text(encoding="utf-8") for page in out.glob("*.html")}
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;&#34;onload=alert(2) &amp; more"
    assert f"<h1>{escaped}: every message</h1>" in pages["index.html"]
    shown_in = {name.rsplit("--", 1)[1] for name, page in pages.items() if escaped in page and name != "index.html"}
    # Subjects, status page titles and Slack text show it (Slack text is unescaped once before the page escapes it).
    assert shown_in == {"email.html", "statuspage.html", "slack.html"}
    assert not [name for name, page in pages.items() if "<script>" in page or '"onload=' in page]
