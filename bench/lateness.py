"""How late does the real worker send? 500 messages due within one minute, p50 / p99 lateness.

    python bench/lateness.py [--messages 500] [--window 60] [--tick 5]

A temp plan copy is scheduled with T0 a month away (nothing of the plan itself is due), then N
occurrences of the reminder message (executives, email only: 3 recipients, one request each) are
inserted directly into the store, due evenly over ``--window`` seconds starting 10 s from now. The
real worker (``python -m comms run --tick 5``: APScheduler, interval tick plus a date job for the next
due row) runs against the fast loopback SendGrid (own process) on the real clock. Lateness of an
occurrence = its first request's start (the first ``attempt.started_at``, stamped just before the HTTP
call) minus its ``due_at``; the time its deliveries were recorded sent is reported beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402

TARGET_P99_S = 1.0
MESSAGE = "reminder"
AUDIENCE = "executives"
LEAD_S = 10.0


def _parse_ts(value: str) -> datetime:
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--window", type=float, default=60.0, help="seconds over which the messages fall due")
    parser.add_argument("--tick", type=float, default=5.0, help="the worker's --tick (its default is 5 s)")
    parser.add_argument(
        "--big",
        type=int,
        default=0,
        help="also make the advance notice to this many end-users due 1 s before the first small message "
        "(head-of-line blocking: how late do small messages get behind a big dispatch)",
    )
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    from fakes.sendgrid import API_KEY
    from sqlmodel import Session

    from comms.plan.loader import load_plan
    from comms.services.scheduling import schedule_cutover
    from comms.store.engine import make_engine
    from comms.store.tables import OccurrenceRow

    _common.print_machine()
    print(f"lateness: {args.messages} messages due over {args.window:.0f} s, worker tick {args.tick:g} s")
    tmp = Path(tempfile.mkdtemp(prefix="comms-lateness-"))
    plan_dir = _common.make_plan(tmp, max(args.big, 10), email_only=True)
    db = tmp / "comms.db"
    fake = _common.FakeProcess.start()
    env = _common.comms_env(db, tmp / "outbox", fake.url, API_KEY)
    worker: subprocess.Popen[bytes] | None = None
    try:
        engine = make_engine(f"sqlite:///{db}")
        now = datetime.now(UTC)
        schedule_cutover(engine, load_plan(plan_dir), start=now + timedelta(days=30), now=now)
        first_due = now + timedelta(seconds=LEAD_S)
        step = args.window / max(args.messages - 1, 1)
        with Session(engine) as session:
            if args.big:
                session.add(
                    OccurrenceRow(
                        cutover_id=1,
                        key="advance-notice/bench-big",
                        message="advance-notice",
                        trigger="time",
                        due_at=first_due - timedelta(seconds=1),
                        max_lateness_seconds=3600,
                        audiences_csv="end-users",
                        channels_csv="email",
                        created_at=now,
                    )
                )
            for i in range(args.messages):
                session.add(
                    OccurrenceRow(
                        cutover_id=1,
                        key=f"{MESSAGE}/bench-{i:04d}",
                        message=MESSAGE,
                        trigger="time",
                        due_at=first_due + timedelta(seconds=i * step),
                        max_lateness_seconds=3600,
                        audiences_csv=AUDIENCE,
                        channels_csv="email",
                        created_at=now,
                    )
                )
            session.commit()
        engine.dispose()
        worker = subprocess.Popen(
            [sys.executable, "-m", "comms", "run", "--tick", str(args.tick)],
            env=env,
            cwd=tmp,
            stdout=subprocess.DEVNULL,
            stderr=open(tmp / "worker.log", "wb"),  # noqa: SIM115
        )
        deadline = time.monotonic() + LEAD_S + args.window + 60
        keys = f"{MESSAGE}/bench-%"
        while time.monotonic() < deadline:
            time.sleep(0.5)
            with sqlite3.connect(db, timeout=30) as connection:
                open_count = connection.execute(
                    "SELECT count(*) FROM occurrence WHERE key LIKE ? AND state NOT IN ('done', 'missed')", (keys,)
                ).fetchone()[0]
            if open_count == 0:
                break
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        with sqlite3.connect(db) as connection:
            rows = connection.execute(
                """
                SELECT o.key, o.due_at, o.state,
                       (SELECT min(a.started_at) FROM attempt a WHERE a.occurrence_id = o.id),
                       (SELECT max(d.sent_at) FROM delivery d WHERE d.occurrence_id = o.id),
                       (SELECT count(*) FROM delivery d WHERE d.occurrence_id = o.id AND d.state = 'sent'),
                       (SELECT count(*) FROM delivery d WHERE d.occurrence_id = o.id)
                FROM occurrence o WHERE o.key LIKE ? ORDER BY o.due_at
                """,
                (keys,),
            ).fetchall()
            big = connection.execute(
                "SELECT o.due_at, min(a.started_at), max(a.finished_at), o.state FROM occurrence o "
                "JOIN attempt a ON a.occurrence_id = o.id WHERE o.key = 'advance-notice/bench-big'"
            ).fetchone()
        stats = fake.stats()
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
        fake.stop()

    late_start: list[float] = []
    late_sent: list[float] = []
    unsent = 0
    for _key, due, _state, started, sent, sent_count, total in rows:
        if started is None or sent is None or sent_count != total:
            unsent += 1
            continue
        late_start.append((_parse_ts(started) - _parse_ts(due)).total_seconds())
        late_sent.append((_parse_ts(sent) - _parse_ts(due)).total_seconds())
    if not late_start:
        print("no message was sent; see the worker log in", tmp)
        return 1
    p50, p99 = _common.percentile(late_start, 50), _common.percentile(late_start, 99)
    over_1s = sum(1 for v in late_start if v > 1.0)
    print()
    print(f"  messages sent      {len(late_start)} of {len(rows)} ({stats['requests']} requests at the fake)")
    print("  lateness to first request start (attempt.started_at - due_at):")
    print(
        f"    p50 {p50:.3f} s   p90 {_common.percentile(late_start, 90):.3f} s   p99 {p99:.3f} s   "
        f"max {max(late_start):.3f} s   min {min(late_start):.3f} s   over 1 s: {over_1s}"
    )
    print("  lateness to recorded sent (delivery.sent_at - due_at):")
    print(
        f"    p50 {_common.percentile(late_sent, 50):.3f} s   p99 {_common.percentile(late_sent, 99):.3f} s   "
        f"max {max(late_sent):.3f} s"
    )
    if args.big and big and big[1]:
        print(
            f"  big dispatch       {args.big:,} end-users due 1 s before the first small message: first request "
            f"{(_parse_ts(big[1]) - _parse_ts(big[0])).total_seconds():.2f} s after due, last answer "
            f"{(_parse_ts(big[2]) - _parse_ts(big[0])).total_seconds():.2f} s after due ({big[3]})"
        )
    print(f"  target p99 <= {TARGET_P99_S} s: {'met' if p99 <= TARGET_P99_S else 'MISSED'}")
    summary = {
        "messages": len(rows),
        "sent": len(late_start),
        "tick_s": args.tick,
        "big": args.big,
        "p50_s": round(p50, 3),
        "p99_s": round(p99, 3),
        "max_s": round(max(late_start), 3),
        "over_1s": over_1s,
    }
    print("SUMMARY " + json.dumps(summary))
    if args.keep:
        print(f"  kept {tmp}")
    else:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if unsent else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    raise SystemExit(main())
