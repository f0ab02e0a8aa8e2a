"""One message to N recipients end to end through comms, against the floor of the same HTTP client.

    python bench/dispatch_throughput.py --recipients 100000 [--fake process|thread] [--profile FILE]
        [--latency 150ms | --latency-dist lognormal:150ms:0.3] [--concurrency K]

What is measured (each phase in its own child process, so its peak RSS comes from wait4):

- comms: in a temp copy of the plan whose end-users CSV has N generated rows and whose advance-notice
  (T-48h) goes to end-users by email only, the time from loading the plan (``comms schedule``) through
  ``Dispatcher.run_until_idle`` (``comms run --until-idle``): render once, stream the CSV into the
  delivery table, claim/send/record 1000 recipients per request with the real SendGridChannel and the
  sendgrid SDK, every recipient logged in SQLite.
- floor: the same number of 1000-recipient Mail Send bodies (built beforehand by the same
  ``SendGridChannel.build_request`` from the rendered content comms stored, 50 distinct ones cycled)
  posted in a bare loop with the sendgrid SDK to the same fake, one request in flight (K=1).
- floor at K (with ``--concurrency K``): the same posts from a ThreadPoolExecutor of K threads, one
  ``SendGridAPIClient`` per thread, so K requests are in flight. The comms phase then runs with
  ``COMMS_MAX_IN_FLIGHT=K`` in its environment: a build whose dispatcher reads that setting sends with K
  in flight, an older one ignores it (the report says which, and how many requests the fake saw at once).

``--latency`` / ``--latency-dist`` make the fake wait before every answer (see ``_fake_server.py``), as a
provider across the internet does; each phase meets the same seeded sequence of delays.

The fake is the fast loopback SendGrid (``FakeSendGrid(fast=True)``, counting recipients), by default in
its own process (``--fake process``); ``--fake thread`` runs it on a thread inside each measured process,
where it competes with the measured code for the GIL.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
from _fake_server import Latency  # noqa: E402

TARGET_RATIO_K = 1.3
"""Issue 13: comms against the bare SDK with the same K requests in flight."""
TARGET_RATIO = 1.5
TARGET_RSS_MB = 256
POOL = 50


def _start_thread_fake(args: argparse.Namespace) -> tuple[object, str]:
    from _fake_server import BenchSendGrid

    fake = BenchSendGrid(Latency.from_args(args)).start()
    return fake, fake.url


def _stats(fake: object | None, url: str) -> dict[str, object]:
    if fake is not None:
        return fake.stats()  # type: ignore[attr-defined,no-any-return]
    return _common.fake_stats(url)


# -- phase: comms ------------------------------------------------------------------------------------


def _cpu_seconds() -> float:
    """User and system CPU time of this process so far, all threads."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def phase_comms(args: argparse.Namespace) -> None:
    began = time.perf_counter()
    from fakes.sendgrid import API_KEY

    from comms.bootstrap import WORKER_BUSY_TIMEOUT_S, bootstrap
    from comms.plan.loader import load_plan
    from comms.services.scheduling import schedule_cutover
    from comms.settings import Settings

    import_s = time.perf_counter() - began
    os.environ["COMMS_CACHE_DIR"] = str(Path(args.db).parent / "template-cache")  # a cold cache, not ~/.cache
    fake, url = _start_thread_fake(args) if args.fake == "thread" else (None, args.url)
    settings = Settings(
        database_url=f"sqlite:///{args.db}",
        outbox_dir=Path(args.db).parent / "outbox",
        sendgrid_api_key=API_KEY,
        sendgrid_host=url,
        email_from=_common.EMAIL_FROM,
    )
    profiler = None
    if args.profile:
        try:
            from pyinstrument import Profiler
        except ImportError:
            raise SystemExit("--profile needs pyinstrument: pip install pyinstrument") from None

        profiler = Profiler(interval=0.005)
        profiler.start()
    t0 = time.perf_counter()
    plan = load_plan(Path(args.plan))
    services = bootstrap(settings, busy_timeout=WORKER_BUSY_TIMEOUT_S)  # as `comms run` opens it
    schedule_cutover(services.engine, plan, start=_common.due_now_start(), now=services.clock())
    t_scheduled = time.perf_counter()
    wall_scheduled = time.time()
    cpu_scheduled = _cpu_seconds()
    report = services.dispatcher.run_until_idle()
    t_done = time.perf_counter()
    if profiler is not None:
        profiler.stop()
        Path(args.profile).write_text(profiler.output_text(unicode=False, color=False, show_all=True))
    stats = _stats(fake, url)
    with sqlite3.connect(args.db) as db:
        states = dict(db.execute("SELECT state, count(*) FROM delivery GROUP BY state").fetchall())
        attempts = db.execute("SELECT count(*) FROM attempt").fetchone()[0]
    first_at = stats.get("first_at")
    result = {
        "import_s": import_s,
        "schedule_s": t_scheduled - t0,
        "first_request_s": (float(first_at) - wall_scheduled) if first_at else None,  # type: ignore[arg-type]
        "run_s": t_done - t_scheduled,
        "run_cpu_s": _cpu_seconds() - cpu_scheduled,
        "total_s": t_done - t0,
        "requests": report.requests,
        "sent": report.sent,
        "rows": states,
        "attempts": attempts,
        "in_flight_setting": getattr(settings, "max_in_flight", None),
        "fake": stats,
        "db_bytes": sum(p.stat().st_size for p in Path(args.db).parent.glob(Path(args.db).name + "*")),
    }
    if fake is not None:
        fake.stop()  # type: ignore[attr-defined]
    print(json.dumps(result))


