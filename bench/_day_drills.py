"""Cutover-day drills: a signal mid-send, two workers, a cancel and a rollback during a big send, an
operator command during a big materialization, a CLI killed mid-send beside a running worker. Real
``python -m comms`` processes against the drill SendGrid fake.

Each drill returns a result with the figures the issue asks for (time to stop, time to take over, lost,
duplicated, uncertain) and an ``ok`` verdict; ``bench/fault_drills.py --day`` runs them at full size and
``tests/e2e/test_cutover_day.py`` at small sizes.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
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


def sigterm_drill(
    workdir: Path, *, recipients: int, latency: float = 0.15, after_requests: int = 5, writer_after: int | None = None
) -> DayResult:
    """SIGTERM a worker mid-send: it exits 0 within 5 s with nothing in flight; the next run resumes, none twice.

    ``writer_after``: the worker hands the rest of the rows to its writer process after that many; the
    drill then signals while the writer runs and checks that none outlives the worker (the worker stops it;
    an orphan would stop at its next chunk, which commits only while its parent lives).
    """
    result = DayResult("sigterm mid-send", recipients)
    plan, db, fake = _setup(workdir, recipients, latency)
    with fake:
        extra = {"COMMS_WRITER_PROCESS_AFTER": str(writer_after)} if writer_after else {}
        env = _env(workdir, db, fake, **extra)
        _schedule(env, workdir, plan)
        worker = _worker(env, workdir)
        _wait_for(lambda: fake.accepted_requests >= after_requests or worker.poll() is not None, 120)
        if writer_after:  # signal while the writer process writes
            _wait_for(lambda: bool(_writers_of(db)) or worker.poll() is not None, 60)
        result.figures["writers_at_signal"] = float(len(_writers_of(db)))
        signalled = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=30)
        result.figures["time_to_stop_s"] = time.monotonic() - signalled
        result.figures["exit_code"] = float(worker.returncode)
        result.figures["writers_left"] = float(len(_writers_of(db)))
        stopped = _states(db)
        result.figures["in_flight_after_stop"] = float(stopped.get("in_flight", 0))
        result.figures["pending_after_stop"] = float(stopped.get("pending", 0))
        result.figures["sent_at_stop"] = float(stopped.get("sent", 0))
        resumed = _comms(env, workdir, "run", "--until-idle")
        if resumed.returncode != 0:
            result.notes.append(resumed.stderr[-500:])
        _settle(result, fake, db, recipients)
        result.notes.append(out.strip().splitlines()[-1] if out.strip() else err[-300:])
    result.ok = (
        result.figures["time_to_stop_s"] <= 5.0
        and worker.returncode == 0
        and result.figures["in_flight_after_stop"] == 0
        and result.figures["writers_left"] == 0
        and (not writer_after or result.figures["writers_at_signal"] > 0)
        and result.figures["sent_at_stop"] < recipients  # it stopped mid-send (the rest pending, or not yet written)
        and result.lost == 0
        and result.duplicates_outside_uncertain == 0
        and result.states == {"sent": recipients}
    )
    return result


def _writers_of(db: Path) -> list[int]:
    """Writer processes (``comms.delivery.writer_process``) still running on ``db`` (their environment names it)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes() if b"comms.delivery.writer_process" in cmdline else b""
        except OSError:
            continue
        if str(db).encode() in environ:
            pids.append(int(proc.name))
    return pids


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


def _stamp(value: str) -> float:
    """A timestamp as the store keeps it in SQLite (naive UTC text), as epoch seconds."""
    return datetime.fromisoformat(value).replace(tzinfo=UTC).timestamp()


def _attempts(db: Path, message: str, *, end_users: bool = True) -> list[tuple[str, str, int, float]]:
    """(claim, outcome, recipients, started_at) of every attempt of ``message`` (only its email to end-users)."""
    only = " AND a.audience = 'end-users' AND a.channel = 'email'" if end_users else ""
    with sqlite3.connect(db, timeout=30) as connection:
        rows = connection.execute(
            "SELECT a.claim, a.outcome, a.recipients, a.started_at FROM attempt a "
            f"JOIN occurrence o ON o.id = a.occurrence_id WHERE o.message = ?{only} ORDER BY a.id",
            (message,),
        ).fetchall()
    return [(str(claim), str(outcome), int(n), _stamp(started)) for claim, outcome, n, started in rows]


