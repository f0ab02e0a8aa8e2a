"""The effectiveness report as ONE self-contained HTML file: inline CSS, an inline SVG timeline, the tables.

Nothing is fetched (no external CSS, JS or fonts), so the file can be mailed or attached to a
post-mortem as it is. Every value goes through ``html.escape``: error messages and incident
summaries carry text people typed.

The timeline puts one lane per audience and time on a symmetric-log axis around T0 (hours), so
T-48h, the busy night at T0 and T+1w all stay readable. Each point is a ``<g class="point">``
with ``data-occurrence``, ``data-audience``, ``data-planned`` and ``data-actual`` (ISO UTC, empty
when nothing went out): a hollow marker at the planned time, a filled one at the first send.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from html import escape

from comms.core.times import format_offset, iso_utc
from comms.reports.effectiveness_model import EffectivenessReport, TimelinePoint, human_seconds
from comms.reports.status import describe_state

WIDTH, LANE, LEFT, RIGHT, TOP, BOTTOM = 1100, 34, 150, 30, 20, 40
TICK_HOURS = (-168, -72, -48, -24, -12, -6, -2, 0, 2, 6, 12, 24, 72, 168)
STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem;color:#1f2933;max-width:1200px}
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #d9e2ec;padding-bottom:.2rem}
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}
th,td{border:1px solid #d9e2ec;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f0f4f8}td.num{text-align:right;font-variant-numeric:tabular-nums}
.summary td:first-child{font-weight:600}.muted{color:#829ab1}
svg text{font-size:11px;fill:#334e68}.lane{stroke:#e4e7eb}.axis{stroke:#9fb3c8}
.planned{fill:#fff;stroke:#627d98;stroke-width:1.5}.actual.on-time{fill:#2f9e44}.actual.late{fill:#f08c00}
.not-sent{fill:none;stroke:#e03131;stroke-width:2}.waiting{fill:none;stroke:#f08c00;stroke-width:2;stroke-dasharray:3 2}.gap{stroke:#f08c00;stroke-width:2}
.legend circle{stroke-width:1.5}
"""


