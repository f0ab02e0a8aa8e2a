"""Commands that read the plan only: validate, timeline, preview."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from comms.cli.app import JsonOption, PlanOption, StartOption, TzOption, app, console, handles_errors, print_json
from comms.cli.tables import fitted_table, fixed, short_local, short_utc, text
from comms.core.timeline import build_timeline
from comms.core.times import format_local, format_offset, iso_utc, parse_start
from comms.errors import InputError
from comms.plan.fields import Channel
from comms.plan.loader import load_plan
from comms.plan.models import Plan

__all__ = ["WIDE_TIMELINE_COLUMNS", "preview", "timeline", "validate"]


@app.command()
@handles_errors
def validate(plan: PlanOption = Path(".")) -> None:
    """Check the plan: YAML, keys, zones, addresses, CSVs, references and every template render."""
    from comms.plan.template_check import fixed_duration_warnings

    loaded = load_plan(plan, check_recipients=True)
    for warning in fixed_duration_warnings(loaded):
        console.print(f"[yellow]warning:[/] {warning}", markup=True, highlight=False)
    console.print(
        f"[green]Plan is valid:[/] {len(loaded.audiences)} audiences, "
        f"{len(loaded.schedule.messages)} messages ({plan})."
    )
    from comms.plan.template_check import missing_locale_variants  # Jinja only when validating

    for note in missing_locale_variants(loaded):
        console.print(f"[yellow]Missing translations:[/] {note}")


WIDE_TIMELINE_COLUMNS = 160
"""From this terminal width on, the timeline shows every audience zone without being asked (--wide)."""


@app.command()
@handles_errors
def timeline(
    start: StartOption,
    plan: PlanOption = Path("."),
    tz: TzOption = None,
    local: Annotated[
        list[str] | None,
        typer.Option("--local", help="Add a column of this audience's local times (repeat it for more)."),
    ] = None,
    wide: Annotated[
        bool, typer.Option("--wide", help="A column per audience time zone, each naming its audiences.")
    ] = False,
    json: JsonOption = False,
) -> None:
    """Show every occurrence of the plan for T0 = --start: offset, UTC time, audiences and channels."""
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
    wide = wide or console.width >= WIDE_TIMELINE_COLUMNS
    zones = _timeline_zones(loaded, local or [], wide=wide)
    show_utc = wide or not local  # --local shows the audiences' times instead of UTC (T0 stays in the title)
    columns = [fixed("occurrence"), fixed("T± / on"), *([fixed("UTC")] if show_utc else [])]
    columns += [fixed(header) for _, header in zones] + [text("audiences"), text("channels")]
    rows = []
    for o in occurrences:
        offset = format_offset(o.due_at - t0) if o.due_at else o.trigger.value
        utc_time = [short_utc(o.due_at) if o.due_at else ""] if show_utc else []
        local_times = [short_local(o.due_at, zone) for zone, _ in zones]
        audiences = "all" if set(o.audiences) == set(loaded.audiences) else ", ".join(o.audiences)
        channels = ", ".join(c.value for c in o.channels)
        rows.append((o.key, offset, *utc_time, *local_times, audiences, channels))
    console.print(fitted_table(f"{loaded.cutover.title}: T0 {iso_utc(t0)}", columns, rows))


def _timeline_zones(loaded: Plan, audiences: list[str], *, wide: bool) -> list[tuple[str, str]]:
    """(zone, header) of each local-time column: the audiences asked for, or every zone naming its audiences."""
    for name in audiences:
        if name not in loaded.audiences:
            known = ", ".join(sorted(loaded.audiences))
            raise InputError(f"--local: no audience {name!r} (known: {known})")
    if not wide:
        return [(loaded.audiences[name].timezone, name) for name in dict.fromkeys(audiences)]
    by_zone: dict[str, list[str]] = {}
    for key in sorted(loaded.audiences):
        zone = loaded.audiences[key].timezone
        if zone != "UTC" or key in audiences:
            by_zone.setdefault(zone, []).append(key)
    return [(zone, f"{zone} ({', '.join(keys)})") for zone, keys in sorted(by_zone.items())]


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
