"""The ``comms`` command line: a typer app whose commands live in one module per area."""

from __future__ import annotations

from comms.cli.app import app, main

# Importing the command modules registers their commands on ``app``.
from comms.cli import plan_commands  # noqa: E402,F401  isort: skip

__all__ = ["app", "main"]
from comms.cli import engine_commands  # noqa: E402,F401  isort: skip
from comms.cli import run_command  # noqa: E402,F401  isort: skip
from comms.cli import check_commands  # noqa: E402,F401  isort: skip
from comms.cli import incident_commands  # noqa: E402,F401  isort: skip
from comms.cli import report_commands  # noqa: E402,F401  isort: skip
from comms.cli import record_commands  # noqa: E402,F401  isort: skip
from comms.cli import serve_command  # noqa: E402,F401  isort: skip
from comms.cli import db_command  # noqa: E402,F401  isort: skip
from comms.cli import setup_commands  # noqa: E402,F401  isort: skip
