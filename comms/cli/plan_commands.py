"""Commands that read the plan only: validate, timeline, preview."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from comms.cli.app import JsonOption, PlanOption, StartOption, TzOption, app, console, handles_errors, print_json
from comms.core.timeline import build_timeline
from comms.core.times import format_local, iso_utc, parse_start
from comms.errors import InputError
from comms.plan.loader import load_plan
from comms.plan.models import Channel


@app.command()
@handles_errors
def validate(plan: PlanOption = Path(".")) -> None:
    """Check the plan: YAML, keys, zones, addresses, CSVs, references and every template render."""
    loaded = load_plan(plan, check_recipients=True)
    console.print(
        f"[green]Plan is valid:[/] {len(loaded.audiences)} audiences, "
        f"{len(loaded.schedule.messages)} messages ({plan})."
    )
    from comms.plan.template_check import missing_locale_variants  # Jinja only when validating

    for note in missing_locale_variants(loaded):
        console.print(f"[yellow]Missing translations:[/] {note}")


@app.command()
@handles_errors
def timeline(start: StartOption, plan: PlanOption = Path("."), tz: TzOption = None, json: JsonOption = False) -> None:
    """Show every occurrence of the plan for T0 = --start, in UTC and each audience's local time."""
    t0 = parse_start(start, tz=tz)
    loaded = load_plan(plan, check_templates=False)
    occurrences = build_timeline(loaded, t0)
    if json:
        print_json(
            [
                {
                    "key": o.key,
                    "message": o.message,
                    "due_at": iso_utc(o.due_at) if o.due_at else None,
                    "trigger": o.trigger.value,
                    "stage": o.stage,
                    "audiences": list(o.audiences),
                    "channels": [c.value for c in o.channels],
                    "max_lateness_seconds": int(o.max_lateness.total_seconds()),
                    "local": {
                        a: format_local(o.due_at, loaded.audiences[a].timezone) if o.due_at else None
                        for a in o.audiences
                    },
                }
                for o in occurrences
            ]
        )
        return
    zones = sorted({a.timezone for a in loaded.audiences.values()} - {"UTC"})
    table = Table(title=f"{loaded.cutover.title}: T0 {iso_utc(t0)}")
    for column in ("occurrence", "when (UTC)", *zones, "audiences", "channels"):
        table.add_column(column)
    for o in occurrences:
        when = iso_utc(o.due_at) if o.due_at else f"on {o.trigger.value}"
        local = [format_local(o.due_at, zone) if o.due_at else "" for zone in zones]
        table.add_row(o.key, when, *local, ", ".join(o.audiences), ", ".join(c.value for c in o.channels))
    console.print(table)


def _parse_vars(values: list[str]) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise InputError(f"--var: {item!r} must be NAME=VALUE with NAME a plain identifier")
        parsed[key.strip()] = value
    return parsed


@app.command()
@handles_errors
def preview(
    message: Annotated[str | None, typer.Argument(help="Message key from the schedule.")] = None,
    audience: Annotated[str | None, typer.Option("--audience", help="Audience key.")] = None,
    channel: Annotated[Channel, typer.Option("--channel", help="email, slack, statuspage or webhook.")] = Channel.EMAIL,
    start: Annotated[str | None, typer.Option("--start", help="T0 for the rendered times.")] = None,
    tz: TzOption = None,
    var: Annotated[list[str] | None, typer.Option("--var", help="NAME=VALUE passed as data.")] = None,
    html: Annotated[Path | None, typer.Option("--html", help="Write the email HTML to this file.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Render every combination into an HTML gallery.")] = False,
    out: Annotated[Path, typer.Option("--out", help="Gallery folder for --all.")] = Path("preview"),
    plan: PlanOption = Path("."),
) -> None:
    """Render a message for an audience and channel, or every message into a gallery (--all)."""
    from comms.reports.preview import preview_text, render_preview, write_gallery

    t0 = parse_start(start, tz=tz) if start else None
    loaded = load_plan(plan)
    if all_:
        pages = write_gallery(loaded, out, start=t0)
        console.print(f"Wrote {len(pages) - 1} previews; open {pages[0]}")
        return
    if message is None:
        raise InputError("MESSAGE: name a message to preview, or use --all")
    rendered = render_preview(
        loaded, message=message, audience=audience, channel=channel, start=t0, variables=_parse_vars(var or [])
    )
    typer.echo(preview_text(rendered))
    if html is not None:
        from comms.core.content import EmailContent

        if not isinstance(rendered.content, EmailContent):
            raise InputError("--html: only email previews have HTML")
        html.write_text(rendered.content.html, encoding="utf-8")
        console.print(f"Wrote {html}")
