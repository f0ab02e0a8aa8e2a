"""The HTML report and the preview gallery keep typed text as text: markup in any value is escaped, never run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest

from comms.core.content import Content, EmailContent, SlackContent, StatuspageContent
from comms.plan.fields import Channel
from comms.reports.effectiveness_html import render_report_html
from comms.reports.effectiveness_model import (
    DeadLetter,
    EffectivenessReport,
    FailureEscalation,
    FailureReason,
    IncidentEscalation,
    RateLine,
    RetryLine,
    TimelinePoint,
    Timeliness,
)
from comms.reports.metrics import OccurrenceLateness
from comms.reports.preview import Preview, render_gallery_index, render_gallery_page

HOSTILE = "<script>alert(1)</script>\"onload=alert(2) data-injected='y' & <marquee>"
T0 = datetime(2026, 12, 5, 22, 0, tzinfo=UTC)


class Parsed(HTMLParser):
    """Every tag and attribute of a document, the text of every element by tag, and table cells by table id."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str]] = []
        self.texts: dict[str, list[str]] = {}
        self.cells: dict[str, list[str]] = {}
        self._open: list[str] = []
        self._table: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        self.tags.append(tag)
        self.attributes.extend(values.items())
        if tag == "table" and "id" in values:
            self._table = values["id"]
        if tag not in ("meta", "circle", "line", "br"):
            self._open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if self._open and self._open[-1] == tag:
            self._open.pop()
        if tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._open:
            self.texts.setdefault(self._open[-1], []).append(data)
            if self._open[-1] == "td" and self._table is not None:
                self.cells.setdefault(self._table, []).append(data)

    def attribute(self, name: str) -> list[str]:
        """The values of every ``name`` attribute, in document order."""
        return [value for key, value in self.attributes if key == name]


def _parse(page: str) -> Parsed:
    parser = Parsed()
    parser.feed(page)
    parser.close()
    return parser


def _assert_inert(page: str) -> Parsed:
    """No tag or attribute of the page came from the hostile text; the page parsed back."""
    parsed = _parse(page)
    assert "script" not in parsed.tags and "marquee" not in parsed.tags
    assert not [name for name, _ in parsed.attributes if name.startswith("on") or name == "data-injected"]
    assert "<script>" not in page and '"onload=' not in page
    return parsed


def hostile_report(text: str = HOSTILE) -> EffectivenessReport:
    """A report with ``text`` in every field a person or a provider can fill, and every kind of timeline point."""
    late = T0 + timedelta(minutes=10)

    def point(occurrence: str, state: str, sent: datetime | None, planned: datetime = T0) -> TimelinePoint:
        lateness = None if sent is None else max((sent - planned).total_seconds(), 0.0)
        return TimelinePoint(occurrence, text, text, state, planned, sent, sent, 1 if sent else 0, 1, lateness)

    return EffectivenessReport(
        cutover=text,
        state="in_progress",
        stage=25,
        start=T0,
        generated_at=T0 + timedelta(hours=5),
        metrics={
            "delivery_rate": 66.7,
            "deliveries_sent": 2,
            "deliveries_total": 3,
            "missed_occurrences": 1,
            "retries": 4,
            "escalations": 2,
            "kpis": {text: text},
        },
        by_channel=[RateLine(text, 3, 2, 1, 0, 0, 0, 0, 66.7)],
        by_audience=[RateLine(text, 3, 2, 1, 0, 0, 0, 0, 66.7)],
        timeliness=Timeliness(3, 1, 1, 1, 33.3, 300.0, 570.0, 600.0),
        lateness=[OccurrenceLateness(1, text, text, T0, late, text)],
        timeline=[
            point(text, "done", T0 + timedelta(seconds=5)),
            point("late", "done", late),
            point("missed", "missed", None, T0 - timedelta(hours=24)),
            point("retrying", "dispatching", None, T0 + timedelta(hours=4)),
            point("later", "planned", None, T0 + timedelta(days=7)),
        ],
        failures=[FailureReason(text, text, text, 1)],
        failure_groups=3,
        retries=[RetryLine(text, 5, 2, 2, 1, 1)],
        dead_letters=[DeadLetter(7, text, text, text, text, 3, text)],
        dead_total=2,
        incidents=[IncidentEscalation(1, text, text, T0, text, late, None, 2, 1, 600.0)],
        failure_escalations=[FailureEscalation(T0, text, text)],
    )