# -- phase: floor ------------------------------------------------------------------------------------


def phase_floor(args: argparse.Namespace) -> None:
    from datetime import timedelta

    from fakes.sendgrid import API_KEY
    from sendgrid import SendGridAPIClient

    from comms.channels.base import Envelope, MaintenanceWindow, Recipient
    from comms.channels.sendgrid import SendGridChannel
    from comms.core.content import content_from_json
    from comms.delivery.materialize import delivery_key
    from comms.settings import Settings

    fake, url = _start_thread_fake(args) if args.fake == "thread" else (None, args.url)
    settings = Settings(
        database_url=f"sqlite:///{args.db}", sendgrid_api_key=API_KEY, sendgrid_host=url, email_from=_common.EMAIL_FROM
    )
    with sqlite3.connect(args.db) as db:
        body_json = db.execute(
            "SELECT body_json FROM content WHERE audience = 'end-users' AND channel = 'email'"
        ).fetchone()[0]
    content = content_from_json(body_json)
    start = _common.due_now_start()
    window = MaintenanceWindow(
        uid="firestore-to-supabase@comms",
        title="Maintenance: Firestore to Supabase migration",
        description="bench",
        start=start,
        end=start + timedelta(hours=12),
    )
    channel = SendGridChannel(settings)
    requests = -(-args.recipients // 1000)
    pool = []
    for i in range(min(POOL, requests)):
        lo, hi = i * 1000, min((i + 1) * 1000, args.recipients)
        recipients = tuple(
            Recipient(
                _common.address(n),
                delivery_key("firestore-to-supabase", "advance-notice", "end-users", "email", _common.address(n)),
                f"User {n}",
            )
            for n in range(lo, hi)
        )
        envelope = Envelope(
            cutover="firestore-to-supabase",
            message="advance-notice",
            occurrence="advance-notice",
            audience="end-users",
            content=content,
            recipients=recipients,
            calendar=window,
        )
        pool.append(channel.build_request(envelope))
    if args.floor_k > 1:
        elapsed = _post_concurrently(pool, requests, k=args.floor_k, url=url, api_key=API_KEY)
    else:
        client = SendGridAPIClient(API_KEY, host=url)
        t0 = time.perf_counter()
        for i in range(requests):
            response = client.client.mail.send.post(request_body=pool[i % len(pool)], timeout=30)
            if response.status_code != 202:
                raise SystemExit(f"floor request {i} answered {response.status_code}")
        elapsed = time.perf_counter() - t0
    stats = _stats(fake, url)
    if fake is not None:
        fake.stop()  # type: ignore[attr-defined]
    print(json.dumps({"floor_s": elapsed, "requests": requests, "k": args.floor_k, "fake": stats}))


def _post_concurrently(pool: list[dict[str, object]], requests: int, *, k: int, url: str, api_key: str) -> float:
    """Post ``requests`` bodies from K threads, one SendGridAPIClient each; the wall time of all of them."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from sendgrid import SendGridAPIClient

    local = threading.local()

    def make_client() -> None:
        local.client = SendGridAPIClient(api_key, host=url)

    def post(i: int) -> None:
        response = local.client.client.mail.send.post(request_body=pool[i % len(pool)], timeout=30)
        if response.status_code != 202:
            raise SystemExit(f"floor request {i} answered {response.status_code}")

    with ThreadPoolExecutor(max_workers=k, initializer=make_client) as executor:
        t0 = time.perf_counter()
        for future in [executor.submit(post, i) for i in range(requests)]:
            future.result()
        return time.perf_counter() - t0


# -- phase: the SQLite floor -------------------------------------------------------------------------


def phase_dbfloor(args: argparse.Namespace) -> None:
    """The least SQLite work the lean ledger needs, in raw sqlite3 against the comms schema.

    The same rows as materialize writes (a batch row per 1000 recipients, the recipients by executemany,
    the same indexes and pragmas, because the schema comes from ``make_engine``), then per batch: claim it
    and read its recipients + commit, mark it sent + commit. No HTTP, no JSON, no ORM, no CSV.
    """
    from comms.store.engine import make_engine

    db = Path(args.db).with_name("dbfloor.db")
    make_engine(f"sqlite:///{db}").dispose()
    connection = sqlite3.connect(db, isolation_level=None)
    for pragma in ("journal_mode=WAL", "foreign_keys=ON", "synchronous=NORMAL", "busy_timeout=30000"):
        connection.execute(f"PRAGMA {pragma}")
    stamp = "2026-12-03 21:59:00.000000"
    connection.execute("BEGIN")
    connection.execute(
        "INSERT INTO cutover (id, name, plan_dir, start, state, created_at, updated_at) "
        "VALUES (1, 'c', '.', ?, 'planned', ?, ?)",
        (stamp, stamp, stamp),
    )
    connection.execute(
        "INSERT INTO occurrence (id, cutover_id, key, message, trigger, due_at, max_lateness_seconds, hold_until_go, "
        "audiences_csv, channels_csv, state, materialized, created_at) "
        "VALUES (1, 1, 'advance-notice', 'advance-notice', 'time', ?, 21600, 0, 'end-users', 'email', 'dispatching', 1, ?)",
        (stamp, stamp),
    )
    connection.execute(
        "INSERT INTO content (id, occurrence_id, audience, channel, body_json, sha256) VALUES (1, 1, 'end-users', 'email', '{}', '')"
    )
    connection.execute("COMMIT")
    t0 = time.perf_counter()
    new_batch = (
        "INSERT INTO delivery_batch (cutover_id, occurrence_id, content_id, audience, channel, state, size, attempts, "
        "updated_at) VALUES (1, 1, 1, 'end-users', 'email', 'pending', ?, 0, ?) RETURNING id"
    )
    insert = (
        "INSERT INTO recipient (batch_id, idempotency_key, recipient, recipient_name, attempts) VALUES (?, ?, ?, ?, 0)"
    )
    connection.execute("BEGIN")
    for start in range(0, args.recipients, 5000):
        for lo in range(start, min(start + 5000, args.recipients), 1000):
            hi = min(lo + 1000, args.recipients)
            (batch_id,) = connection.execute(new_batch, (hi - lo, stamp)).fetchone()
            rows = [
                (
                    batch_id,
                    f"firestore-to-supabase|advance-notice|end-users|email|{_common.address(n)}",
                    _common.address(n),
                    f"User {n}",
                )
                for n in range(lo, hi)
            ]
            connection.executemany(insert, rows)
    connection.execute("COMMIT")
    t_insert = time.perf_counter()
    batches = 0
    while True:
        connection.execute("BEGIN")
        claimed = connection.execute(
            "UPDATE delivery_batch SET state = 'in_flight', claim = 'token', attempts = attempts + 1, updated_at = ? "
            "WHERE id = (SELECT id FROM delivery_batch WHERE occurrence_id = 1 AND audience = 'end-users' "
            "AND channel = 'email' AND state = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= ?) "
            "ORDER BY next_attempt_at, id LIMIT 1) RETURNING id",
            (stamp, stamp),
        ).fetchone()
        if claimed is None:
            connection.execute("COMMIT")
            break
        list(
            connection.execute(
                "SELECT id, recipient, recipient_name, idempotency_key FROM recipient WHERE batch_id = ? "
                "AND state IS NULL ORDER BY id",
                claimed,
            )
        )
        connection.execute("COMMIT")
        connection.execute("BEGIN")
        connection.execute(
            "UPDATE delivery_batch SET state = 'sent', provider_id = 'x', sent_at = ?, claim = NULL, last_error = NULL, "
            "updated_at = ? WHERE claim = 'token'",
            (stamp, stamp),
        )
        connection.execute("COMMIT")
        batches += 1
    t_done = time.perf_counter()
    connection.close()
    print(
        json.dumps(
            {
                "insert_s": t_insert - t0,
                "claim_and_record_s": t_done - t_insert,
                "total_s": t_done - t0,
                "batches": batches,
            }
        )
    )


# -- orchestration -----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--fake", choices=["process", "thread"], default="process")
    parser.add_argument("--profile", help="write a pyinstrument profile of the comms phase to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (plan, database)")
    parser.add_argument("--no-db-floor", action="store_true", help="skip the raw-sqlite3 logging floor")
    parser.add_argument(
        "--shuffled", action="store_true", help="the CSV's rows in a random order, not sorted by address"
    )
    parser.add_argument(
        "--no-sequential-floor",
        action="store_true",
        help="with --concurrency: skip the one-in-flight SDK floor (minutes at a high latency); compare at K only",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        metavar="K",
        help="also time the bare SDK with K requests in flight, and run comms with COMMS_MAX_IN_FLIGHT=K",
    )
    Latency.add_arguments(parser)
    parser.add_argument("--floor-k", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--phase", choices=["comms", "floor", "dbfloor"], help=argparse.SUPPRESS)
    parser.add_argument("--plan", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase == "comms":
        phase_comms(args)
        return 0
    if args.phase == "floor":
        phase_floor(args)
        return 0
    if args.phase == "dbfloor":
        phase_dbfloor(args)
        return 0

    n = args.recipients
    k = args.concurrency
    if k is not None and k < 1:
        parser.error("--concurrency must be at least 1")
    latency = Latency.from_args(args)
    _common.print_machine()
    print(f"dispatch throughput: {n:,} recipients, fake in a {args.fake}, latency {latency.describe()}")
    tmp = Path(tempfile.mkdtemp(prefix="comms-bench-"))
    t = time.perf_counter()
    plan = _common.make_plan(tmp, n, shuffled=args.shuffled)
    print(f"  generated the plan copy and a {n:,}-row CSV in {time.perf_counter() - t:.1f} s ({tmp})")
    db = tmp / "comms.db"
    fake = _common.FakeProcess.start(extra_args=latency.argv()) if args.fake == "process" else None
    url = fake.url if fake else ""
    me = [sys.executable, str(Path(__file__).resolve())]
    common = ["--plan", str(plan), "--db", str(db), "--url", url, "--fake", args.fake, "--recipients", str(n)]
    common += latency.argv()
    comms_env = {**os.environ, "COMMS_MAX_IN_FLIGHT": str(k)} if k is not None else None
    floor_k = None
    try:
        rc, out, comms_rss, comms_wall = _common.run_child(
            [*me, "--phase", "comms", *common, *(["--profile", args.profile] if args.profile else [])], env=comms_env
        )
        if rc != 0:
            print(f"comms phase failed (exit {rc})")
            return 1
        measured = _common.last_json_line(out)
        if fake:
            fake.reset()
        floor, floor_rss = None, 0
        if not (args.no_sequential_floor and k is not None and k > 1):
            rc, out, floor_rss, _ = _common.run_child([*me, "--phase", "floor", *common])
            if rc != 0:
                print(f"floor phase failed (exit {rc})")
                return 1
            floor = _common.last_json_line(out)
        if k is not None and k > 1:
            if fake:
                fake.reset()
            rc, out, _, _ = _common.run_child([*me, "--phase", "floor", *common, "--floor-k", str(k)])
            if rc != 0:
                print(f"floor phase at K={k} failed (exit {rc})")
                return 1
            floor_k = _common.last_json_line(out)
        dbfloor = None
        if not args.no_db_floor:
            rc, out, _, _ = _common.run_child([*me, "--phase", "dbfloor", *common])
            dbfloor = _common.last_json_line(out) if rc == 0 else None
    finally:
        fake_rss = fake.stop() if fake else 0
        if not args.keep:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)

    rows = measured["rows"]
    sent = int(rows.get("sent", 0))
    logged = sum(int(v) for v in rows.values())
    received = int(measured["fake"]["recipients"])
    ratio = measured["total_s"] / floor["floor_s"] if floor else None
    rss_mb = comms_rss / 1024
    print()
    print(
        f"  comms end to end   {measured['total_s']:8.2f} s   (schedule {measured['schedule_s']:.2f} s, "
        f"render+materialize to first request {measured['first_request_s'] or 0:.2f} s, "
        f"run_until_idle {measured['run_s']:.2f} s using {measured['run_cpu_s']:.2f} s of CPU; "
        f"imports {measured['import_s']:.2f} s not counted)"
    )
    if floor:
        print(
            f"  floor (bare SDK)   {floor['floor_s']:8.2f} s   ({floor['requests']} posts of pre-built bodies, "
            f"one in flight; the fake saw at most {floor['fake'].get('max_in_flight', '?')} at once)"
        )
    if floor_k is not None:
        versus = f"; {floor['floor_s'] / floor_k['floor_s']:.2f}x the sequential floor" if floor else ""
        print(
            f"  floor at K={k:<3d}     {floor_k['floor_s']:8.2f} s   ({k} threads, one SendGridAPIClient each; the fake "
            f"saw at most {floor_k['fake'].get('max_in_flight', '?')} at once{versus})"
        )
    if dbfloor and floor:
        print(
            f"  SQLite floor       {dbfloor['total_s']:8.2f} s   (raw sqlite3, same schema: insert {dbfloor['insert_s']:.2f} s, "
            f"claim+record {dbfloor['claim_and_record_s']:.2f} s for {dbfloor['batches']} batches)"
        )
        print(
            f"  HTTP+SQLite floor  {floor['floor_s'] + dbfloor['total_s']:8.2f} s   -> ratio of that sum to the HTTP floor "
            f"{(floor['floor_s'] + dbfloor['total_s']) / floor['floor_s']:.2f} (the best a sequential design can reach)"
        )
    if ratio is not None:
        print(
            f"  ratio              {ratio:8.2f}     target <= {TARGET_RATIO}: {'met' if ratio <= TARGET_RATIO else 'MISSED'}"
            " (comms / sequential floor)"
        )
    ratio_k = measured["total_s"] / floor_k["floor_s"] if floor_k is not None else None
    if k is not None:
        setting = measured.get("in_flight_setting")
        honoured = f"this build reads it: {setting}" if setting is not None else "this build has no such setting"
        print(
            f"  comms in flight    COMMS_MAX_IN_FLIGHT={k} passed ({honoured}); the fake saw at most "
            f"{measured['fake'].get('max_in_flight', '?')} comms requests at once"
        )
    if ratio_k is not None:
        verdict = "met" if ratio_k <= TARGET_RATIO_K else "MISSED"
        print(
            f"  ratio at K={k:<3d}     {ratio_k:8.2f}     target <= {TARGET_RATIO_K}: {verdict} (comms / floor at K={k})"
        )
    print(
        f"  requests           {measured['requests']:8d}     (fake accepted {measured['fake']['requests']}, "
        f"{measured['fake']['bytes'] / measured['fake']['requests'] / 1024:.0f} KiB each)"
    )
    print(f"  rows logged        {logged:8d}     ({rows}); attempts rows {measured['attempts']}")
    print(f"  recipients at fake {received:8d}")
    print(
        f"  peak RSS comms     {rss_mb:8.1f} MB  target <= {TARGET_RSS_MB} MB: "
        f"{'met' if rss_mb <= TARGET_RSS_MB else 'MISSED'}  (floor process {floor_rss / 1024:.0f} MB, "
        f"fake process {fake_rss / 1024:.0f} MB, comms child wall {comms_wall:.1f} s)"
    )
    best = floor or floor_k
    assert best is not None
    print(f"  throughput         {n / measured['total_s']:8.0f} recipients/s (floor {n / best['floor_s']:.0f}/s)")
    print(f"  database           {measured['db_bytes'] / 1e6:8.1f} MB")
    summary = {
        "recipients": n,
        "fake": args.fake,
        "comms_s": round(measured["total_s"], 3),
        "floor_s": round(floor["floor_s"], 3) if floor else None,
        "ratio": round(ratio, 3) if ratio is not None else None,
        "requests": measured["requests"],
        "rows_logged": logged,
        "rows_sent": sent,
        "fake_recipients": received,
        "peak_rss_mb": round(rss_mb, 1),
        "sqlite_floor_s": round(dbfloor["total_s"], 3) if dbfloor else None,
        "latency": latency.describe(),
        "concurrency": k,
        "floor_k_s": round(floor_k["floor_s"], 3) if floor_k else None,
        "ratio_k": round(ratio_k, 3) if ratio_k is not None else None,
        "comms_max_in_flight_seen": measured["fake"].get("max_in_flight"),
        "comms_in_flight_setting": measured.get("in_flight_setting"),
    }
    print("SUMMARY " + json.dumps(summary))
    if sent != n or received != n:
        print(f"CORRECTNESS FAILURE: {n} recipients, {sent} rows sent, {received} received by the fake")
        return 1
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    raise SystemExit(main())
