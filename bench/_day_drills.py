"""Cutover-day drills: a signal mid-send, two workers, a cancel during a big send, an operator command
during a big materialization. Real ``python -m comms`` processes against the drill SendGrid fake.

Each drill returns a result with the figures the issue asks for (time to stop, time to take over, lost,
duplicated, uncertain) and an ``ok`` verdict; ``bench/fault_drills.py --day`` runs them at full size and
``tests/e2e/test_cutover_day.py`` at small sizes.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
from _drills import DrillSendGrid, FaultPlan, _comms  # noqa: E402
from fakes.sendgrid import API_KEY  # noqa: E402

LEASE_SECONDS = 3.0
"""A short lease so the takeover drills run in seconds (the default is 10 s)."""


@dataclass
class DayResult:
    """What one drill measured."""

    name: str
    recipients: int
    figures: dict[str, float] = field(default_factory=dict)
    states: dict[str, int] = field(default_factory=dict)
    lost: int = 0
    duplicates_outside_uncertain: int = 0
    notes: list[str] = field(default_factory=list)
    ok: bool = False

    def line(self) -> str:
        shown = ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in self.figures.items())
        return (
            f"{self.name}: {'OK' if self.ok else 'FAILED'}; {shown}; lost {self.lost}, duplicated outside "
            f"uncertain {self.duplicates_outside_uncertain}; states {self.states}"
        )


def _states(db: Path) -> dict[str, int]:
    with sqlite3.connect(db, timeout=30) as connection:
        return dict(
            connection.execute(
                "SELECT state, count(*) FROM delivery WHERE audience = 'end-users' GROUP BY state"
            ).fetchall()
        )


def _uncertain(db: Path) -> set[str]:
    with sqlite3.connect(db, timeout=30) as connection:
        rows = connection.execute(
            "SELECT recipient FROM delivery WHERE state = 'uncertain' AND audience = 'end-users'"
        ).fetchall()
    return {r[0].lower() for r in rows}


def _settle(
    result: DayResult,
    fake: DrillSendGrid,
    db: Path,
    recipients: int,
    *,
    expect_all: bool = True,
    uncertain: set[str] | None = None,
) -> None:
    """Lost and doubled recipients at the fake; ``uncertain`` is the set marked uncertain before any retry."""
    received = fake.received()
    expected = {_common.address(n) for n in range(recipients)}
    result.states = _states(db)
    if expect_all:
        result.lost = len(expected - set(received))
    doubled = {a for a, count in received.items() if count > 1}
    result.duplicates_outside_uncertain = len(doubled - (_uncertain(db) if uncertain is None else uncertain))


def _setup(workdir: Path, recipients: int, latency: float) -> tuple[Path, Path, DrillSendGrid]:
    plan = _common.make_plan(workdir, recipients)
    db = workdir / "comms.db"
    fake = DrillSendGrid(FaultPlan(rate=1.0 if latency else 0.0, kinds=("slow",), slow=(latency, latency)))
    return plan, db, fake


def _env(workdir: Path, db: Path, fake: DrillSendGrid, **extra: str) -> dict[str, str]:
    return _common.comms_env(db, workdir / "outbox", fake.url, API_KEY, COMMS_LEASE_SECONDS=str(LEASE_SECONDS), **extra)


def _schedule(env: dict[str, str], workdir: Path, plan: Path) -> None:
    scheduled = _comms(env, workdir, "schedule", "--start", _common.due_now_start().isoformat(), "--plan", str(plan))
    if scheduled.returncode != 0:
        raise RuntimeError(scheduled.stderr)


def _worker(env: dict[str, str], workdir: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "comms", "run", "--tick", "0.5", *args],
        env=env,
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(predicate: object, timeout: float, step: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(step)
    return False


def _until_done(db: Path, recipients: int, timeout: float) -> bool:
    def done() -> bool:
        states = _states(db) if db.exists() else {}
        return sum(states.values()) >= recipients and not states.get("pending") and not states.get("in_flight")

    return _wait_for(done, timeout, step=0.1)


def sigterm_drill(workdir: Path, *, recipients: int, latency: float = 0.15, after_requests: int = 5) -> DayResult:
    """SIGTERM a worker mid-send: it exits 0 within 5 s with nothing in flight; the next run resumes, none twice."""
    result = DayResult("sigterm mid-send", recipients)
    plan, db, fake = _setup(workdir, recipients, latency)
    with fake:
        env = _env(workdir, db, fake)
        _schedule(env, workdir, plan)
        worker = _worker(env, workdir)
        _wait_for(lambda: fake.accepted_requests >= after_requests or worker.poll() is not None, 120)
        signalled = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=30)
        result.figures["time_to_stop_s"] = time.monotonic() - signalled
        result.figures["exit_code"] = float(worker.returncode)
        stopped = _states(db)
        result.figures["in_flight_after_stop"] = float(stopped.get("in_flight", 0))
        result.figures["pending_after_stop"] = float(stopped.get("pending", 0))
        resumed = _comms(env, workdir, "run", "--until-idle")
        if resumed.returncode != 0:
            result.notes.append(resumed.stderr[-500:])
        _settle(result, fake, db, recipients)
        result.notes.append(out.strip().splitlines()[-1] if out.strip() else err[-300:])
    result.ok = (
        result.figures["time_to_stop_s"] <= 5.0
        and worker.returncode == 0
        and result.figures["in_flight_after_stop"] == 0
        and result.figures["pending_after_stop"] > 0
        and result.lost == 0
        and result.duplicates_outside_uncertain == 0
        and result.states == {"sent": recipients}
    )
    return result


def standby_drill(workdir: Path, *, recipients: int, latency: float = 0.25, in_flight: int = 2) -> DayResult:
    """Two ``comms run`` on one database: the second stands by; SIGKILL the first, the second takes over and finishes."""
    result = DayResult("standby takes over from a killed worker", recipients)
    plan, db, fake = _setup(workdir, recipients, latency)
    with fake:
        env = _env(workdir, db, fake, COMMS_MAX_IN_FLIGHT=str(in_flight))
        _schedule(env, workdir, plan)
        sender = _worker(env, workdir)
        _wait_for(lambda: fake.accepted_requests >= 3 or sender.poll() is not None, 120)
        standby = _worker(env, workdir)
        time.sleep(1.0)  # the standby says who holds the lease and waits
        before = fake.accepted_requests
        sender.send_signal(signal.SIGKILL)
        sender.wait(timeout=10)
        killed = time.monotonic()
        time.sleep(0.3)  # answers to what the dead sender left in flight land first
        in_flight_at_kill = fake.accepted_requests - before
        took_over = _wait_for(lambda: fake.accepted_requests > before + in_flight_at_kill + 1, 60)
        result.figures["time_to_take_over_s"] = time.monotonic() - killed if took_over else float("inf")
        done = _until_done(db, recipients, 300)
        standby.send_signal(signal.SIGTERM)
        out, _ = standby.communicate(timeout=30)
        result.notes.append(next((line for line in out.splitlines() if line.startswith("Standby")), "no standby line"))
        uncertain = _uncertain(db)
        result.figures["uncertain"] = float(len(uncertain))
        retried = _comms(env, workdir, "retry", "--uncertain")
        if retried.returncode != 0:
            result.notes.append(retried.stderr[-300:])
        _settle(result, fake, db, recipients, uncertain=uncertain)
    result.ok = (
        done
        and result.figures["uncertain"] <= in_flight * 1000
        and result.figures["time_to_take_over_s"] <= LEASE_SECONDS + 5
        and result.lost == 0
        and result.duplicates_outside_uncertain == 0
        and any(note.startswith("Standby") for note in result.notes)
    )
    return result


def _message_states(db: Path, message: str) -> dict[str, int]:
    with sqlite3.connect(db, timeout=30) as connection:
        return dict(
            connection.execute(
                "SELECT d.state, count(*) FROM delivery d JOIN occurrence o ON o.id = d.occurrence_id "
                "WHERE d.audience = 'end-users' AND o.message = ? GROUP BY d.state",
                (message,),
            ).fetchall()
        )


def cancel_drill(
    workdir: Path, *, recipients: int, latency: float = 0.3, after_share: float = 0.15, in_flight: int = 4
) -> DayResult:
    """``comms cancel --no-wait`` while a big send is in flight: the rest of it ends cancelled within K batches.

    The cancel also sends its own cancellation notice to the same people, so the drill counts the
    advance notice's rows in the store, and checks the fake received exactly the rows recorded sent.
    """
    result = DayResult("cancel during a big send", recipients)
    plan, db, fake = _setup(workdir, recipients, latency)
    batches = recipients // 1000
    with fake:
        env = _env(workdir, db, fake, COMMS_MAX_IN_FLIGHT=str(in_flight))
        _schedule(env, workdir, plan)
        worker = _worker(env, workdir)
        _wait_for(lambda: fake.accepted_requests >= max(1, int(batches * after_share)), 120)
        issued = time.monotonic()
        cancelled = _comms(env, workdir, "cancel", "--reason", "drill", "--no-wait")
        result.figures["command_s"] = time.monotonic() - issued
        at_cancel = _message_states(db, "advance-notice").get("sent", 0)
        _until_done(db, 2 * recipients, 120)  # the advance notice ended, the cancellation notice sent
        worker.send_signal(signal.SIGTERM)
        worker.communicate(timeout=30)
        if cancelled.returncode != 0:
            result.notes.append(cancelled.stderr[-300:])
        notice = _message_states(db, "advance-notice")
        result.states = notice
        result.figures["sent_before_cancel_returned"] = float(at_cancel)
        result.figures["sent_after_cancel_returned"] = float(notice.get("sent", 0) - at_cancel)
        everything = _states(db)
        accepted = sum(count for address, count in fake.received().items() if address.startswith("user"))
        result.duplicates_outside_uncertain = max(0, accepted - everything.get("sent", 0))
    result.ok = (
        cancelled.returncode == 0
        and notice.get("cancelled", 0) > 0
        and not notice.get("pending")
        and not notice.get("in_flight")
        and result.figures["sent_after_cancel_returned"] <= in_flight * 1000
        and result.duplicates_outside_uncertain == 0
    )
    return result


def operator_during_materialize_drill(workdir: Path, *, recipients: int) -> DayResult:
    """``comms incident open`` while the worker writes a big message's rows: the command returns in seconds."""
    result = DayResult("incident open during a big materialization", recipients)
    plan, db, fake = _setup(workdir, recipients, 0.0)
    with fake:
        env = _env(workdir, db, fake)
        _schedule(env, workdir, plan)
        worker = _worker(env, workdir)
        _wait_for(lambda: db.exists() and sum(_states(db).values()) > 0, 120, step=0.02)
        issued = time.monotonic()
        opened = _comms(
            env, workdir, "incident", "open", "--severity", "sev2", "--summary", "drill: slow sign-in", timeout=120
        )
        result.figures["command_s"] = time.monotonic() - issued
        result.figures["rows_written_when_issued"] = float(sum(_states(db).values()))
        worker.send_signal(signal.SIGTERM)
        worker.communicate(timeout=30)
        if opened.returncode != 0:
            result.notes.append(opened.stderr[-300:])
        result.states = _states(db)
    result.ok = opened.returncode == 0 and result.figures["command_s"] <= 5.0
    return result


def received_counter(fake: DrillSendGrid) -> Counter[str]:
    """Addresses the fake accepted, with how often (a helper for callers that report more)."""
    return fake.received()
