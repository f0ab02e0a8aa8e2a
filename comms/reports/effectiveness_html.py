"""The effectiveness report as ONE self-contained HTML file: inline CSS, an inline SVG timeline, the tables.

Nothing is fetched (no external CSS, JS or fonts), so the file can be mailed or attached to a
post-mortem as it is. The markup lives in ``comms/reports/html/report.html.j2`` (autoescaped, see
``comms.reports.page_templates``); this module turns the report into the data it shows: the
summary, one ``Table`` per table and the timeline's coordinates. Error messages and incident
summaries carry text people typed, and reach the page only as escaped data.

The timeline puts one lane per audience and time on a symmetric-log axis around T0 (hours), so
T-48h, the busy night at T0 and T+1w all stay readable. Each point is a ``<g class="point">``
with ``data-occurrence``, ``data-audience``, ``data-planned`` and ``data-actual`` (ISO UTC, empty
when nothing went out): a hollow marker at the planned time, a filled one at the first send.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from comms.core.times import format_offset, iso_utc
from comms.reports.effectiveness_model import EffectivenessReport, TimelinePoint, human_seconds
from comms.reports.page_templates import render_page
from comms.reports.status import describe_state

__all__ = [
    "Lane",
    "PointMarks",
    "TICK_HOURS",
    "Table",
    "Tick",
    "TimelineLayout",
    "render_report_html",
    "timeline_layout",
]

WIDTH, LANE, LEFT, RIGHT, TOP, BOTTOM = 1100, 34, 150, 30, 20, 40
TICK_HOURS = (-168, -72, -48, -24, -12, -6, -2, 0, 2, 6, 12, 24, 72, 168)
_RATE_HEADERS = ("deliveries", "sent", "dead", "uncertain", "missed", "open", "cancelled", "rate %")


@dataclass(frozen=True)
class Table:
    """One table of the report: its id, its column heads, rows of the values shown, and its numeric columns."""

    table_id: str
    headers: tuple[str, ...]
    rows: list[tuple[object, ...]]
    numeric: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Lane:
    """An audience's lane: its line's height and its label's baseline."""

    name: str
    y: float
    label_y: float


@dataclass(frozen=True)
class Tick:
    """A labelled mark on the time axis."""

    x: float
    label: str


@dataclass(frozen=True)
class PointMarks:
    """The markers of one timeline point: where they sit and what they say."""

    occurrence: str
    audience: str
    state: str
    planned: str
    """Planned time, ISO UTC."""
    actual: str
    """First send, ISO UTC; empty when nothing went out."""
    late_by: str
    y: float
    planned_x: float
    actual_x: float | None
    late: bool
    """Sent past the on-time threshold: the actual marker is drawn late, with a gap line."""
    ring: str | None
    """Nothing sent: ``waiting`` while retries are pending, ``not-sent`` once missed or done, else None."""


@dataclass(frozen=True)
class TimelineLayout:
    """Every coordinate of the timeline chart, computed; the template only draws."""

    width: int
    height: int
    left: int
    right: int
    label_x: int
    axis_y: int
    tick_end_y: int
    tick_label_y: int
    lanes: list[Lane]
    ticks: list[Tick]
    points: list[PointMarks]


def _when(value: datetime | None) -> str:
    return iso_utc(value) if value is not None else ""


def _symlog_hours(when: datetime, start: datetime) -> float:
    hours = (when - start).total_seconds() / 3600
    return math.copysign(math.log1p(abs(hours)), hours)


def _x(when: datetime, start: datetime, scale: tuple[float, float]) -> float:
    low, high = scale
    return LEFT + (_symlog_hours(when, start) - low) / ((high - low) or 1.0) * (WIDTH - LEFT - RIGHT)


def timeline_layout(points: Sequence[TimelinePoint], start: datetime, threshold_seconds: float) -> TimelineLayout:
    """The planned-versus-actual chart's geometry: one lane per audience, symmetric-log time around T0."""
    audiences = sorted({p.audience for p in points})
    instants = [p.planned_at for p in points] + [p.first_sent_at for p in points if p.first_sent_at] + [start]
    logs = [_symlog_hours(t, start) for t in instants]
    scale = (min(logs) - 0.15, max(logs) + 0.15)
    lane_y = {name: TOP + LANE * i + LANE / 2 for i, name in enumerate(audiences)}
    axis_y = TOP + LANE * max(len(audiences), 1) + 6
    ticks = [
        Tick(_x(start + timedelta(hours=hours), start, scale), format_offset(timedelta(hours=hours)))
        for hours in TICK_HOURS
        if scale[0] <= math.copysign(math.log1p(abs(hours)), hours) <= scale[1]
    ]
    return TimelineLayout(
        width=WIDTH,
        height=TOP + LANE * max(len(audiences), 1) + BOTTOM,
        left=LEFT,
        right=WIDTH - RIGHT,
        label_x=LEFT - 8,
        axis_y=axis_y,
        tick_end_y=axis_y + 5,
        tick_label_y=axis_y + 18,
        lanes=[Lane(name, y, y + 4) for name, y in lane_y.items()],
        ticks=ticks,
        points=[_marks(point, lane_y[point.audience], start, scale, threshold_seconds) for point in points],
    )