def _event_recorded_at(db: Path, kind: str) -> float | None:
    with sqlite3.connect(db, timeout=30) as connection:
        row = connection.execute("SELECT max(created_at) FROM event WHERE kind = ?", (kind,)).fetchone()
    return _stamp(row[0]) if row and row[0] else None


def rollback_drill(
    workdir: Path, *, recipients: int, latency: float = 0.3, after_share: float = 0.15, in_flight: int = 4
) -> DayResult:
    """``comms event rollback`` while the advance notice goes to ``recipients``: no batch of it starts after.

    The cutover is put in ``go`` first (``comms event go --force --reason``: the go window opens at T-6h and
    the advance notice is due at T-48h), then the worker sends the advance notice; at ``after_share`` of
    its requests the drill records the rollback (``--no-wait``, so the command's return bounds when it was
    committed). Checked from the attempts table and at the fake: no batch of the advance notice started
    after the rollback was committed (the few claimed while it waited for the write lock, after the time
    it read, are counted: at most the K in flight), at most K batches in flight were recorded sent after
    it, its rows written and not sent ended ``cancelled`` (rows of a big message not yet materialized are
    never written: the occurrence itself is cancelled), and the rollback notice went to every end-user, once.
    """
    result = DayResult("rollback during a big send", recipients)
    plan, db, fake = _setup(workdir, recipients, latency)
    batches = recipients // 1000
    with fake:
        env = _env(workdir, db, fake, COMMS_MAX_IN_FLIGHT=str(in_flight))
        _schedule(env, workdir, plan)
        went = _comms(env, workdir, "event", "go", "--force", "--reason", "drill: go before the window")
        if went.returncode != 0:
            raise RuntimeError(went.stderr)
        worker = _worker(env, workdir)
        _wait_for(lambda: _accepted_of(fake, "advance-notice") >= max(1, int(batches * after_share)), 120)
        issued = time.time()
        rolled = _comms(env, workdir, "event", "rollback", "--reason", "drill: error rate above 5 %", "--no-wait")
        returned = time.time()
        fake.faults = FaultPlan(rate=0.0)  # the rollback notice goes at full speed; the requests out stay slow
        result.figures["command_s"] = returned - issued
        sent_at_rollback = _message_states(db, "advance-notice").get("sent", 0)

        def settled() -> bool:
            notice = _message_states(db, "advance-notice")
            rollback = _message_states(db, "rollback")
            return (
                not notice.get("pending")
                and not notice.get("in_flight")
                and rollback.get("sent", 0) + rollback.get("dead", 0) + rollback.get("uncertain", 0) >= recipients
            )

        done = _wait_for(settled, 300, step=0.1)
        worker.send_signal(signal.SIGTERM)
        worker.communicate(timeout=30)
        fake.wait_for_delayed()
        if rolled.returncode != 0:
            result.notes.append(rolled.stderr[-300:])
        recorded = _event_recorded_at(db, "rollback")
        attempts = _attempts(db, "advance-notice")
        notice = _message_states(db, "advance-notice")
        rollback = _message_states(db, "rollback")
        result.states = notice
        with fake._seen_lock:
            arrivals = [s.at for s in fake.seen if s.message == "advance-notice" and s.addresses]
        after_recorded = [a for a in attempts if recorded is not None and a[3] > recorded]
        result.figures["sent_when_rollback_issued"] = float(sent_at_rollback)
        result.figures["batches_started_after_event_time"] = float(len(after_recorded))
        result.figures["batches_started_after_command_returned"] = float(sum(1 for a in attempts if a[3] > returned))
        result.figures["requests_at_fake_after_command_returned"] = float(sum(1 for at in arrivals if at > returned))
        result.figures["sent_after_command_returned"] = float(notice.get("sent", 0) - sent_at_rollback)
        result.figures["cancelled"] = float(notice.get("cancelled", 0))
        result.figures["rollback_notice_sent"] = float(rollback.get("sent", 0))
        notice_received = fake.received("advance-notice")
        rollback_received = fake.received("rollback")
        expected = {_common.address(n) for n in range(recipients)}
        result.lost = len(expected - set(rollback_received))
        result.duplicates_outside_uncertain = sum(1 for n in notice_received.values() if n > 1) + sum(
            1 for n in rollback_received.values() if n > 1
        )
        notice_sent = notice.get("sent", 0)
        received_notice = sum(1 for a in notice_received if a.startswith("user"))
        if received_notice != notice_sent:
            result.notes.append(f"the fake received the advance notice {received_notice} times, {notice_sent} sent")
    result.ok = (
        done
        and went.returncode == 0
        and rolled.returncode == 0
        and recorded is not None
        and notice.get("cancelled", 0) > 0
        and set(notice) <= {"sent", "cancelled"}
        and received_notice == notice_sent
        and result.figures["batches_started_after_command_returned"] == 0
        and result.figures["requests_at_fake_after_command_returned"] == 0
        and result.figures["batches_started_after_event_time"] <= in_flight
        and result.figures["sent_after_command_returned"] <= in_flight * 1000
        and rollback == {"sent": recipients}
        and result.lost == 0
        and result.duplicates_outside_uncertain == 0
    )
    return result


