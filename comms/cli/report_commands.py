"""Commands that look back and around: status, report (terminal, JSON, HTML), KPIs, and the audit trail."""

from __future__ import annotations

import json as jsonlib
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO

import typer
from rich.table import Table
from rich.text import Text

from comms.cli.app import CutoverOption, JsonOption, app, console, err_console, handles_errors, print_json
from comms.cli.tables import breakable_key, fitted_table, fixed, short_utc, text
from comms.core.delivery_events import COUNTED_OUTCOMES
from comms.core.times import format_offset, iso_utc
from comms.errors import InputError

if TYPE_CHECKING:  # the store and reports load SQLAlchemy: imported inside the commands
    from comms.reports.effectiveness_model import EffectivenessReport
    from comms.reports.status import CutoverStatus

__all__ = [
    "ALWAYS_SHOWN",
    "BUCKET_TITLES",
    "PROSE_HEADERS",
    "audit_app",
    "audit_export",
    "audit_show",
    "kpis_app",
    "kpis_set",
    "kpis_show",
    "report",
    "status",
]

kpis_app = typer.Typer(
    help="The migration's own KPIs, quoted by the T+1 week success-metrics message.", no_args_is_help=True
)
app.add_typer(kpis_app, name="kpis")
audit_app = typer.Typer(help="The audit trail: every delivery and the exact content it sent.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")

BUCKET_TITLES = {"in_flight": "in flight"}
ALWAYS_SHOWN = ("sent", "pending", "retrying", "dead", "uncertain", "missed")


PROSE_HEADERS = frozenset(
    {"occurrence", "summary", "detail", "reason", "error", "recipient", "deliveries", "acked by", "value"}
)
"""Columns wrapped between words; every other column (keys, states, times, counts) stays on one line."""


def _table(title: str | None, headers: Sequence[str], rows: Iterable[Sequence[object]]) -> Table:
    """A table of plain-text cells (never rich markup: values can hold user text) that reads whole at 80 columns."""
    columns = [text(h) if h in PROSE_HEADERS else fixed(h) for h in headers]
    return fitted_table(title, columns, rows)


