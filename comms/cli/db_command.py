"""`comms db upgrade`: bring the database's schema to this release (the migrations in comms/store/migrations)."""

from __future__ import annotations

import typer

from comms.cli.app import app, console, handles_errors

__all__ = ["db_app", "upgrade"]

db_app = typer.Typer(help="The database: its schema and migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
@handles_errors
def upgrade() -> None:
    """Run the schema migrations up to this release (COMMS_DATABASE_URL; creates the tables of an empty database)."""
    from comms.settings import Settings
    from comms.store.engine import upgrade_database
    from comms.store.errors import describe_database

    settings = Settings()
    done = upgrade_database(settings.database_url)
    where = describe_database(settings.database_url)
    if done.before == done.after:
        console.print(f"The database {where} is already at schema {done.after}.", highlight=False, soft_wrap=True)
        return
    before = "a schema from before migrations" if done.adopted else (done.before or "no schema")
    console.print(f"Upgraded {where} from {before} to schema {done.after}.", highlight=False, soft_wrap=True)
