"""The self-contained HTML report of a real run, parsed back with html.parser: tables, SVG timeline, escaping."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from comms.core.times import iso_utc
from comms.reports.effectiveness import effectiveness_report
from comms.reports.effectiveness_html import render_report_html
from comms.reports.effectiveness_model import EffectivenessReport
from tests.integration.test_status_report import FINAL_NOTICE_DELAY, SLACK_ERROR, T0, Scenario, run_scenario


class ParsedReport(HTMLParser):
    """Tables by id (rows of cell texts), the timeline's points, every tag and every attribute seen."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: dict[str, list[list[str]]] = {}
        self.points: list[dict[str, str]] = []
        self.tags: set[str] = set()
        self.attributes: list[tuple[str, str]] = []
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._in_svg = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        self.tags.add(tag)
        self.attributes.extend(values.items())
        if tag == "table" and "id" in values:
            self._table = values["id"]
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "svg" and values.get("id") == "timeline":
            self._in_svg = True
        elif tag == "g" and self._in_svg and values.get("class") == "point":
            self.points.append(values)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell))
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table is not None:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None
        elif tag == "svg":
            self._in_svg = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory, module_database_url: str) -> Scenario:
    """One real run shared by this module's tests, on SQLite and on PostgreSQL."""
    return run_scenario(tmp_path_factory.mktemp("report-html"), module_database_url)


@pytest.fixture(scope="module")
def report(scenario: Scenario) -> EffectivenessReport:
    """The effectiveness report at the end of the run."""
    return effectiveness_report(scenario.engine, cutover_name=None, now=scenario.clock())


@pytest.fixture(scope="module")
def page(report: EffectivenessReport) -> str:
    """The HTML document."""
    return render_report_html(report)


@pytest.fixture(scope="module")
def parsed(page: str) -> ParsedReport:
    """The document parsed back."""
    parser = ParsedReport()
    parser.feed(page)
    parser.close()
    return parser


def test_channel_table_holds_the_run_figures(report: EffectivenessReport, parsed: ParsedReport) -> None:
    """The by-channel table has one row per channel with the report's counts and rate."""
    header, *rows = parsed.tables["by-channel"]
    assert header[:3] == ["channel", "deliveries", "sent"]
    expected = [
        [
            r.key,
            str(r.total),
            str(r.sent),
            str(r.dead),
            str(r.uncertain),
            str(r.missed),
            str(r.open),
            str(r.cancelled),
            str(r.rate),
        ]
        for r in report.by_channel
    ]
    assert rows == expected


def test_audience_table_holds_every_audience(report: EffectivenessReport, parsed: ParsedReport) -> None:
    """The by-audience table lists every audience that had deliveries, with its sent count."""
    _, *rows = parsed.tables["by-audience"]
    assert {row[0]: row[2] for row in rows} == {r.key: str(r.sent) for r in report.by_audience}


def test_timeline_has_a_point_per_occurrence_and_audience(report: EffectivenessReport, parsed: ParsedReport) -> None:
    """Each SVG point carries the planned and actual send time of one occurrence for one audience."""
    got = {(p["data-occurrence"], p["data-audience"], p["data-planned"], p["data-actual"]) for p in parsed.points}
    expected = {
        (t.occurrence, t.audience, iso_utc(t.planned_at), iso_utc(t.first_sent_at) if t.first_sent_at else "")
        for t in report.timeline
    }
    assert got == expected and len(parsed.points) == len(report.timeline)


def test_timeline_shows_the_late_notice_late(parsed: ParsedReport) -> None:
    """The final notice's points are planned at T-2h and sent 10 minutes later, for every audience."""
    final = [p for p in parsed.points if p["data-occurrence"] == "final-notice"]
    assert final
    planned = T0.replace(hour=20)
    assert {(p["data-planned"], p["data-actual"]) for p in final} == {
        (iso_utc(planned), iso_utc(planned + FINAL_NOTICE_DELAY))
    }


def test_timeline_shows_the_missed_reminder_unsent(parsed: ParsedReport) -> None:
    """The missed reminder is drawn for its planned audiences, with no actual time."""
    reminder = [p for p in parsed.points if p["data-occurrence"] == "reminder"]
    assert reminder and all(p["data-actual"] == "" and p["data-state"] == "missed" for p in reminder)


def test_failures_table_shows_error_text_escaped(parsed: ParsedReport, page: str) -> None:
    """A provider error holding markup appears as text in the failures table and never as a tag."""
    reasons = [row[0] for row in parsed.tables["failures"][1:]]
    assert any(SLACK_ERROR in reason for reason in reasons)
    assert "<script>" not in page and "script" not in parsed.tags
    assert "&lt;script&gt;" in page


def test_incident_summary_is_escaped(parsed: ParsedReport) -> None:
    """An incident summary with HTML is shown literally in the incidents table."""
    summaries = [row[2] for row in parsed.tables["incidents"][1:]]
    assert "Search is slow <b>bold</b>" in summaries


def test_report_is_self_contained(parsed: ParsedReport, page: str) -> None:
    """No external stylesheet, script, font or image: every URL-looking attribute is the SVG namespace."""
    assert not parsed.tags & {"link", "script", "img", "iframe", "object", "embed"}
    urls = [(name, value) for name, value in parsed.attributes if "//" in value or name in ("src", "href")]
    assert urls == [("xmlns", "http://www.w3.org/2000/svg")] * len(urls)
    assert "@import" not in page and "url(" not in page


def test_report_tables_list_dead_letters_and_escalations(report: EffectivenessReport, parsed: ParsedReport) -> None:
    """The dead letter and both failure escalations have their rows."""
    assert [row[1] for row in parsed.tables["dead-letters"][1:]] == [d.occurrence for d in report.dead_letters]
    kinds = sorted(row[1] for row in parsed.tables["failure-escalations"][1:])
    assert kinds == ["delivery_failure", "missed"]


def test_html_file_is_one_document(page: str) -> None:
    """The page is a complete UTF-8 HTML document with its CSS inline."""
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<style>" in page and 'charset="utf-8"' in page
