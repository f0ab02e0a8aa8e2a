"""A real worker process killed with SIGKILL mid-dispatch and restarted loses and doubles nothing."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fakes.sendgrid import API_KEY, FakeSendGrid

from tests.support.plans import without_quiet_hours

REPO_ROOT = Path(__file__).resolve().parents[2]
RECIPIENTS = 6000


def _plan_copy(tmp_path: Path) -> Path:
    plan = tmp_path / "plan"
    for folder in ("audiences", "schedules", "templates"):
        shutil.copytree(REPO_ROOT / folder, plan / folder)
    with (plan / "audiences" / "end-users.csv").open("w") as handle:
        handle.write("email,name\n")
        for n in range(RECIPIENTS):
            handle.write(f"user{n:05d}@example.com,User {n}\n")
    return without_quiet_hours(plan)  # the worker runs on the wall clock


def _comms(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "comms", *args], env=env, capture_output=True, text=True, timeout=120)


def _states(db: Path, audience: str | None = "end-users") -> dict[str, str]:
    """Email recipient -> delivery state, of one audience or (None) of every audience."""
    with sqlite3.connect(db) as connection:
        rows = connection.execute(
            "SELECT recipient, state FROM delivery WHERE channel = 'email' AND audience = coalesce(?, audience)",
            (audience,),
        ).fetchall()
    assert len(rows) == len({r for r, _ in rows}), "a recipient has more than one delivery row"
    return dict(rows)


IN_FLIGHT = 3
"""Requests the worker keeps in flight: a kill leaves at most this many batches uncertain."""


@pytest.mark.slow
def test_sigkill_mid_dispatch_loses_and_doubles_nothing(tmp_path: Path) -> None:
    """After SIGKILL and restart each recipient is sent exactly once or visibly uncertain; none received twice."""
    plan = _plan_copy(tmp_path)
    db = tmp_path / "comms.db"
    with FakeSendGrid(fast=False) as fake:
        env = {
            **os.environ,
            "COMMS_DATABASE_URL": f"sqlite:///{db}",
            "COMMS_OUTBOX_DIR": str(tmp_path / "outbox"),
            "COMMS_SENDGRID_API_KEY": API_KEY,
            "COMMS_SENDGRID_HOST": fake.url,
            "COMMS_EMAIL_FROM": "cutover@example.com",
            "COMMS_MAX_IN_FLIGHT": str(IN_FLIGHT),
        }
        start = datetime.now(UTC) + timedelta(hours=48) - timedelta(minutes=1)
        scheduled = _comms(env, "schedule", "--start", start.isoformat(), "--plan", str(plan))
        assert scheduled.returncode == 0, scheduled.stderr
        fake.fail_next(50, delay=0.25)
        worker = subprocess.Popen(
            [sys.executable, "-m", "comms", "run", "--until-idle"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while fake.accepted_requests < 2 and time.monotonic() < deadline and worker.poll() is None:
            time.sleep(0.02)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        assert fake.accepted_requests < RECIPIENTS // 1000, "the worker finished before it could be killed"
        time.sleep(0.5)  # let the fake finish answering the request the dead worker left behind

        restarted = _comms(env, "run", "--until-idle")
        assert restarted.returncode == 0, restarted.stderr
        states = _states(db)
        received = Counter(p["to"][0]["email"] for body in fake.accepted for p in body["personalizations"])

        assert len(states) == RECIPIENTS
        assert set(states.values()) <= {"sent", "uncertain"}, Counter(states.values())
        assert max(received.values()) == 1, "a recipient received the message twice"
        assert all(received[address] == 1 for address, state in states.items() if state == "sent")
        # The batch in flight at the kill may belong to any audience: the lanes take turns.
        every_state = _states(db, audience=None)
        assert set(every_state.values()) <= {"sent", "uncertain"}, Counter(every_state.values())
        assert all(received[address] == 1 for address, state in every_state.items() if state == "sent")
        uncertain = [address for address, state in every_state.items() if state == "uncertain"]
        assert len(uncertain) <= IN_FLIGHT * 1000, "more batches are uncertain than were in flight"

        retried = _comms(env, "retry", "--uncertain")
        assert retried.returncode == 0, retried.stderr
        final = _states(db, audience=None)
        received = Counter(p["to"][0]["email"] for body in fake.accepted for p in body["personalizations"])
        assert set(final.values()) == {"sent"}
        assert sum(1 for count in received.values() if count > 1) <= len(uncertain)
        assert not fake.violations
