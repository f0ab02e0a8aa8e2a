"""`comms run --exclusive` refuses while another worker sends, on either backend (PostgreSQL shares the lease)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from comms.cli import app
from comms.clock import utc_now
from comms.store import lease
from comms.store.engine import make_engine, upgrade_database

OTHER_WORKER = "cutover-host-2:4242:0123456789ab"


@pytest.fixture
def env(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("COMMS_DATABASE_URL", database_url)
    monkeypatch.setenv("COMMS_OUTBOX_DIR", str(tmp_path / "outbox"))
    for name in ("COMMS_SENDGRID_API_KEY", "COMMS_SLACK_TOKEN", "COMMS_STATUSPAGE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return database_url


def test_exclusive_refuses_while_another_worker_holds_a_lease(env: str) -> None:
    """Another live worker: --exclusive exits 1 naming it, and leaves no lease of its own behind."""
    upgrade_database(env)
    engine = make_engine(env)
    assert lease.acquire(engine, OTHER_WORKER, role="worker", now=utc_now(), ttl=60) is not None

    result = CliRunner().invoke(app, ["run", "--exclusive", "--until-idle"])

    assert result.exit_code == 1, result.output
    assert "cutover-host-2" in result.output and "pid 4242" in result.output
    assert lease.live_owners(engine, now=utc_now()) == {OTHER_WORKER}


def test_exclusive_runs_when_no_other_worker_sends(env: str) -> None:
    """Nobody else sending: --exclusive runs as usual."""
    upgrade_database(env)
    result = CliRunner().invoke(app, ["run", "--exclusive", "--until-idle"])
    assert result.exit_code == 0, result.output
