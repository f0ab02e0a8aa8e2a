"""Commands that look back and around: status and the report (terminal, JSON, HTML); KPIs and the audit trail
are ``comms.cli.record_commands``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from comms.cli.app import CutoverOption, JsonOption, app, console, err_console, handles_errors, print_json
from comms.cli.tables import breakable_key, plain_table, short_utc, write_atomically
from comms.core.delivery_events import COUNTED_OUTCOMES
from comms.core.times import format_offset, iso_utc

if TYPE_CHECKING:  # the store and reports load SQLAlchemy: imported inside the commands
    from comms.reports.effectiveness_model import EffectivenessReport
    from comms.reports.status import CutoverStatus

__all__ = ["ALWAYS_SHOWN", "BUCKET_TITLES", "report", "status"]

BUCKET_TITLES = {"in_flight": "in flight"}
ALWAYS_SHOWN = ("sent", "pending", "retrying", "dead", "uncertain", "missed")


# -- status ---------------------------------------------------------------------------------------


@app.command()
@handles_errors
def status(
    cutover: CutoverOption = None,
    json: JsonOption = False,
    next_count: Annotated[int, typer.Option("--next", min=0, help="How many upcoming messages to list.")] = 5,
) -> None:
    """The cutover's state, T0, the next messages due, and what every occurrence's deliveries did."""
    from comms.bootstrap import bootstrap
    from comms.reports.status import cutover_status

    services = bootstrap(channels={})
    view = cutover_status(services.engine, cutover_name=cutover, now=services.clock(), next_limit=next_count)
    if json:
        print_json(view.to_json())
        return
    _print_status(view)


def _print_status(view: CutoverStatus) -> None:
    from comms.reports.status import DELIVERY_BUCKETS, relative_text

    t0_in = relative_text((view.start - view.now).total_seconds())
    console.print(
        Text.assemble(
            ("Cutover ", ""),
            (view.cutover, "bold"),
            ": ",
            (view.state_label, "bold cyan"),
            f"; T0 {iso_utc(view.start)} ({t0_in})",
        )
    )
    if view.next_messages:
        console.print(
            plain_table(
                "Next messages",
                ("occurrence", "due (UTC)", "T±", "when", "note"),
                (
                    (m.key, short_utc(m.due_at), m.offset, m.relative, "waits for go" if m.waits_for_go else "")
                    for m in view.next_messages
                ),
            )
        )
    else:
        console.print("No time-based message is waiting.")
    totals = view.totals
    headers = ("occurrence", "state", "T±", "channel", "deliveries")
    rows = []
    for item in view.occurrences:
        state = f"{item.state} ({item.why})" if item.why else item.state
        offset = format_offset(item.due_at - view.start) if item.due_at else "-"
        key = breakable_key(item.key)
        retry = f" (next try {short_utc(item.next_retry_at)[6:]} UTC)" if item.next_retry_at else ""
        if not item.channels:
            rows.append((key, state, offset, "-", "none yet" if item.state == "pending" else "none"))
        for index, (channel, counts) in enumerate(item.channels.items()):
            first = index == 0
            shown = [f"{getattr(counts, b)} {BUCKET_TITLES.get(b, b)}" for b in DELIVERY_BUCKETS if getattr(counts, b)]
            cell = ", ".join(shown) or "none yet"
            if "retrying" in " ".join(shown):
                cell += retry
            rows.append((key if first else "", state if first else "", offset if first else "", channel, cell))
    console.print(plain_table("Deliveries by occurrence and channel", headers, rows))
    console.print("Totals: " + ", ".join(f"{getattr(totals, b)} {BUCKET_TITLES.get(b, b)}" for b in DELIVERY_BUCKETS))
    if view.provider_outcomes:
        provider = view.provider_counts()
        console.print("SendGrid reported: " + ", ".join(f"{provider[name]} {name}" for name in COUNTED_OUTCOMES))
    if view.incidents is None:
        console.print("Incidents: not available in this installation.")
    elif view.incidents:
        console.print(
            plain_table(
                "Open incidents",
                ("#", "severity", "state", "status", "summary", "opened (UTC)", "acked by"),
                (
                    (i.id, i.severity, i.state, i.status, i.summary, short_utc(i.opened_at), i.acked_by)
                    for i in view.incidents
                ),
            )
        )
    else:
        console.print("No open incident.")
    if view.escalations:
        latest = view.escalations[-10:]
        console.print(
            plain_table(
                f"Escalations ({len(view.escalations)}, latest {len(latest)})",
                ("at (UTC)", "kind", "incident", "level", "detail"),
                ((short_utc(e.at), e.kind, e.incident_id, e.level, e.detail) for e in latest),
            )
        )


# -- report ---------------------------------------------------------------------------------------


@app.command()
@handles_errors
def report(
    cutover: CutoverOption = None,
    json: JsonOption = False,
    html: Annotated[Path | None, typer.Option("--html", help="Also write the self-contained HTML report here.")] = None,
) -> None:
    """Communication effectiveness: delivery rates, timeliness against the plan, failures, retries, escalations."""
    from comms.bootstrap import bootstrap
    from comms.reports.effectiveness import effectiveness_report
    from comms.reports.effectiveness_html import render_report_html

    services = bootstrap(channels={})
    result = effectiveness_report(services.engine, cutover_name=cutover, now=services.clock())
    if html is not None:
        page = render_report_html(result)
        write_atomically(html, lambda handle: handle.write(page))
        (err_console if json else console).print(Text(f"Wrote the HTML report to {html}"))
    if json:
        print_json(result.to_json())
        return
    _print_report(result)


def _print_report(result: EffectivenessReport) -> None:
    from comms.reports.effectiveness_model import human_seconds

    m, t = result.metrics, result.timeliness
    console.print(Text.assemble("Communication report for ", (result.cutover, "bold"), f", T0 {iso_utc(result.start)}"))
    if m["deliveries_total"]:
        delivered = f"Delivered {m['deliveries_sent']} of {m['deliveries_total']} ({m['delivery_rate']} %)"
    else:
        delivered = "Nothing sent yet"
    if t.due:
        timely = (
            f"{t.on_time_rate} % of {t.due} occurrences on time (within {t.threshold_seconds:.0f} s); lateness median "
            f"{human_seconds(t.median_seconds)}, p95 {human_seconds(t.p95_seconds)}, max {human_seconds(t.max_seconds)}"
        )
    else:
        timely = "no occurrence due yet"
    console.print(
        f"{delivered}; {timely}; {m['missed_occurrences']} missed, {result.dead_total} dead, "
        f"{m['retries']} transient failures retried, {m['escalations']} escalations."
    )
    rate_headers = ("deliveries", "sent", "dead", "uncertain", "missed", "open", "rate %")
    for title, lines in (("By channel", result.by_channel), ("By audience", result.by_audience)):
        console.print(
            plain_table(
                title,
                (title.split()[-1], *rate_headers),
                ((r.key, r.total, r.sent, r.dead, r.uncertain, r.missed, r.open, r.rate) for r in lines),
            )
        )
    console.print(
        plain_table(
            "Timeliness (UTC)",
            ("occurrence", "state", "due", "first sent", "late by"),
            (
                (
                    breakable_key(i.key),
                    i.state,
                    short_utc(i.due_at),
                    short_utc(i.first_sent_at) if i.first_sent_at else "not sent",
                    human_seconds(i.seconds),
                )
                for i in result.lateness
            ),
        )
    )
    if result.failures:
        console.print(
            plain_table(
                f"Failures by reason ({result.failure_groups})",
                ("reason", "channel", "state", "count"),
                ((f.reason, f.channel, f.state, f.count) for f in result.failures),
            )
        )
    console.print(
        plain_table(
            "Retries",
            ("channel", "requests", "sent", "transient", "permanent", "sent after retry"),
            ((r.channel, r.requests, r.sent, r.transient, r.permanent, r.retried_deliveries) for r in result.retries),
        )
    )
    if result.dead_letters:
        shown = result.dead_letters[:20]
        console.print(
            plain_table(
                f"Dead letters ({len(shown)} of {result.dead_total})",
                ("delivery", "occurrence", "recipient", "error"),
                (
                    (d.delivery_id, breakable_key(d.occurrence), f"{d.recipient} ({d.audience}, {d.channel})", d.error)
                    for d in shown
                ),
            )
        )
    if result.incidents:
        console.print(
            plain_table(
                "Incidents",
                ("#", "severity", "summary", "notices", "level", "acked by", "time to acknowledge"),
                (
                    (
                        i.incident_id,
                        i.severity,
                        i.summary,
                        i.notices,
                        i.highest_level,
                        i.acked_by,
                        human_seconds(i.ack_seconds),
                    )
                    for i in result.incidents
                ),
            )
        )
    if result.failure_escalations:
        console.print(
            plain_table(
                "Failed and missed messages escalated",
                ("at (UTC)", "kind", "detail"),
                ((short_utc(e.at), e.kind, e.detail) for e in result.failure_escalations),
            )
        )
    if m["kpis"]:
        console.print(plain_table("Migration KPIs", ("KPI", "value"), m["kpis"].items()))