def _write_atomically(path: Path, write: Callable[[TextIO], object]) -> object:
    """Write through ``path``.partial and rename, so an interrupted run never leaves a file that looks complete."""
    partial = path.with_name(path.name + ".partial")
    try:
        with partial.open("w", encoding="utf-8", newline="") as handle:
            result = write(handle)
        os.replace(partial, path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
    return result


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
            _table(
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
    console.print(_table("Deliveries by occurrence and channel", headers, rows))
    console.print("Totals: " + ", ".join(f"{getattr(totals, b)} {BUCKET_TITLES.get(b, b)}" for b in DELIVERY_BUCKETS))
    if view.provider_outcomes:
        provider = view.provider_counts()
        console.print("SendGrid reported: " + ", ".join(f"{provider[name]} {name}" for name in COUNTED_OUTCOMES))
    if view.incidents is None:
        console.print("Incidents: not available in this installation.")
    elif view.incidents:
        console.print(
            _table(
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
            _table(
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
        _write_atomically(html, lambda handle: handle.write(page))
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
            _table(
                title,
                (title.split()[-1], *rate_headers),
                ((r.key, r.total, r.sent, r.dead, r.uncertain, r.missed, r.open, r.rate) for r in lines),
            )
        )
    console.print(
        _table(
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
            _table(
                f"Failures by reason ({result.failure_groups})",
                ("reason", "channel", "state", "count"),
                ((f.reason, f.channel, f.state, f.count) for f in result.failures),
            )
        )
    console.print(
        _table(
            "Retries",
            ("channel", "requests", "sent", "transient", "permanent", "sent after retry"),
            ((r.channel, r.requests, r.sent, r.transient, r.permanent, r.retried_deliveries) for r in result.retries),
        )
    )
    if result.dead_letters:
        shown = result.dead_letters[:20]
        console.print(
            _table(
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
            _table(
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
            _table(
                "Failed and missed messages escalated",
                ("at (UTC)", "kind", "detail"),
                ((short_utc(e.at), e.kind, e.detail) for e in result.failure_escalations),
            )
        )
    if m["kpis"]:
        console.print(_table("Migration KPIs", ("KPI", "value"), m["kpis"].items()))


# -- KPIs -----------------------------------------------------------------------------------------


@kpis_app.command("set")
@handles_errors
def kpis_set(
    file: Annotated[Path, typer.Option("--file", help="YAML or JSON mapping of KPI name -> value.")],
    cutover: CutoverOption = None,
    json: JsonOption = False,
) -> None:
    """Store the migration's KPIs (replacing earlier ones) for the success-metrics message and the report."""
    from comms.bootstrap import bootstrap
    from comms.reports.kpis import store_kpis

    services = bootstrap(channels={})
    kpis = store_kpis(services.engine, cutover, file, now=services.clock())
    if json:
        print_json(kpis)
        return
    console.print(f"Stored {len(kpis)} KPI(s).")
    console.print(_table(None, ("KPI", "value"), kpis.items()))


@kpis_app.command("show")
@handles_errors
def kpis_show(cutover: CutoverOption = None, json: JsonOption = False) -> None:
    """Show the stored KPIs."""
    from comms.bootstrap import bootstrap
    from comms.reports.kpis import read_kpis

    services = bootstrap(channels={})
    kpis = read_kpis(services.engine, cutover)
    if json:
        print_json(kpis)
    elif kpis:
        console.print(_table(None, ("KPI", "value"), kpis.items()))
    else:
        console.print("No KPIs stored yet; use 'comms kpis set --file kpis.yaml'.")


# -- audit ----------------------------------------------------------------------------------------


@audit_app.command("export")
@handles_errors
def audit_export(
    cutover: CutoverOption = None,
    fmt: Annotated[str, typer.Option("--format", help="csv or json.")] = "csv",
    out: Annotated[Path | None, typer.Option("--out", help="Write here instead of stdout.")] = None,
) -> None:
    """One row per delivery (when, occurrence, audience, channel, recipient, state, provider id, content hash)."""
    from comms.bootstrap import bootstrap
    from comms.reports.audit import FORMATS, export_audit
    from comms.store.repository import load_cutover

    if fmt not in FORMATS:
        raise InputError(f"--format: {fmt!r} is not an audit format (choose {' or '.join(FORMATS)})")
    services = bootstrap(channels={})
    if out is None:
        try:
            export_audit(services.engine, sys.stdout, cutover_name=cutover, fmt=fmt)
            sys.stdout.flush()
        except BrokenPipeError:  # the reader (head, less) stopped early: not an error
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return
    load_cutover(services.engine, cutover)  # fail before creating any file
    count = _write_atomically(out, lambda handle: export_audit(services.engine, handle, cutover_name=cutover, fmt=fmt))
    err_console.print(Text(f"Exported {count} deliveries to {out}"))


@audit_app.command("show")
@handles_errors
def audit_show(
    delivery_id: Annotated[int, typer.Argument(help="The delivery_id column of 'comms audit export'.")],
    json: JsonOption = False,
) -> None:
    """Show one delivery and the exact content it sent, checking it against its recorded SHA-256."""
    from comms.bootstrap import bootstrap
    from comms.core.content import EmailContent, SlackContent, WebhookContent
    from comms.reports.audit import delivery_content

    services = bootstrap(channels={})
    shown = delivery_content(services.engine, delivery_id)
    if json:
        print_json(shown.to_json())
        return
    console.print(
        _table(
            f"Delivery #{delivery_id} of {shown.cutover}",
            ("field", "value"),
            ((name, value) for name, value in shown.row.to_json().items()),
        )
    )
    check = "matches" if shown.intact else "DOES NOT MATCH (the stored content was changed)"
    console.print(Text(f"Content SHA-256 {shown.stored_sha256} {check}.", style="green" if shown.intact else "red"))
    content = shown.content
    if isinstance(content, EmailContent):
        parts = [("Subject", content.subject), ("Text part", content.text), ("HTML part", content.html)]
    elif isinstance(content, SlackContent):
        parts = [("Notification text", content.text), ("Blocks", jsonlib.dumps(content.blocks, indent=2))]
    elif isinstance(content, WebhookContent):
        parts = [("Subject", content.subject), ("Text", content.text)]
    else:
        parts = [("Title", content.title), ("Body", content.body)]
    for title, body in parts:
        console.rule(title)
        console.print(Text(body))
