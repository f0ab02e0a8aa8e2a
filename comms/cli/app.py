"""The typer app, the shared options and the one place errors become exit codes."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, NoReturn, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from comms.errors import CommsError, PlanError, StoreError

__all__ = [
    "CutoverOption",
    "JsonOption",
    "PlanOption",
    "StartOption",
    "TzOption",
    "app",
    "console",
    "err_console",
    "handles_errors",
    "main",
    "print_json",
]

log = logging.getLogger(__name__)

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
    """Map CommsError subclasses to a clear message and exit code; never show a traceback for them.

    An error no one translated is looked at once more: a database error (locked, read-only, full,
    cannot open) or a bad setting becomes its CommsError; anything else is a bug and propagates.
    With ``-v`` the original traceback of a database error is logged for a bug report.
    """

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
            _report(exc)
        except Exception as exc:
            translated = _translated(exc)
            if translated is None:
                raise
            translated.__cause__ = exc
            _report(translated)

    return wrapper


def _report(exc: CommsError) -> NoReturn:
    """Print one line for ``exc`` and exit with its code (-v also logs the database error underneath)."""
    if isinstance(exc, StoreError) and exc.__cause__ is not None:
        log.info("the database error underneath, for a bug report", exc_info=exc.__cause__)
    err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
    raise typer.Exit(exc.exit_code) from None


def _translated(exc: Exception) -> CommsError | None:
    """The CommsError a database driver's error or a settings ValidationError means (imported only then)."""
    module = type(exc).__module__
    if module.startswith(("sqlalchemy", "sqlite3")):
        from comms.store.errors import as_store_error

        return as_store_error(exc)
    if module.startswith("pydantic"):
        from comms.settings import settings_error

        return settings_error(exc)
    return None


def print_json(data: Any) -> None:
    """Print JSON to stdout (no rich markup, safe to pipe)."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _flag_shows_no_type(original: Callable[..., str | None]) -> Callable[..., str | None]:
    """Help shows an on/off flag by its name and meaning alone, not as ``<bool>`` (typer prints one)."""

    @wraps(original)
    def display_type_rich(self: typer.core.TyperOption, ctx: Any) -> str | None:
        if self.is_flag and self.metavar is None:
            return None
        return original(self, ctx)

    return display_type_rich


typer.core.TyperOption.display_type_rich = _flag_shows_no_type(  # type: ignore[method-assign]
    typer.core.TyperOption.display_type_rich
)


def _print_version(value: bool) -> None:
    if value:
        from comms import __version__

        sys.stdout.write(f"comms {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens to stderr.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", help="Print the version of comms and exit.", callback=_print_version, is_eager=True),
    ] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def main() -> None:
    """Console-script entry point."""
    app()
