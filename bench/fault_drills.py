"""Fault drills: SIGKILL-and-restart during a 100k dispatch, and a SendGrid failing 20 % of requests.

    python bench/fault_drills.py [--recipients 100000] [--kills 10] [--fault-recipients 100000]
                                 [--only kill|faults|day] [--day-recipients 100000] [--seed 11]

1. Kill drill: the real worker (``python -m comms run --until-idle``) sends the advance notice to
   N end-users (email only) against the loopback SendGrid; it is SIGKILLed at ``--kills`` random
   points and restarted each time, then run to the end and ``comms retry --uncertain``. Counted:
   recipients lost (must be 0), deliveries left in flight by each kill (at most K batches of 1000),
   recipients received twice (only among deliveries flagged uncertain).
2. Fault drill: the real Dispatcher (in-process, real clock, real SendGridChannel with a 2 s client
   timeout, retry base 0.5 s) sends to N recipients while 20 % of requests get, at random: 5xx,
   429 + Retry-After, 429 + X-RateLimit-Reset (1-3 s), a dropped connection, a slow answer
   (0.2-1 s), or an answer after the client's timeout that the fake accepts. Checked: 100 % delivered,
   duplicates (and which fault caused them), and every request's arrival against each Retry-After /
   X-RateLimit-Reset answered before it: for the same deliveries, and for any request (SendGrid's
   rate limit is per account, not per batch).

3. Cutover-day drills (``bench/_day_drills.py``): SIGTERM mid-send (time to stop, nothing left in flight,
   resumed once), a standby worker taking over from a SIGKILLed one (time to take over, lost, duplicated,
   uncertain), ``comms cancel`` and ``comms event rollback`` during a big send (rows sent after it, batches
   started after the rollback was recorded, the rollback notice sent), ``comms incident open`` while the
   worker writes a 1M message's rows (time the command takes), and a CLI (``comms event no-go`` sending
   its notice itself) SIGKILLed mid-send beside a running worker (time until that worker settled its
   claims, uncertain, re-sent none).

Deliveries recorded uncertain are re-sent at the end, as ``comms retry --uncertain`` would.
Exit status 1 on a correctness failure: a lost delivery, a recipient received twice without having
been flagged uncertain, a kill leaving more than K batches in flight, or any request reaching the
fake before a Retry-After / X-RateLimit-Reset it answered earlier allowed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
import _day_drills  # noqa: E402
import _drills  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipients", type=int, default=100_000, help="recipients of the kill drill")
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--fault-recipients", type=int, default=100_000, help="recipients of the fault drill")
    parser.add_argument("--rate", type=float, default=0.2, help="share of requests that get a fault")
    parser.add_argument("--only", choices=["kill", "faults", "day"])
    parser.add_argument("--day-recipients", type=int, default=100_000, help="recipients of the cutover-day drills")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the dispatcher's retry warnings would drown the summary
    _common.print_machine()
    failed = False
    summary: dict[str, object] = {}

    if args.only in (None, "kill"):
        print(f"kill drill: {args.recipients:,} recipients, {args.kills} SIGKILLs of the real worker")
        with tempfile.TemporaryDirectory(prefix="comms-kill-") as tmp:
            kill = _drills.kill_drill(Path(tmp), recipients=args.recipients, kills=args.kills, seed=args.seed)
        print(f"  requests seen by the fake      {kill.requests}")
        print(
            f"  left in flight by each kill    {kill.in_flight_at_kill} "
            f"(at most K batches, {kill.in_flight_limit:,}; those never started go back to pending)"
        )
        print(f"  uncertain after recovery       {kill.uncertain} (re-sent by 'comms retry --uncertain')")
        print(
            f"  uncertain the fake never got   {kill.uncertain_never_left} "
            "(marked started, killed before the request arrived whole)"
        )
        print(f"  lost                           {kill.lost}")
        print(
            f"  received twice                 {kill.duplicates} "
            f"({kill.duplicates_outside_uncertain} outside the uncertain deliveries)"
        )
        print(f"  final delivery states          {kill.final_states}")
        print(f"  drill wall time                {kill.seconds:.1f} s")
        print(f"  verdict                        {'PASS' if kill.ok else 'FAIL'}")
        failed |= not kill.ok
        summary["kill"] = {
            "recipients": kill.recipients,
            "kills": len(kill.in_flight_at_kill),
            "lost": kill.lost,
            "in_flight_max": max(kill.in_flight_at_kill or [0]),
            "uncertain": kill.uncertain,
            "duplicates": kill.duplicates,
            "duplicates_outside_uncertain": kill.duplicates_outside_uncertain,
            "ok": kill.ok,
        }

    if args.only in (None, "faults"):
        faults = _drills.FaultPlan(rate=args.rate, seed=args.seed)
        print(
            f"fault drill: {args.fault_recipients:,} recipients, {args.rate:.0%} of requests faulted "
            f"({', '.join(faults.kinds)})"
        )
        with tempfile.TemporaryDirectory(prefix="comms-faults-") as tmp:
            drill = _drills.fault_drill(Path(tmp), recipients=args.fault_recipients, faults=faults)
        print(f"  requests seen by the fake      {drill.requests}  by answer: {drill.by_kind}")
        print(
            f"  delivered                      {drill.delivered} of {drill.recipients} "
            f"({drill.delivered / drill.recipients:.2%}); lost {drill.lost}"
        )
        print(f"  final delivery states          {drill.final_states}")
        print(
            f"  flagged uncertain              {drill.uncertain} (then re-sent as 'comms retry --uncertain' does, "
            f"{drill.retry_rounds} round(s))"
        )
        print(
            f"  received twice                 {drill.duplicates} ({drill.duplicates_outside_uncertain} outside the "
            f"uncertain ones)  caused by: {drill.duplicates_by_kind or '-'}"
        )
        print(f"  same deliveries re-sent before their Retry-After: {len(drill.same_deliveries_early)}")
        for line in drill.same_deliveries_early[:5]:
            print(f"      {line}")
        print(f"  any request sent inside a 429 window:            {len(drill.any_request_early)}")
        for line in drill.any_request_early[:5]:
            print(f"      {line}")
        print(f"  drill wall time                {drill.seconds:.1f} s")
        checks = {
            "nothing lost": drill.lost == 0 and drill.final_states == {"sent": drill.recipients},
            "no duplicate outside uncertain": drill.duplicates_outside_uncertain == 0,
            "no request before a Retry-After": not drill.any_request_early,
        }
        ok = all(checks.values())
        print(
            f"  verdict                        {'PASS' if ok else 'FAIL'}: "
            + ", ".join(f"{name} {'ok' if passed else 'FAILED'}" for name, passed in checks.items())
        )
        failed |= not ok
        summary["faults"] = {
            "recipients": drill.recipients,
            "requests": drill.requests,
            "lost": drill.lost,
            "delivered_pct": round(100 * drill.delivered / drill.recipients, 3),
            "uncertain": drill.uncertain,
            "duplicates": drill.duplicates,
            "duplicates_outside_uncertain": drill.duplicates_outside_uncertain,
            "duplicates_by_kind": drill.duplicates_by_kind,
            "same_deliveries_early": len(drill.same_deliveries_early),
            "any_request_early": len(drill.any_request_early),
            "ok": ok,
        }
    if args.only in (None, "day"):
        n = args.day_recipients
        print(f"cutover-day drills: {n:,} recipients (1M for the materialization drill)")
        drills = (
            ("sigterm", lambda w: _day_drills.sigterm_drill(w, recipients=n)),
            ("standby", lambda w: _day_drills.standby_drill(w, recipients=n)),
            ("cancel", lambda w: _day_drills.cancel_drill(w, recipients=n)),
            ("rollback", lambda w: _day_drills.rollback_drill(w, recipients=n)),
            ("killed_cli", lambda w: _day_drills.killed_cli_drill(w, recipients=n)),
            ("operator", lambda w: _day_drills.operator_during_materialize_drill(w, recipients=10 * n)),
        )
        for name, run in drills:
            with tempfile.TemporaryDirectory(prefix=f"comms-day-{name}-") as tmp:
                day = run(Path(tmp))
            print(f"  {day.line()}")
            failed |= not day.ok
            summary[f"day_{name}"] = {
                **day.figures,
                "lost": day.lost,
                "ok": day.ok,
                "duplicates_outside_uncertain": day.duplicates_outside_uncertain,
            }
    print("SUMMARY " + json.dumps(summary))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
