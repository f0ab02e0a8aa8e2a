"""Several `comms run` workers on one PostgreSQL database: throughput by worker count, and a worker lost mid-send.

    python bench/pg_workers.py [--recipients 100000] [--workers 1,2,4] [--only throughput|failover]
                               [--latency 0.1:0.2] [--lease 10]

A PostgreSQL 15 server of its own is started (``tests/support/postgres.py``: initdb + pg_ctl into a temp
dir); each run gets a fresh database brought to the schema by ``comms db upgrade``. The advance notice
(T-48h) goes to N end-users by email against the loopback SendGrid drill fake, every answer delayed by
``--latency`` seconds (uniform) as a provider across the internet is.

1. Throughput: W workers (``comms run --tick 0.5``) share the message; the time from their start until
   every delivery is sent, for each W.
2. Failover: two workers; once the fake has accepted a quarter of the requests, the first worker seen with
   requests in flight is SIGKILLed. Measured:
   the time until the survivor has settled every claim the dead worker left in flight (reconciled, else
   ``uncertain``; the dead lease expires after ``--lease`` seconds), recipients lost (must be 0), and
   recipients received twice (must all be among the rows marked ``uncertain``). ``comms retry
   --uncertain`` runs at the end, as an operator would.
3. Faults: two workers while ``--fault-rate`` of the requests get a 5xx, a 429 with Retry-After or
   X-RateLimit-Reset, a dropped connection or a slow answer; checked: nobody lost, doubles only among
   uncertain, and no request (from either worker) before a Retry-After the fake answered earlier.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _common  # noqa: E402
from _drills import DrillSendGrid, FaultPlan, cleanup  # noqa: E402
from fakes.sendgrid import API_KEY  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from tests.support.postgres import PostgresServer, find_bin_dir  # noqa: E402


@dataclass
class Run:
    workers: int
    recipients: int
    seconds: float = 0.0
    requests: int = 0
    states: dict[str, int] = field(default_factory=dict)
    takeover_seconds: float | None = None
    left_in_flight_by_kill: int = 0
    uncertain: int = 0
    lost: int = 0
    duplicates: int = 0
    duplicates_outside_uncertain: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    same_deliveries_early: int = 0
    any_request_early: int = 0


def _states(url: str) -> dict[str, int]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT state, count(*) FROM delivery WHERE audience = 'end-users' GROUP BY state")
            ).all()
    finally:
        engine.dispose()
    return {str(state): int(count) for state, count in rows}


def _in_flight_of(url: str, pid: int) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return int(
                connection.execute(
                    text("SELECT count(*) FROM delivery WHERE state = 'in_flight' AND claim LIKE :owner"),
                    {"owner": f"%:{pid}:%"},
                ).scalar_one()
            )
    finally:
        engine.dispose()


def _comms(env: dict[str, str], cwd: Path, *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "comms", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=900
    )
    if done.returncode:
        raise RuntimeError(f"comms {' '.join(args)}: {done.stderr}{done.stdout}")


def _worker(env: dict[str, str], cwd: Path, number: int) -> subprocess.Popen[bytes]:
    log = (cwd / f"worker-{number}.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "comms", "run", "--tick", "0.5"], env=env, cwd=cwd, stdout=log, stderr=log
    )


def _worker_logs(cwd: Path) -> str:
    return "\n".join(f"{path.name}: {path.read_text()[-1500:]}" for path in sorted(cwd.glob("worker-*.log")))


def one_run(
    server: PostgresServer,
    workdir: Path,
    *,
    workers: int,
    recipients: int,
    latency: tuple[float, float],
    lease: float,
    kill: bool,
    max_in_flight: int | None = None,
    faults: float = 0.0,
) -> Run:
    """Send the message with ``workers`` workers (killing one mid-send when ``kill``); count what arrived."""
    name = server.new_database()
    url = server.url(name)
    run = Run(workers=workers, recipients=recipients)
    plan = _common.make_plan(workdir, recipients)
    plan_of_faults = (
        FaultPlan(rate=faults, kinds=("5xx", "429-retry-after", "429-reset", "drop", "slow"), slow=latency, seed=3)
        if faults
        else FaultPlan(rate=1.0, kinds=("slow",), slow=latency, seed=3)
    )
    fake = DrillSendGrid(plan_of_faults)
    try:
        with fake:
            env = _common.comms_env(
                workdir / "unused.db",
                workdir / "outbox",
                fake.url,
                API_KEY,
                COMMS_DATABASE_URL=url,
                COMMS_LEASE_SECONDS=str(lease),
            )
            if max_in_flight is not None:
                env["COMMS_MAX_IN_FLIGHT"] = str(max_in_flight)
            if faults:
                env.update(COMMS_RETRY_BASE_SECONDS="0.5", COMMS_MAX_ATTEMPTS="20")
            _comms(env, workdir, "db", "upgrade")
            _comms(env, workdir, "schedule", "--start", _common.due_now_start().isoformat(), "--plan", str(plan))
            started = time.monotonic()
            procs = [_worker(env, workdir, number) for number in range(workers)]
            total_requests = -(-recipients // 1000)
            killed_at: float | None = None
            if kill:
                while fake.accepted_requests < total_requests // 4 and time.monotonic() - started < 600:
                    time.sleep(0.005)
                victim = procs[0]
                while time.monotonic() - started < 600:  # the worker with requests out, so the kill leaves claims
                    busy = [proc for proc in procs if _in_flight_of(url, proc.pid)]
                    if busy:
                        victim = busy[0]
                        break
                    time.sleep(0.005)
                victim.send_signal(signal.SIGKILL)
                victim.wait(timeout=30)
                killed_at = time.monotonic()
                run.left_in_flight_by_kill = _in_flight_of(url, victim.pid)
                while _in_flight_of(url, victim.pid) and time.monotonic() - killed_at < 600:
                    time.sleep(0.05)
                run.takeover_seconds = time.monotonic() - killed_at
            while time.monotonic() - started < 1800:
                states = _states(url)
                if sum(states.values()) >= recipients and not states.get("pending") and not states.get("in_flight"):
                    break
                if all(proc.poll() is not None for proc in procs):
                    raise RuntimeError(f"every worker stopped before the message was sent: {_worker_logs(workdir)}")
                time.sleep(0.05)
            run.seconds = time.monotonic() - started
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in procs:
                proc.wait(timeout=120)
            run.states = _states(url)
            run.uncertain = run.states.get("uncertain", 0)
            engine = create_engine(url)
            with engine.connect() as connection:
                uncertain = {
                    str(row[0]).lower()
                    for row in connection.execute(
                        text("SELECT recipient FROM delivery WHERE state = 'uncertain' AND audience = 'end-users'")
                    )
                }
            engine.dispose()
            if uncertain:
                _comms(env, workdir, "retry", "--uncertain")
            fake.wait_for_delayed()
            received = fake.received()
            expected = {_common.address(n) for n in range(recipients)}
            run.lost = len(expected - set(received))
            doubled = {address for address, count in received.items() if count > 1}
            run.duplicates = len(doubled)
            run.duplicates_outside_uncertain = len(doubled - uncertain)
            run.requests = len(fake.seen)
            run.by_kind = dict(Counter(seen.kind for seen in fake.seen))
            same, anything = fake.retry_after_violations()
            run.same_deliveries_early, run.any_request_early = len(same), len(anything)
    finally:
        server.drop_database(name)
    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--only", choices=["throughput", "failover", "faults"])
    parser.add_argument("--fault-rate", type=float, default=0.2, help="share of requests the faults drill fails")
    parser.add_argument("--latency", default="0.1:0.2", help="seconds each answer waits, uniform MIN:MAX")
    parser.add_argument("--lease", type=float, default=10.0, help="COMMS_LEASE_SECONDS of the workers")
    args = parser.parse_args()
    low, high = (float(part) for part in args.latency.split(":"))
    bin_dir = find_bin_dir()
    if bin_dir is None:
        print("no PostgreSQL server installed (apt-get install postgresql)")
        return 1
    _common.print_machine()
    server = PostgresServer(bin_dir)
    server.start()
    ok = True
    try:
        if args.only in (None, "throughput"):
            base: float | None = None
            for workers in (int(w) for w in args.workers.split(",")):
                workdir = Path(tempfile.mkdtemp(prefix="comms-pgw-"))
                try:
                    run = one_run(
                        server,
                        workdir,
                        workers=workers,
                        recipients=args.recipients,
                        latency=(low, high),
                        lease=args.lease,
                        kill=False,
                    )
                finally:
                    cleanup(workdir)
                base = base or run.seconds
                print(
                    f"  {workers} worker(s): {run.seconds:6.2f} s  {args.recipients / run.seconds:8.0f} recipients/s"
                    f"  x{base / run.seconds:4.2f} vs 1  requests {run.requests}  lost {run.lost}"
                    f"  duplicates {run.duplicates}  states {run.states}"
                )
                print("SUMMARY " + json.dumps({"drill": "throughput", **asdict(run)}))
                ok = ok and run.lost == 0 and run.duplicates == 0
        if args.only in (None, "failover"):
            workdir = Path(tempfile.mkdtemp(prefix="comms-pgw-"))
            try:
                run = one_run(
                    server,
                    workdir,
                    workers=2,
                    recipients=args.recipients,
                    latency=(low, high),
                    lease=args.lease,
                    kill=True,
                )
            finally:
                cleanup(workdir)
            print(
                f"  failover (SIGKILL 1 of 2 at 1/4 of the requests, lease {args.lease:.0f} s): "
                f"survivor settled the dead worker's {run.left_in_flight_by_kill} in-flight deliveries after "
                f"{run.takeover_seconds:.1f} s; all done in {run.seconds:.1f} s; lost {run.lost}; uncertain "
                f"{run.uncertain}; duplicates {run.duplicates} ({run.duplicates_outside_uncertain} outside uncertain)"
            )
            print("SUMMARY " + json.dumps({"drill": "failover", **asdict(run)}))
            ok = ok and run.lost == 0 and run.duplicates_outside_uncertain == 0
            ok = ok and run.takeover_seconds is not None and run.takeover_seconds < 30
        if args.only in (None, "faults"):
            workdir = Path(tempfile.mkdtemp(prefix="comms-pgw-"))
            try:
                run = one_run(
                    server,
                    workdir,
                    workers=2,
                    recipients=args.recipients,
                    latency=(low, high),
                    lease=args.lease,
                    kill=False,
                    faults=args.fault_rate,
                )
            finally:
                cleanup(workdir)
            print(
                f"  faults ({args.fault_rate:.0%} of requests, 2 workers): {run.by_kind}; all done in "
                f"{run.seconds:.1f} s; lost {run.lost}; duplicates {run.duplicates} "
                f"({run.duplicates_outside_uncertain} outside uncertain); requests before a Retry-After they "
                f"were told: {run.same_deliveries_early} for the same deliveries, {run.any_request_early} any"
            )
            print("SUMMARY " + json.dumps({"drill": "faults", **asdict(run)}))
            ok = ok and run.lost == 0 and run.duplicates_outside_uncertain == 0 and run.any_request_early == 0
    finally:
        server.stop()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