def _e(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def _when(value: datetime | None) -> str:
    return iso_utc(value) if value is not None else ""


def _table(table_id: str, headers: Sequence[str], rows: Iterable[Sequence[object]], numeric: set[int]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="num">{_e(v)}</td>' if i in numeric else f"<td>{_e(v)}</td>" for i, v in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    if not body:
        body.append(f'<tr><td colspan="{len(headers)}" class="muted">none</td></tr>')
    return f'<table id="{_e(table_id)}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _x(when: datetime, start: datetime, scale: tuple[float, float]) -> float:
    hours = (when - start).total_seconds() / 3600
    value = math.copysign(math.log1p(abs(hours)), hours)
    low, high = scale
    return LEFT + (value - low) / ((high - low) or 1.0) * (WIDTH - LEFT - RIGHT)


def timeline_svg(points: Sequence[TimelinePoint], start: datetime, threshold_seconds: float) -> str:
    """The planned-versus-actual chart: one lane per audience, symmetric-log time around T0."""
    audiences = sorted({p.audience for p in points})
    instants = [p.planned_at for p in points] + [p.first_sent_at for p in points if p.first_sent_at] + [start]
    logs = [math.copysign(math.log1p(abs(h)), h) for h in ((t - start).total_seconds() / 3600 for t in instants)]
    scale = (min(logs) - 0.15, max(logs) + 0.15)
    height = TOP + LANE * max(len(audiences), 1) + BOTTOM
    parts = [
        f'<svg id="timeline" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label="Planned versus actual send times per audience">'
    ]
    lane_y = {name: TOP + LANE * i + LANE / 2 for i, name in enumerate(audiences)}
    for name, y in lane_y.items():
        parts.append(f'<line class="lane" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text x="{LEFT - 8}" y="{y + 4:.1f}" text-anchor="end">{_e(name)}</text>')
    axis_y = TOP + LANE * max(len(audiences), 1) + 6
    parts.append(f'<line class="axis" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{axis_y}" y2="{axis_y}"/>')
    for hours in TICK_HOURS:
        value = math.copysign(math.log1p(abs(hours)), hours)
        if scale[0] <= value <= scale[1]:
            x = _x(start + timedelta(hours=hours), start, scale)
            label = format_offset(timedelta(hours=hours))
            parts.append(f'<line class="axis" x1="{x:.1f}" x2="{x:.1f}" y1="{axis_y}" y2="{axis_y + 5}"/>')
            parts.append(f'<text x="{x:.1f}" y="{axis_y + 18}" text-anchor="middle">{_e(label)}</text>')
    for point in points:
        y = lane_y[point.audience]
        planned_x = _x(point.planned_at, start, scale)
        title = f"{point.occurrence} to {point.audience}: planned {_when(point.planned_at)}, " + (
            f"sent {_when(point.first_sent_at)} ({human_seconds(point.lateness_seconds)} late)"
            if point.first_sent_at
            else f"not sent ({point.state})"
        )
        parts.append(
            f'<g class="point" data-occurrence="{_e(point.occurrence)}" data-audience="{_e(point.audience)}" '
            f'data-planned="{_e(_when(point.planned_at))}" data-actual="{_e(_when(point.first_sent_at))}" '
            f'data-state="{_e(point.state)}"><title>{_e(title)}</title>'
        )
        parts.append(f'<circle class="planned" cx="{planned_x:.1f}" cy="{y:.1f}" r="6"/>')
        if point.first_sent_at is not None:
            actual_x = _x(point.first_sent_at, start, scale)
            late = (point.lateness_seconds or 0.0) > threshold_seconds
            if late:
                parts.append(f'<line class="gap" x1="{planned_x:.1f}" x2="{actual_x:.1f}" y1="{y:.1f}" y2="{y:.1f}"/>')
            parts.append(
                f'<circle class="actual {"late" if late else "on-time"}" cx="{actual_x:.1f}" cy="{y:.1f}" r="3.5"/>'
            )
        elif point.state == "dispatching":  # nothing out yet, retries pending
            parts.append(f'<circle class="waiting" cx="{planned_x:.1f}" cy="{y:.1f}" r="9"/>')
        elif point.state in ("missed", "done"):
            parts.append(f'<circle class="not-sent" cx="{planned_x:.1f}" cy="{y:.1f}" r="9"/>')
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


_LEGEND = (
    '<svg class="legend" xmlns="http://www.w3.org/2000/svg" width="500" height="22" aria-hidden="true">'
    '<circle class="planned" cx="10" cy="11" r="6"/><text x="22" y="15">planned</text>'
    '<circle class="actual on-time" cx="100" cy="11" r="3.5"/><text x="110" y="15">sent on time</text>'
    '<circle class="actual late" cx="210" cy="11" r="3.5"/><text x="220" y="15">sent late</text>'
    '<circle class="not-sent" cx="300" cy="11" r="8"/><text x="314" y="15">due, not sent</text>'
    '<circle class="waiting" cx="410" cy="11" r="8"/><text x="424" y="15">retrying</text></svg>'
)


def render_report_html(report: EffectivenessReport) -> str:
    """The whole report as one HTML document (a str; the caller writes it)."""
    m, t = report.metrics, report.timeliness
    summary = [
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
    rate_headers = ("", "deliveries", "sent", "dead", "uncertain", "missed", "open", "cancelled", "rate %")
    sections = [
        f"<h1>Communication report: {_e(report.cutover)}</h1>",
        '<table class="summary" id="summary"><tbody>'
        + "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in summary)
        + "</tbody></table>",
        "<h2>Timeline: planned versus actual, per audience</h2>",
        _LEGEND,
        timeline_svg(report.timeline, report.start, t.threshold_seconds),
        "<h2>Delivery by channel</h2>",
        _table(
            "by-channel",
            ("channel", *rate_headers[1:]),
            (
                (r.key, r.total, r.sent, r.dead, r.uncertain, r.missed, r.open, r.cancelled, r.rate)
                for r in report.by_channel
            ),
            set(range(1, 9)),
        ),
        "<h2>Delivery by audience</h2>",
        _table(
            "by-audience",
            ("audience", *rate_headers[1:]),
            (
                (r.key, r.total, r.sent, r.dead, r.uncertain, r.missed, r.open, r.cancelled, r.rate)
                for r in report.by_audience
            ),
            set(range(1, 9)),
        ),
        "<h2>Timeliness against the plan</h2>",
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
            set(),
        ),
        "<h2>Failures by reason</h2>",
        _table(
            "failures",
            ("reason", "channel", "state", "deliveries"),
            ((f.reason, f.channel, f.state, f.count) for f in report.failures),
            {3},
        ),
        _more(len(report.failures), report.failure_groups, "reasons"),
        "<h2>Retries</h2>",
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
            set(range(1, 6)),
        ),
        "<h2>Dead letters</h2>",
        _table(
            "dead-letters",
            ("delivery", "occurrence", "audience", "channel", "recipient", "attempts", "error"),
            (
                (d.delivery_id, d.occurrence, d.audience, d.channel, d.recipient, d.attempts, d.error)
                for d in report.dead_letters
            ),
            {0, 5},
        ),
        _more(len(report.dead_letters), report.dead_total, "dead letters"),
        "<h2>Escalations</h2>",
        _escalations(report),
        "<h2>Migration KPIs</h2>",
        _table("kpis", ("KPI", "value"), m["kpis"].items(), set()),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Communication report: {_e(report.cutover)}</title><style>{STYLE}</style></head>"
        f"<body>{''.join(sections)}</body></html>\n"
    )


def _more(shown: int, total: int, what: str) -> str:
    return f'<p class="muted">{shown} of {total} {_e(what)} shown.</p>' if total > shown else ""


def _escalations(report: EffectivenessReport) -> str:
    if report.incidents is None or report.failure_escalations is None:
        return '<p class="muted">Incident tables are not available in this installation.</p>'
    incidents = _table(
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
        {4, 5},
    )
    failures = _table(
        "failure-escalations",
        ("at (UTC)", "kind", "detail"),
        ((_when(f.at), f.kind, f.detail) for f in report.failure_escalations),
        set(),
    )
    return incidents + "<h3>Failed and missed messages escalated</h3>" + failures
