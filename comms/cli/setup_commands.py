"""Commands for starting and learning a plan: init, schema, vars."""

from __future__ import annotations

import json as jsonlib
from pathlib import Path
from typing import Annotated

import typer

from comms.cli.app import JsonOption, PlanOption, app, console, handles_errors, print_json
from comms.cli.tables import fitted_table, fixed, text
from comms.plan.loader import display_path

__all__ = ["init", "schema", "vars_"]


@app.command()
@handles_errors
def init(
    folder: Annotated[Path, typer.Argument(help="Folder to write the new plan into (created if missing).")] = Path("."),
    channel: Annotated[
        list[str] | None,
        typer.Option(
            "--channel",
            help="A channel kind of the plan, one audience each: email, slack, statuspage, webhook "
            "(repeat it; default email, slack and statuspage).",
        ),
    ] = None,
    audience: Annotated[
        list[str] | None,
        typer.Option(
            "--audience",
            help="An audience as NAME=CHANNEL[,CHANNEL] (ops=slack,email); repeat it. Replaces the "
            "one-audience-per-channel default.",
        ),
    ] = None,
    title: Annotated[str, typer.Option("--title", help="The cutover's title, quoted by the templates.")] = (
        "Service maintenance"
    ),
) -> None:
    """Write a small working plan (audiences, schedule, commented templates) to start from."""
    from comms.errors import InputError
    from comms.plan.fields import Channel
    from comms.plan.scaffold import DEFAULT_CHANNELS, default_audiences, parse_audience_choice, write_plan

    if audience:
        choices = [parse_audience_choice(text) for text in audience]
    else:
        try:
            kinds = tuple(Channel(c.strip()) for c in channel) if channel else DEFAULT_CHANNELS
        except ValueError as exc:
            raise InputError(f"--channel: {exc}; known: {', '.join(c.value for c in Channel)}") from None
        choices = default_audiences(kinds)
    written = write_plan(folder, audiences=choices, title=title)
    shown = display_path(folder.resolve())
    console.print(f"[green]Wrote a plan[/] of {len(choices)} audiences and {len(written)} files to {shown}/.")
    console.print(f"Next: comms validate --plan {shown}")
    console.print(f"      comms simulate --plan {shown} --start 2026-12-05T22:00:00Z")


@app.command()
@handles_errors
def schema(
    out: Annotated[
        Path | None, typer.Option("--out", help="Folder to write the schema files into (default: print them).")
    ] = None,
) -> None:
    """JSON Schemas of the audience, schedule and escalation files, for editors and CI."""
    from comms.plan.schema import plan_schemas

    schemas = plan_schemas()
    if out is None:
        print_json(schemas)
        return
    out.mkdir(parents=True, exist_ok=True)
    for name, body in schemas.items():
        (out / name).write_text(jsonlib.dumps(body, indent=2) + "\n", encoding="utf-8")
    console.print(f"Wrote {', '.join(schemas)} to {display_path(out.resolve())}/")


@app.command("vars")
@handles_errors
def vars_(
    message: Annotated[str, typer.Argument(help="Message key from the schedule.")],
    plan: PlanOption = Path("."),
    json: JsonOption = False,
) -> None:
    """Every template variable and filter a message's templates may use, with an example value."""
    from comms.plan.loader import load_plan
    from comms.plan.template_vars import message_variables, template_filters

    loaded = load_plan(plan, check_templates=False)
    variables = message_variables(loaded, message)
    filters = template_filters()
    if json:
        print_json({"variables": [v.__dict__ for v in variables], "filters": [f.__dict__ for f in filters]})
        return
    console.print(
        fitted_table(
            f"Variables of '{message}'", [fixed("variable"), text("example")], ((v.name, v.example) for v in variables)
        )
    )
    console.print(
        fitted_table(
            "Filters, written {{ value | filter }}",
            [fixed("filter"), text("what it writes, e.g.")],
            ((f.usage, f"{f.meaning}: {f.example}") for f in filters),
        )
    )
