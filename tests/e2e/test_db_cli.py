"""`comms db upgrade` and the schema check at start, through the CLI."""

from __future__ import annotations

import shutil
from pathlib import Path

from conftest import Cli

PREVIOUS_RELEASE_DB = Path(__file__).resolve().parents[1] / "fixtures" / "comms-dfa21ad.db"


def test_an_old_database_is_refused_until_db_upgrade(cli: Cli, tmp_path: Path) -> None:
    """'comms status' on a previous release's database exits 1 naming the command; after it, status works."""
    shutil.copy(PREVIOUS_RELEASE_DB, tmp_path / "old.db")
    env = {"COMMS_DATABASE_URL": f"sqlite:///{tmp_path}/old.db"}
    refused = cli("status", env=env)
    assert refused.exit_code == 1 and "run 'comms db upgrade'" in refused.output
    upgraded = cli("db", "upgrade", env=env)
    assert upgraded.exit_code == 0, upgraded.output
    assert "from a schema from before migrations to schema" in upgraded.output
    assert cli("status", env=env).exit_code == 0
    assert "already at schema" in cli("db", "upgrade", env=env).output
