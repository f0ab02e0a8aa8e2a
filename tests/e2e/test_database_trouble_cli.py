"""Database trouble and bad settings as a user meets them: one line on stderr, exit 1 or 2, no traceback."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from comms.plan.loader import load_plan
from comms.services.scheduling import schedule_cutover
from comms.store.engine import make_engine
from tests.support.plans import wall_clock_plan

REPO_ROOT = Path(__file__).resolve().parents[2]
START = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0).isoformat()
FORCED = ("--force", "--reason", "database drill")
"""Go is given 30 days before T0 here, outside its window: these tests are about the database."""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The environment of a `comms` process: a database and an outbox under tmp_path, no credentials."""
    values = {k: v for k, v in os.environ.items() if not k.upper().startswith("COMMS_")}
    values.update(
        COMMS_DATABASE_URL=f"sqlite:///{tmp_path}/comms.db", COMMS_OUTBOX_DIR=str(tmp_path / "outbox"), COLUMNS="400"
    )
    return values


def _schedule(env: dict[str, str], *, start: datetime) -> Path:
    """Schedule the default plan's cutover for ``start`` through the service; the database file."""
    engine = make_engine(env["COMMS_DATABASE_URL"])
    plan = load_plan(wall_clock_plan(), check_templates=False)  # the worker runs on the wall clock: no quiet hours
    schedule_cutover(engine, plan, start=start, now=datetime.now(UTC))
    engine.dispose()
    return Path(env["COMMS_DATABASE_URL"].removeprefix("sqlite:///"))


@pytest.fixture
def scheduled(env: dict[str, str]) -> Path:
    """A cutover scheduled a month ahead; the database file."""
    return _schedule(env, start=datetime.now(UTC) + timedelta(days=30))


@pytest.fixture
def write_lock(scheduled: Path) -> Iterator[sqlite3.Connection]:
    """Another process's connection holding the write lock (BEGIN IMMEDIATE) while the test runs."""
    holder = sqlite3.connect(scheduled, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    yield holder
    holder.execute("ROLLBACK")
    holder.close()


def _comms(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "comms", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0].removeprefix("error: ")


def test_locked_database_answers_within_seconds(
    env: dict[str, str], scheduled: Path, write_lock: sqlite3.Connection
) -> None:
    """`comms event go` blocked by another process's lock exits 1 in about a second with a plain sentence."""
    started = time.monotonic()
    result = _comms(env, "event", "go", *FORCED)
    elapsed = time.monotonic() - started
    assert result.returncode == 1
    assert _one_error_line(result) == (
        f"the database {scheduled} is locked by another process (a worker writing a big send?); try again in a moment"
    )
    assert elapsed < 5.0  # ~1 s of waiting plus the interpreter's start (it waited 30 s before)


def test_worker_outwaits_a_lock_an_operator_would_not(env: dict[str, str], tmp_path: Path) -> None:
    """`comms run` waits longer than an operator's second for the lock, then sends once it is released."""
    db = _schedule(env, start=datetime.now(UTC) + timedelta(hours=48) - timedelta(minutes=1))  # T-48h is due
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        worker = subprocess.Popen(
            [sys.executable, "-m", "comms", "run", "--until-idle"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        with pytest.raises(subprocess.TimeoutExpired):
            worker.wait(timeout=2.5)  # an operator's command gives up after ~1 s
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    out, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    assert "Sent " in out and "Traceback" not in err


def test_read_only_database(env: dict[str, str], scheduled: Path) -> None:
    """A write to a database opened read-only exits 1 saying it is read-only and how to fix it."""
    result = _comms(
        {**env, "COMMS_DATABASE_URL": f"sqlite:///file:{scheduled}?mode=ro&uri=true"}, "event", "go", *FORCED
    )
    assert result.returncode == 1
    assert _one_error_line(result).startswith(f"the database {scheduled} is read-only for this process")


def test_database_folder_under_a_file(env: dict[str, str], tmp_path: Path) -> None:
    """A database in a folder that cannot exist (a file is in its way) exits 1 naming what blocks it."""
    (tmp_path / "notes.txt").write_text("not a folder")
    result = _comms({**env, "COMMS_DATABASE_URL": f"sqlite:///{tmp_path}/notes.txt/comms.db"}, "event", "go", *FORCED)
    assert result.returncode == 1
    assert f"{tmp_path}/notes.txt is a file, not a folder" in _one_error_line(result)


def test_unparsable_database_url(env: dict[str, str], tmp_path: Path) -> None:
    """COMMS_DATABASE_URL=nonsense:// exits 2 naming the variable; nothing is created."""
    result = _comms({**env, "COMMS_DATABASE_URL": "nonsense://"}, "event", "go", *FORCED, cwd=tmp_path)
    assert result.returncode == 2
    assert _one_error_line(result).startswith("COMMS_DATABASE_URL 'nonsense://' cannot be used")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("COMMS_MAX_ATTEMPTS", "many"),
        ("COMMS_SLACK_BASE_URL", "slack.com/api"),
    ],  # the rest: tests/unit/test_settings.py
)
def test_bad_setting_is_refused_before_anything_is_stored(
    env: dict[str, str], tmp_path: Path, name: str, value: str
) -> None:
    """`comms schedule` with a bad setting exits 2, names the variable in one line, and creates no database."""
    result = _comms({**env, name: value}, "schedule", "--start", START, "--plan", str(REPO_ROOT))
    assert result.returncode == 2
    assert _one_error_line(result).startswith(f"invalid setting {name}={value!r}: ")
    assert not (tmp_path / "comms.db").exists()


def test_check_refuses_a_bad_provider_host(env: dict[str, str]) -> None:
    """`comms check` with a host that is not a URL exits 2 at once instead of reporting the provider down."""
    result = _comms(
        {**env, "COMMS_SENDGRID_API_KEY": "SG.x", "COMMS_SENDGRID_HOST": "not a url"}, "check", "--plan", str(REPO_ROOT)
    )
    assert result.returncode == 2
    assert _one_error_line(result).startswith("invalid setting COMMS_SENDGRID_HOST='not a url'")


def test_verbose_shows_the_database_error_underneath(env: dict[str, str], scheduled: Path) -> None:
    """With -v the driver's traceback is logged for a bug report, and the plain sentence still ends it."""
    result = _comms(
        {**env, "COMMS_DATABASE_URL": f"sqlite:///file:{scheduled}?mode=ro&uri=true"}, "-v", "event", "go", *FORCED
    )
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "attempt to write a readonly database" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: the database {scheduled} is read-only")
