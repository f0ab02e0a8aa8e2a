"""Commands that keep the record: the migration's KPIs, and the audit trail of every delivery and its content."""

from __future__ import annotations

import json as jsonlib
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from comms.cli.app import CutoverOption, JsonOption, app, console, err_console, handles_errors, print_json
from comms.cli.tables import plain_table, write_atomically
from comms.errors import InputError

__all__ = ["audit_app", "audit_export", "audit_show", "kpis_app", "kpis_set", "kpis_show"]

kpis_app = typer.Typer(
    help="The migration's own KPIs, quoted by the T+1 week success-metrics message.", no_args_is_help=True
)
app.add_typer(kpis_app, name="kpis")
audit_app = typer.Typer(help="The audit trail: every delivery and the exact content it sent.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


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
    console.print(plain_table(None, ("KPI", "value"), kpis.items()))


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
        console.print(plain_table(None, ("KPI", "value"), kpis.items()))
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
    count = write_atomically(out, lambda handle: export_audit(services.engine, handle, cutover_name=cutover, fmt=fmt))
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
        plain_table(
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