def test_report_forms_no_tag_or_attribute_from_typed_text() -> None:
    """Markup and a quote-breaking onload= in every typed field of the report form no tag and no attribute."""
    _assert_inert(render_report_html(hostile_report()))


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ("summary", [HOSTILE]),  # the cutover name
        ("failures", [HOSTILE] * 3),  # reason, channel, state
        ("lateness", [HOSTILE] * 2),  # message name, state
        ("incidents", [HOSTILE] * 3),  # severity, summary, acknowledged by
        ("dead-letters", [HOSTILE] * 5),  # occurrence, audience, channel, recipient, error
        ("failure-escalations", [HOSTILE] * 2),  # kind, detail
        ("kpis", [HOSTILE] * 2),
    ],
)
def test_report_tables_show_typed_text_literally(table: str, expected: list[str]) -> None:
    """A message name, failure reason or incident summary holding markup reads back as that exact text."""
    parsed = _parse(render_report_html(hostile_report()))
    assert [cell for cell in parsed.cells[table] if HOSTILE in cell] == expected


def test_report_heading_and_title_show_typed_cutover_name() -> None:
    """The document title and heading show the cutover name as text."""
    parsed = _parse(render_report_html(hostile_report()))
    assert parsed.texts["h1"] == [f"Communication report: {HOSTILE}"]
    assert parsed.texts["title"][0] == f"Communication report: {HOSTILE}"


def test_report_timeline_keeps_typed_names_whole_in_attributes() -> None:
    """A quote in a message or audience name stays inside its data- attribute, whole, and in the point's tooltip."""
    parsed = _parse(render_report_html(hostile_report()))
    assert parsed.attribute("data-occurrence")[0] == HOSTILE
    assert parsed.attribute("data-audience") == [HOSTILE] * 5
    tooltip = parsed.texts["title"][1]
    assert tooltip.startswith(f"{HOSTILE} to {HOSTILE}: planned ")
    assert HOSTILE in parsed.texts["text"]  # the lane label


def _preview(content: Content, channel: Channel, audience: str | None = HOSTILE) -> Preview:
    return Preview(message=HOSTILE, audience=audience, channel=channel, content=content)


EMAIL = EmailContent(subject=HOSTILE, html=f"<p>{HOSTILE}</p>", text=HOSTILE)
SLACK = SlackContent(HOSTILE, ({"type": "section", "text": {"type": "mrkdwn", "text": HOSTILE}},))
STATUSPAGE = StatuspageContent(HOSTILE, HOSTILE)


def test_gallery_email_page_shows_typed_text_literally() -> None:
    """An email page whose message name, audience, subject and text hold markup shows them as text."""
    parsed = _assert_inert(render_gallery_page(_preview(EMAIL, Channel.EMAIL)))
    assert parsed.texts["h1"] == [f"{HOSTILE} · {HOSTILE} · email"]
    assert parsed.texts["p"][-1] == f" {HOSTILE}"  # after <b>Subject:</b>
    assert parsed.texts["pre"] == [HOSTILE]


def test_gallery_email_html_stays_inside_the_iframe() -> None:
    """The email's own HTML reaches the iframe's srcdoc whole and forms no tag of the gallery page."""
    page = render_gallery_page(_preview(EMAIL, Channel.EMAIL))
    parsed = _parse(page)
    assert parsed.attribute("srcdoc") == [f"<p>{HOSTILE}</p>"]
    assert parsed.tags.count("p") == 2  # the back link and the subject, not the email's paragraph


@pytest.mark.parametrize(
    ("content", "channel", "shown"),
    [
        (SLACK, Channel.SLACK, [HOSTILE, '"text": "<script>alert(1)</script>\\"onload=']),
        (STATUSPAGE, Channel.STATUSPAGE, [HOSTILE]),
    ],
    ids=["slack", "statuspage"],
)
def test_gallery_slack_and_status_page_show_typed_text_literally(
    content: Content, channel: Channel, shown: list[str]
) -> None:
    """Slack text and blocks, and a status page title and body, show markup as text."""
    parsed = _assert_inert(render_gallery_page(_preview(content, channel, audience=None)))
    assert parsed.texts["h1"] == [f"{HOSTILE} · status page · {channel.value}"]
    assert len(parsed.texts["pre"]) == len(shown)
    assert all(part in text for part, text in zip(shown, parsed.texts["pre"], strict=True))


def test_gallery_index_shows_typed_names_and_keeps_links_whole() -> None:
    """The index shows a hostile cutover title, message and audience as text; its link is one whole href."""
    name = f"{HOSTILE}--email.html"
    parsed = _assert_inert(render_gallery_index(HOSTILE, [(_preview(EMAIL, Channel.EMAIL), name)]))
    assert parsed.texts["h1"] == [f"{HOSTILE}: every message"]
    assert parsed.texts["h2"] == [HOSTILE]  # the message's group
    assert parsed.texts["b"] == [HOSTILE]  # the card's audience
    assert parsed.attribute("href") == [name]
