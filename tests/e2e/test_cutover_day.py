"""The fast cutover-day drills of bench/_day_drills.py: a signal mid-send, a standby taking over, a cancel
and a rollback during a big send, an operator command during a big materialization, a CLI killed mid-send
beside a running worker (real processes, loopback SendGrid)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import _day_drills  # noqa: E402

pytestmark = pytest.mark.slow


def test_sigterm_mid_send_stops_within_seconds_and_the_next_run_resumes(tmp_path: Path) -> None:
    """SIGTERM mid-send: exit 0 within 5 s, nothing left in flight, the rest sent once by the next run."""
    result = _day_drills.sigterm_drill(tmp_path, recipients=40_000, latency=0.15)
    assert result.ok, result.line() + " " + " | ".join(result.notes)


def test_sigterm_while_a_writer_process_writes_stops_it_too(tmp_path: Path) -> None:
    """SIGTERM while the worker's writer process writes a 60k message's rows: no writer outlives the worker, and
    the next run writes and sends the rest, each recipient once."""
    result = _day_drills.sigterm_drill(tmp_path, recipients=60_000, latency=0.15, writer_after=5000)
    assert result.ok, result.line() + " " + " | ".join(result.notes)


def test_a_standby_worker_takes_over_from_a_killed_one(tmp_path: Path) -> None:
    """Two workers: one sends, one waits; SIGKILL the sender and the standby finishes, no duplicate outside uncertain."""
    result = _day_drills.standby_drill(tmp_path, recipients=40_000)
    assert result.ok, result.line() + " " + " | ".join(result.notes)


def test_cancel_during_a_big_send_stops_the_rest_within_the_batches_in_flight(tmp_path: Path) -> None:
    """`comms cancel` during a 60k send: the remaining rows end cancelled; at most K batches leave after it."""
    result = _day_drills.cancel_drill(tmp_path, recipients=60_000)
    assert result.ok, result.line() + " " + " | ".join(result.notes)


def test_a_rollback_during_a_big_send_stops_it_and_sends_the_rollback_notice(tmp_path: Path) -> None:
    """`comms event rollback` during a 20k send: no batch of it starts after the rollback is recorded, the rest
    ends cancelled, and the rollback notice goes to every end-user once."""
    result = _day_drills.rollback_drill(tmp_path, recipients=20_000, latency=1.0, in_flight=2)
    assert result.ok, result.line() + " " + " | ".join(result.notes)


def test_an_operator_command_during_a_big_materialization_returns_in_seconds(tmp_path: Path) -> None:
    """`comms incident open` while the worker writes a 200k message's rows returns within 5 s."""
    result = _day_drills.operator_during_materialize_drill(tmp_path, recipients=200_000)
    assert result.ok, result.line() + " " + " | ".join(result.notes)


def test_a_cli_killed_mid_send_is_settled_by_the_running_worker(tmp_path: Path) -> None:
    """SIGKILL `comms event no-go` while it sends the postponement itself: the worker already running (on
    standby) settles its claims without a restart; every delivery ends sent once or uncertain, none twice."""
    result = _day_drills.killed_cli_drill(tmp_path, recipients=10_000, latency=1.5, in_flight=2)
    assert result.ok, result.line() + " " + " | ".join(result.notes)
