"""`comms check`: the readiness check of plan, providers, recipients and T0."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from comms.cli.app import JsonOption, PlanOption, TzOption, app, console, handles_errors, print_json
from comms.cli.tables import fitted_table, fixed, text
from comms.errors import NotReadyError

if TYPE_CHECKING:
    from comms.reports.readiness import ReadinessReport

__all__ = ["OptionalStartOption", "check", "verdict_line"]

OptionalStartOption = Annotated[
    str | None,
    typer.Option("--start", help="T0 to check timing against: ISO-8601 with offset, or naive with --tz."),
]

_STYLE = {"PASS": "green", "WARN": "yellow", "FAIL": "bold red"}


@app.command()
@handles_errors
def check(
    start: OptionalStartOption = None,
    tz: TzOption = None,
    plan: PlanOption = Path("."),
    json: JsonOption = False,
) -> None:
    """Check readiness: plan, templates, provider credentials and targets, recipient CSVs and T0."""
    from comms.channels.factory import build_channels, close_channels
    from comms.clock import utc_now
    from comms.core.times import parse_start
    from comms.reports.readiness import check_readiness
    from comms.settings import Settings

    t0 = parse_start(start, tz=tz) if start else None
    settings = Settings()
    channels = build_channels(settings)
    try:
        report = check_readiness(plan, settings, start=t0, now=utc_now(), channels=channels)
    finally:
        close_channels(channels)
    if json:
        print_json(report.to_dict())
    else:
        table = fitted_table(
            "Cutover readiness",
            [text("check"), fixed("result"), text("detail")],
            ((row.name, Text(row.status, style=_STYLE[row.status]), row.detail) for row in report.rows),
        )
        console.print(table)
        console.print(verdict_line(report))
    if not report.ready:
        raise NotReadyError(f"not ready: {report.failed} check(s) failed")


def verdict_line(report: ReadinessReport) -> str:
    """The summary under the table: 'ready' only with no FAIL; dry-run channels and warnings counted apart."""
    total = len(report.rows)
    if not report.ready:
        return f"[bold red]Not ready[/]: {report.failed} of {total} checks failed ({report.passed} passed)."
    parts = [f"{report.passed}/{total} passed"]
    dry = report.dry_run_channels
    if dry:
        parts.append(f"{len(dry)} in dry run: {', '.join(dry)}")
    if report.warnings:
        parts.append(f"{report.warnings} warning{'s' if report.warnings != 1 else ''}")
    verdict = "[green]ready[/]"
    if dry:
        verdict = f"[yellow]ready for a dry run[/] ({', '.join(dry)} write to the outbox, not to a provider)"
    return f"Score {report.score:.0f}% ({'; '.join(parts)}): {verdict}"