def _accepted_of(fake: DrillSendGrid, message: str) -> int:
    with fake._seen_lock:
        return sum(1 for s in fake.seen if s.accepted and s.message == message)


def _lease_row(db: Path) -> tuple[str, str] | None:
    """(owner, role) of the SQLite sender lease while somebody holds it."""
    if not db.exists():
        return None
    try:
        with sqlite3.connect(db, timeout=30) as connection:
            row = connection.execute("SELECT owner, role FROM lease WHERE name = 'sender' AND owner <> ''").fetchone()
    except sqlite3.OperationalError:  # the schema is not there yet
        return None
    return (str(row[0]), str(row[1])) if row else None


def _in_flight_of(db: Path, owner: str) -> int:
    with sqlite3.connect(db, timeout=30) as connection:
        row = connection.execute(
            "SELECT count(*) FROM delivery WHERE state = 'in_flight' AND claim LIKE ?", (f"{owner}/%",)
        ).fetchone()
    return int(row[0])


def _occurrence_rows(db: Path, message: str) -> list[tuple[str, str, str]]:
    """(channel, recipient, state) of every delivery of ``message``, every audience."""
    with sqlite3.connect(db, timeout=30) as connection:
        rows = connection.execute(
            "SELECT d.channel, lower(d.recipient), d.state FROM delivery d JOIN occurrence o ON o.id = d.occurrence_id "
            "WHERE o.message = ?",
            (message,),
        ).fetchall()
    return [(str(c), str(r), str(s)) for c, r, s in rows]


