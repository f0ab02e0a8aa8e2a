"""The typer app, the shared options and the one place errors become exit codes."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console

from comms.errors import CommsError, PlanError

app = typer.Typer(
    name="comms",
    help="Tell every stakeholder the right thing at the right time during a production cutover.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)

PlanOption = Annotated[Path, typer.Option("--plan", help="Plan folder holding audiences/, schedules/ and templates/.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
StartOption = Annotated[
    str, typer.Option("--start", help="T0: ISO-8601 with offset (2026-12-05T22:00:00Z) or naive with --tz.")
]
TzOption = Annotated[str | None, typer.Option("--tz", help="IANA zone of a naive --start (Europe/Berlin).")]
CutoverOption = Annotated[str | None, typer.Option("--cutover", help="Cutover name (default: the only one).")]

P = ParamSpec("P")
R = TypeVar("R")


def handles_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Map CommsError subclasses to a clear message and exit code; never show a traceback for them."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except PlanError as exc:
            err_console.print(f"[bold red]The plan is invalid[/] ({len(exc.problems)} problem(s)):")
            for problem in exc.problems:
                err_console.print(f"  {problem}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except CommsError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None

    return wrapper


def print_json(data: Any) -> None:
    """Print JSON to stdout (no rich markup, safe to pipe)."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens to stderr.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def main() -> None:
    """Console-script entry point."""
    app()