def _marks(
    point: TimelinePoint, y: float, start: datetime, scale: tuple[float, float], threshold_seconds: float
) -> PointMarks:
    sent = point.first_sent_at
    ring = None
    if sent is None and point.state == "dispatching":  # nothing out yet, retries pending
        ring = "waiting"
    elif sent is None and point.state in ("missed", "done"):
        ring = "not-sent"
    return PointMarks(
        occurrence=point.occurrence,
        audience=point.audience,
        state=point.state,
        planned=_when(point.planned_at),
        actual=_when(sent),
        late_by=human_seconds(point.lateness_seconds),
        y=y,
        planned_x=_x(point.planned_at, start, scale),
        actual_x=_x(sent, start, scale) if sent is not None else None,
        late=sent is not None and (point.lateness_seconds or 0.0) > threshold_seconds,
        ring=ring,
    )


def render_report_html(report: EffectivenessReport) -> str:
    """The whole report as one HTML document (a str; the caller writes it)."""
    t = report.timeliness
    return render_page(
        "report.html.j2",
        {
            "report": report,
            "summary": _summary(report),
            "timeline": timeline_layout(report.timeline, report.start, t.threshold_seconds),
            "tables": {table.table_id: table for table in _tables(report)},
            "incidents": _incidents(report),
            "failure_escalations": _failure_escalations(report),
        },
    )


def _summary(report: EffectivenessReport) -> list[tuple[str, object]]:
    m, t = report.metrics, report.timeliness
    return [
        ("Cutover", report.cutover),
        ("State", describe_state(report.state, report.stage)),
        ("T0", iso_utc(report.start)),
        ("Generated", iso_utc(report.generated_at)),
        ("Delivery rate", f"{m['delivery_rate']} % ({m['deliveries_sent']} of {m['deliveries_total']})"),
        ("On time", f"{t.on_time_rate} % ({t.on_time} of {t.due} occurrences within {t.threshold_seconds:.0f} s)"),
        (
            "Lateness",
            f"median {human_seconds(t.median_seconds)}, p95 {human_seconds(t.p95_seconds)}, "
            f"max {human_seconds(t.max_seconds)}",
        ),
        ("Missed messages", m["missed_occurrences"]),
        ("Dead letters", report.dead_total),
        ("Retries (transient failures)", m["retries"]),
        ("Escalations", m["escalations"]),
    ]


def _table(
    table_id: str, headers: tuple[str, ...], rows: Iterable[tuple[object, ...]], numeric: Iterable[int]
) -> Table:
    return Table(table_id, headers, list(rows), frozenset(numeric))


def _tables(report: EffectivenessReport) -> list[Table]:
    rates = {
        key: [(r.key, r.total, r.sent, r.dead, r.uncertain, r.missed, r.open, r.cancelled, r.rate) for r in lines]
        for key, lines in (("channel", report.by_channel), ("audience", report.by_audience))
    }
    provider = []
    for audience, outcomes in sorted(report.provider_outcomes.items()):
        reported = sum(outcomes.values())
        counted = [outcomes.get(name, 0) for name in ("delivered", "bounced", "dropped", "deferred")]
        provider.append((audience, reported, *(f"{n} ({n / reported:.0%})" if reported else "0" for n in counted)))
    return [
        _table(
            "provider", ("audience", "reported", "delivered", "bounced", "dropped", "deferred"), provider, range(1, 6)
        ),
        _table("by-channel", ("channel", *_RATE_HEADERS), rates["channel"], range(1, 9)),
        _table("by-audience", ("audience", *_RATE_HEADERS), rates["audience"], range(1, 9)),
        _table(
            "lateness",
            ("occurrence", "state", "due (UTC)", "first sent (UTC)", "late by", "on time"),
            (
                (
                    i.key,
                    i.state,
                    _when(i.due_at),
                    _when(i.first_sent_at),
                    human_seconds(i.seconds),
                    "yes" if i.on_time else "no",
                )
                for i in report.lateness
            ),
            (),
        ),
        _table(
            "failures",
            ("reason", "channel", "state", "deliveries"),
            ((f.reason, f.channel, f.state, f.count) for f in report.failures),
            (3,),
        ),
        _table(
            "retries",
            (
                "channel",
                "requests",
                "sent",
                "transient failures",
                "permanent failures",
                "deliveries sent after a retry",
            ),
            ((r.channel, r.requests, r.sent, r.transient, r.permanent, r.retried_deliveries) for r in report.retries),
            range(1, 6),
        ),
        _table(
            "dead-letters",
            ("delivery", "occurrence", "audience", "channel", "recipient", "attempts", "error"),
            (
                (d.delivery_id, d.occurrence, d.audience, d.channel, d.recipient, d.attempts, d.error)
                for d in report.dead_letters
            ),
            (0, 5),
        ),
        _table("kpis", ("KPI", "value"), report.metrics["kpis"].items(), ()),
    ]


def _incidents(report: EffectivenessReport) -> Table | None:
    if report.incidents is None:
        return None
    return _table(
        "incidents",
        (
            "incident",
            "severity",
            "summary",
            "opened (UTC)",
            "notices",
            "highest level",
            "acknowledged by",
            "time to acknowledge",
            "resolved (UTC)",
        ),
        (
            (
                f"#{i.incident_id}",
                i.severity,
                i.summary,
                _when(i.opened_at),
                i.notices,
                i.highest_level or "-",
                i.acked_by or "-",
                human_seconds(i.ack_seconds),
                _when(i.resolved_at) or "-",
            )
            for i in report.incidents
        ),
        (4, 5),
    )


def _failure_escalations(report: EffectivenessReport) -> Table | None:
    if report.failure_escalations is None:
        return None
    return _table(
        "failure-escalations",
        ("at (UTC)", "kind", "detail"),
        ((_when(f.at), f.kind, f.detail) for f in report.failure_escalations),
        (),
    )