class _Lines:
    """A child's stdout, read line by line on a thread (so the drill can wait for a line)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert process.stdout is not None
        self._stream = process.stdout
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self._stream:
            self.lines.append(line.rstrip("\n"))

    def has(self, prefix: str) -> bool:
        return any(line.startswith(prefix) for line in list(self.lines))

    def join(self) -> None:
        self._thread.join(timeout=30)


def _claimed_of(db: Path, owner: str) -> int:
    """Deliveries in batches ``owner`` claimed whose request had not left (attempt still ``claimed``)."""
    with sqlite3.connect(db, timeout=30) as connection:
        row = connection.execute(
            "SELECT coalesce(sum(recipients), 0) FROM attempt WHERE outcome = 'claimed' AND claim LIKE ?",
            (f"{owner}/%",),
        ).fetchone()
    return int(row[0])


def _hold_a_claimed_batch(
    db: Path, owner: str, process: subprocess.Popen[str], *, timeout: float, also: Callable[[], bool]
) -> sqlite3.Connection | None:
    """Catch ``owner`` between claiming a batch and marking its request started, and keep it there.

    Polls the attempt table for a batch still ``claimed``; when one shows, takes the SQLite write lock and
    looks again (and checks ``also``: another of its requests is out): while the drill holds the lock the
    sender cannot mark the batch started, so it is killed with the batch claimed and unsent. Returns the
    connection holding the lock (None if never caught).
    """
    connection = sqlite3.connect(db, timeout=30, isolation_level=None)
    query = "SELECT 1 FROM attempt WHERE outcome = 'claimed' AND claim LIKE ? LIMIT 1"
    pattern = (f"{owner}/%",)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if connection.execute(query, pattern).fetchone():
            connection.execute("BEGIN IMMEDIATE")
            if connection.execute(query, pattern).fetchone() and also():
                return connection
            connection.execute("ROLLBACK")
        time.sleep(0.0005)
    connection.close()
    return None


def killed_cli_drill(
    workdir: Path,
    *,
    recipients: int,
    latency: float = 1.0,
    in_flight: int = 2,
    after_requests: int = 2,
    catch_claimed: bool = True,
) -> DayResult:
    """A CLI sending a big message itself is SIGKILLed mid-send; the worker already running settles its claims.

    ``comms event no-go`` sends the postponement notice to every audience from its own process (no worker
    holds the lease, so the command takes it). A ``comms run`` started meanwhile stands by. When the fake
    has accepted ``after_requests`` of the CLI's requests and holds others mid-answer (every answer is
    delayed ``latency`` s until the kill, so "mid-send" is an observed condition), the CLI is SIGKILLed.
    The same worker process (never restarted) takes the lease once the CLI's expires and settles the
    CLI's claims: a batch whose request had left becomes ``uncertain`` (never re-sent), a batch only
    claimed goes back to pending, and the worker sends what was pending. With ``catch_claimed`` the kill
    lands while the CLI holds a batch claimed but not yet started (``_hold_a_claimed_batch``), so both
    kinds of claim are settled. Checked: every delivery of the notice ends sent or uncertain, every sent
    one reached the fake exactly once, nobody received it twice.
    """
    result = DayResult("a CLI killed mid-send, settled by the running worker", recipients)
    plan, db, fake = _setup(workdir, recipients, latency)
    worker: subprocess.Popen[str] | None = None
    with fake:
        env = _env(workdir, db, fake, COMMS_MAX_IN_FLIGHT=str(in_flight))
        start = (datetime.now(UTC) + timedelta(days=10)).replace(microsecond=0)  # nothing of the timeline is due
        scheduled = _comms(env, workdir, "schedule", "--start", start.isoformat(), "--plan", str(plan))
        if scheduled.returncode != 0:
            raise RuntimeError(scheduled.stderr)
        cli = subprocess.Popen(
            [sys.executable, "-m", "comms", "event", "no-go", "--reason", "drill: the CLI is killed mid-send"],
            env=env,
            cwd=workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        held = _wait_for(lambda: (_lease_row(db) or ("", ""))[1] == "command" or cli.poll() is not None, 120)
        holder = _lease_row(db)
        cli_owner = holder[0] if holder and holder[1] == "command" else ""
        worker = _worker(env, workdir)
        lines = _Lines(worker)
        standby = _wait_for(lambda: lines.has("Standby") or worker.poll() is not None, 120)
        mid_send = _wait_for(
            lambda: (fake.accepted_requests >= after_requests and fake.delayed_now > 0) or cli.poll() is not None, 120
        )
        lock = None
        if catch_claimed and cli_owner:  # a request out at the fake and a batch claimed, not yet started
            lock = _hold_a_claimed_batch(db, cli_owner, cli, timeout=60, also=lambda: fake.delayed_now > 0)
        cli.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        cli.communicate(timeout=30)
        if lock is not None:
            lock.execute("ROLLBACK")
            lock.close()
        fake.faults = FaultPlan(rate=0.0)  # the worker's part goes at full speed; the CLI's requests stay slow
        result.figures["cli_exit"] = float(cli.returncode)
        result.figures["accepted_at_kill"] = float(fake.accepted_requests)
        result.figures["claimed_unsent_at_kill"] = float(_claimed_of(db, cli_owner)) if cli_owner else 0.0
        result.figures["rows_written_at_kill"] = float(len(_occurrence_rows(db, "postponement")))
        left = _in_flight_of(db, cli_owner) if cli_owner else 0
        result.figures["left_in_flight_by_kill"] = float(left)
        settled = _wait_for(lambda: _in_flight_of(db, cli_owner) == 0, 60, step=0.02) if cli_owner else False
        result.figures["time_to_settle_s"] = time.monotonic() - killed if settled else float("inf")

        def finished() -> bool:
            """Every end-user's row written (the CLI may die mid-materialization), and every row ended."""
            rows = _occurrence_rows(db, "postponement")
            users = sum(1 for channel, recipient, _ in rows if channel == "email" and recipient.startswith("user"))
            return users >= recipients and all(state in ("sent", "uncertain", "dead") for _, _, state in rows)

        done = _wait_for(finished, 300, step=0.1)
        result.figures["time_to_finish_s"] = time.monotonic() - killed
        still_running = worker.poll() is None  # the same worker process throughout: no restart
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
        lines.join()
        fake.wait_for_delayed()
        rows = _occurrence_rows(db, "postponement")
        attempts = _attempts(db, "postponement", end_users=False)
        received = fake.received("postponement")
        by_state = Counter(state for _, _, state in rows)
        result.states = dict(by_state)
        email = [(recipient, state) for channel, recipient, state in rows if channel == "email"]
        uncertain = {recipient for recipient, state in email if state == "uncertain"}
        result.figures["uncertain"] = float(by_state.get("uncertain", 0))
        result.figures["released_unsent"] = float(
            sum(n for claim, outcome, n, _ in attempts if claim.startswith(cli_owner) and outcome == "unsent")
        )
        result.figures["sent_by_cli"] = float(
            sum(n for claim, outcome, n, _ in attempts if claim.startswith(cli_owner) and outcome == "sent")
        )
        result.figures["sent_by_worker"] = float(
            sum(n for claim, outcome, n, _ in attempts if not claim.startswith(cli_owner) and outcome == "sent")
        )
        result.figures["uncertain_that_arrived"] = float(sum(1 for a in uncertain if received[a] == 1))
        result.lost = sum(1 for recipient, state in email if state == "sent" and received[recipient] != 1)
        result.lost += sum(1 for state in by_state if state not in ("sent", "uncertain"))
        result.duplicates_outside_uncertain = sum(1 for count in received.values() if count > 1)
        result.notes.append("standby line seen" if standby else "no standby line: " + " / ".join(lines.lines[-3:]))
        if not mid_send:
            result.notes.append("the CLI ended before it could be killed mid-send")
    result.ok = (
        held
        and bool(cli_owner)
        and standby
        and mid_send
        and result.figures["cli_exit"] == -signal.SIGKILL
        and left > 0
        and settled
        and result.figures["time_to_settle_s"] <= LEASE_SECONDS + 5
        and done
        and still_running
        and worker.returncode == 0
        and set(by_state) <= {"sent", "uncertain"}
        and by_state.get("uncertain", 0) <= left
        and result.figures["sent_by_worker"] > 0
        and (not catch_claimed or 0 < result.figures["claimed_unsent_at_kill"] == result.figures["released_unsent"])
        and (not catch_claimed or by_state.get("uncertain", 0) > 0)
        and result.lost == 0
        and result.duplicates_outside_uncertain == 0
        and not fake.violations
    )
    return result


def received_counter(fake: DrillSendGrid) -> Counter[str]:
    """Addresses the fake accepted, with how often (a helper for callers that report more)."""
    return fake.received()
