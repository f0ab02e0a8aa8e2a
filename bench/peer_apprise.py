"""The same 10k-recipient email through Apprise's SendGrid plugin (the peer) and through comms.

    python bench/peer_apprise.py [--recipients 10000] [--throttled-sample 100] [--full-throttle]

Both send to the same fast loopback SendGrid fake (own process). Apprise is a bench-only extra
(``pip install -e '.[bench]'``); its SendGrid plugin posts to a fixed ``notify_url``, which this script
(and only this script) points at the fake by patching the plugin class attribute.

- comms: ``bench/dispatch_throughput.py --phase comms`` (schedule, render once, stream the CSV into the
  delivery table, 1000 recipients per request, every recipient logged in SQLite).
- Apprise as shipped: one request per recipient (its plugin builds one personalization per target),
  paced by the plugin's ``request_rate_per_sec = 0.2`` (at most one request per 0.2 s, SendGrid's
  300/min). Timed on ``--throttled-sample`` recipients and extrapolated, or in full with
  ``--full-throttle`` (about 2000 s for 10k).
- Apprise unthrottled: the same with ``request_rate_per_sec = 0`` (patched in this script), its raw speed.

Apprise is given the HTML comms rendered for end-users (its plugin sends one content part) and the
same .ics invitation as an attachment; it records nothing per recipient.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402

TARGET_SPEEDUP = 20.0


def phase_apprise(args: argparse.Namespace) -> None:
    import apprise
    from apprise.plugins.sendgrid import NotifySendGrid
    from fakes.sendgrid import API_KEY

    from comms.core.content import content_from_json

    NotifySendGrid.notify_url = f"{args.url}/v3/mail/send"  # the peer, redirected to the fake (bench only)
    if not args.throttle:
        NotifySendGrid.request_rate_per_sec = 0.0
    with sqlite3.connect(args.db) as db:
        body_json = db.execute(
            "SELECT body_json FROM content WHERE audience = 'end-users' AND channel = 'email'"
        ).fetchone()[0]
    content = content_from_json(body_json)
    ics = Path(args.db).parent / "invite.ics"
    ics.write_bytes(b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//bench//EN\r\nEND:VCALENDAR\r\n" * 20)
    targets = [_common.address(n) for n in range(args.recipients)]
    t0 = time.perf_counter()
    notifier = apprise.Apprise()
    notifier.add(NotifySendGrid(apikey=API_KEY, from_email=_common.EMAIL_FROM, targets=targets))
    attachment = apprise.AppriseAttachment(str(ics))
    ok = notifier.notify(body=content.html, title=content.subject, attach=attachment)  # type: ignore[attr-defined]
    elapsed = time.perf_counter() - t0
    print(
        json.dumps(
            {"seconds": elapsed, "ok": bool(ok), "recipients": args.recipients, "fake": _common.fake_stats(args.url)}
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--throttled-sample", type=int, default=100, help="recipients timed with the 0.2 s pacing")
    parser.add_argument("--full-throttle", action="store_true", help="time Apprise as shipped on every recipient")
    parser.add_argument("--phase", choices=["apprise"], help=argparse.SUPPRESS)
    parser.add_argument("--throttle", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase == "apprise":
        phase_apprise(args)
        return 0

    n = args.recipients
    _common.print_machine()
    try:
        import apprise
    except ImportError:
        print("Apprise is not installed: pip install -e '.[bench]'")
        return 2
    print(
        f"peer: {n:,} recipients, comms vs Apprise {apprise.__version__} SendGrid plugin, fast fake in its own process"
    )
    tmp = Path(tempfile.mkdtemp(prefix="comms-peer-"))
    plan = _common.make_plan(tmp, n)
    db = tmp / "comms.db"
    fake = _common.FakeProcess.start()
    here = Path(__file__).resolve().parent
    try:
        rc, out, comms_rss, _ = _common.run_child(
            [
                sys.executable,
                str(here / "dispatch_throughput.py"),
                "--phase",
                "comms",
                "--plan",
                str(plan),
                "--db",
                str(db),
                "--url",
                fake.url,
                "--fake",
                "process",
                "--recipients",
                str(n),
            ]
        )
        if rc != 0:
            print(f"comms failed (exit {rc})")
            return 1
        comms = _common.last_json_line(out)
        me = [sys.executable, str(Path(__file__).resolve()), "--phase", "apprise", "--db", str(db), "--url", fake.url]
        fake.reset()
        rc, out, free_rss, _ = _common.run_child([*me, "--recipients", str(n)])
        free = _common.last_json_line(out)
        sample_n = n if args.full_throttle else min(args.throttled_sample, n)
        fake.reset()
        rc2, out, _, _ = _common.run_child([*me, "--throttle", "--recipients", str(sample_n)])
        throttled = _common.last_json_line(out)
    finally:
        fake.stop()
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)

    comms_s = comms["total_s"]
    throttled_full = throttled["seconds"] * n / sample_n
    sent_rows = int(comms["rows"].get("sent", 0))
    print()
    print(
        f"  comms                  {comms_s:9.2f} s  {comms['requests']:6d} requests  {sent_rows:,} rows logged  "
        f"peak RSS {comms_rss / 1024:.0f} MB"
    )
    print(
        f"    of which schedule    {comms['schedule_s']:9.2f} s  (load + validate the plan and its templates, store the timeline)"
    )
    print(
        f"    and run_until_idle   {comms['run_s']:9.2f} s  (render, stream the CSV into SQLite, send, record) -> "
        f"Apprise unthrottled / this = {free['seconds'] / comms['run_s']:.1f}x"
    )
    print(
        f"  Apprise unthrottled    {free['seconds']:9.2f} s  {free['fake']['requests']:6d} requests  "
        f"(ok={free['ok']}, peak RSS {free_rss / 1024:.0f} MB)  -> comms is {free['seconds'] / comms_s:.1f}x faster"
    )
    label = "measured" if args.full_throttle else f"{sample_n} timed, x{n / sample_n:.0f}"
    print(
        f"  Apprise as shipped     {throttled_full:9.2f} s  ({label}; 0.2 s pacing)  "
        f"-> comms is {throttled_full / comms_s:.1f}x faster"
    )
    speedup = free["seconds"] / comms_s
    print(
        f"  target comms >= {TARGET_SPEEDUP:.0f}x faster than the peer: "
        f"{'met' if speedup >= TARGET_SPEEDUP else 'MISSED'} against the unthrottled plugin ({speedup:.1f}x), "
        f"{'met' if throttled_full / comms_s >= TARGET_SPEEDUP else 'MISSED'} against it as shipped "
        f"({throttled_full / comms_s:.0f}x)"
    )
    summary = {
        "recipients": n,
        "comms_s": round(comms_s, 3),
        "apprise_unthrottled_s": round(free["seconds"], 3),
        "apprise_shipped_s": round(throttled_full, 1),
        "apprise_shipped_measured": bool(args.full_throttle),
        "speedup_unthrottled": round(speedup, 1),
        "speedup_unthrottled_run_only": round(free["seconds"] / comms["run_s"], 1),
        "speedup_shipped": round(throttled_full / comms_s, 1),
    }
    print("SUMMARY " + json.dumps(summary))
    if sent_rows != n or free["fake"]["requests"] != n or not free["ok"]:
        print("CORRECTNESS FAILURE: a send did not reach every recipient")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
