"""The failover drill of bench/pg_workers.py at a small size: two `comms run` workers on PostgreSQL, one SIGKILLed.

The full-size figures are ``python bench/pg_workers.py``; both run ``pg_workers.one_run``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import pg_workers  # noqa: E402

from tests.support.postgres import PostgresServer

pytestmark = pytest.mark.slow

LEASE_SECONDS = 3.0


def test_a_killed_worker_is_taken_over_within_the_lease_time(tmp_path: Path, postgres_server: PostgresServer) -> None:
    """SIGKILL one of two workers mid-send: the other settles its claims after the lease, nothing lost, doubles only uncertain."""
    run = pg_workers.one_run(
        postgres_server,
        tmp_path,
        workers=2,
        recipients=8000,
        latency=(0.2, 0.4),
        lease=LEASE_SECONDS,
        kill=True,
        max_in_flight=2,
    )
    assert run.lost == 0, run
    assert run.states.get("in_flight", 0) == 0 and sum(run.states.values()) == 8000, run
    assert run.takeover_seconds is not None and run.takeover_seconds < LEASE_SECONDS + 10, run
    assert run.duplicates_outside_uncertain == 0, run
    assert run.uncertain <= 2 * 1000, run  # at most the killed worker's requests in flight (K = 2 batches)


def test_two_workers_send_one_message_once(tmp_path: Path, postgres_server: PostgresServer) -> None:
    """Two workers on one database share a message: everyone receives it exactly once."""
    run = pg_workers.one_run(
        postgres_server, tmp_path, workers=2, recipients=6000, latency=(0.05, 0.1), lease=LEASE_SECONDS, kill=False
    )
    assert (run.lost, run.duplicates, run.states) == (0, 0, {"sent": 6000}), run
