"""Fault drills against the real dispatcher: SIGKILL-and-restart, and a misbehaving SendGrid.

Used by ``bench/fault_drills.py`` (full size) and ``tests/e2e/test_fault_drills.py`` (small sizes).

``DrillSendGrid`` is the validating loopback SendGrid fake that, for a chosen share of requests, plays a
fault drawn at random (seeded): a 5xx, a 429 with ``Retry-After``, a 429 with ``X-RateLimit-Reset``, a
dropped connection, a slow answer, or an answer that comes after the client's timeout (and is accepted).
It keeps, per request, the arrival time, what it answered, the earliest time that answer allowed the
next request (for 429s) and the addresses in the body, so a drill can count what each recipient
received and check every request against the Retry-After answered before it.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
from fakes.sendgrid import API_KEY, FakeSendGrid, sendgrid_errors  # noqa: E402
from fakes.server import Fault, RecordedRequest, Reply  # noqa: E402

FAULT_KINDS = ("5xx", "429-retry-after", "429-reset", "drop", "slow", "late")


@dataclass
class Seen:
    """One request as the drill fake saw and answered it."""

    at: float
    kind: str
    addresses: tuple[str, ...]
    not_before: float | None = None
    accepted: bool = False
    status: int | None = None
    message: str = ""
    """The plan message the request carried (its ``custom_args.message``)."""


@dataclass
class FaultPlan:
    """Which faults the drill fake plays: ``rate`` of requests get one of ``kinds`` (seeded)."""

    rate: float = 0.2
    kinds: tuple[str, ...] = FAULT_KINDS
    retry_after: tuple[float, float] = (1.0, 3.0)
    slow: tuple[float, float] = (0.2, 1.0)
    late_after: float = 3.0
    seed: int = 7


IN_FLIGHT_GRACE = 0.2
"""Seconds after a 429 within which other requests arriving were already in flight when it was answered."""


class DrillSendGrid(FakeSendGrid):
    """A SendGrid fake that misbehaves on purpose and records every request with its timing."""

    name = "sendgrid-drill"

    def __init__(self, faults: FaultPlan | None = None, *, validate: bool = False) -> None:
        super().__init__(api_key=API_KEY)
        self.faults = faults or FaultPlan(rate=0.0)
        self.validate = validate
        self.seen: list[Seen] = []
        self._random = random.Random(self.faults.seed)
        self._local = threading.local()
        self._seen_lock = threading.Lock()
        self._delayed = 0

    # which fault the next request gets ------------------------------------------------------------

    def _next_fault(self) -> Fault | None:
        fault = self._choose_fault()
        if fault is not None and fault.delay and not fault.drop:
            with self._seen_lock:
                self._delayed += 1
            self._local.delayed = True
        else:
            self._local.delayed = False
        return fault

    def wait_for_delayed(self, timeout: float = 60.0) -> None:
        """Block until every request held in a delay (slow or late answer) has been answered."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._seen_lock:
                if self._delayed == 0:
                    return
            time.sleep(0.02)

    def _choose_fault(self) -> Fault | None:
        scripted = super()._next_fault()
        if scripted is not None:
            self._local.at = time.time()
            self._local.kind, self._local.not_before = _describe(scripted, self._local.at)
            return scripted
        plan = self.faults
        with self._seen_lock:
            roll = self._random.random()
            kind = self._random.choice(plan.kinds) if roll < plan.rate and plan.kinds else "ok"
            wait = self._random.uniform(*plan.retry_after)
            slow = self._random.uniform(*plan.slow)
            status = self._random.choice((500, 502, 503))
        now = time.time()
        self._local.kind = kind
        self._local.at = now
        self._local.not_before = None
        if kind == "5xx":
            return Fault(reply=Reply(status, sendgrid_errors((None, "internal error (drill)"))))
        if kind == "429-retry-after":
            seconds = max(1, round(wait))
            self._local.not_before = now + seconds
            return Fault(reply=Reply(429, sendgrid_errors((None, "too many requests")), {"Retry-After": str(seconds)}))
        if kind == "429-reset":
            reset = int(now) + max(1, round(wait))
            self._local.not_before = float(reset)
            headers = {"X-RateLimit-Limit": "600", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)}
            return Fault(reply=Reply(429, sendgrid_errors((None, "too many requests")), headers))
        if kind == "drop":
            return Fault(drop=True)
        if kind == "slow":
            return Fault(delay=slow)
        if kind == "late":
            return Fault(delay=plan.late_after)
        return None

    # recording ------------------------------------------------------------------------------------

    def parse(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> RecordedRequest:
        request = RecordedRequest(method=method, path=target, query={}, headers=headers, raw=b"")
        addresses: tuple[str, ...] = ()
        message = ""
        if raw:
            try:
                request.body = json.loads(raw)
                addresses = tuple(
                    p["to"][0]["email"].lower() for p in request.body.get("personalizations", []) if p.get("to")
                )
                message = str((request.body.get("custom_args") or {}).get("message", ""))
            except (ValueError, KeyError, TypeError, AttributeError):
                request.body = None
        kind = getattr(self._local, "kind", "ok")
        entry = Seen(
            at=getattr(self._local, "at", time.time()),
            kind=kind,
            addresses=addresses,
            not_before=getattr(self._local, "not_before", None),
            message=message,
        )
        if kind.startswith("429"):
            entry.status = 429
        elif kind == "5xx":
            entry.status = 500
        request.entry = entry  # type: ignore[attr-defined]
        with self._seen_lock:
            self.seen.append(entry)
        return request

    def _answered(self) -> None:
        if getattr(self._local, "delayed", False):
            self._local.delayed = False
            with self._seen_lock:
                self._delayed -= 1

    def record(self, request: RecordedRequest) -> None:
        """Keep only the summary (``seen``): bodies of 1000 recipients would pile up."""

    def handle(self, request: RecordedRequest) -> Reply:
        try:
            return self._handle(request)
        finally:
            self._answered()

    def _handle(self, request: RecordedRequest) -> Reply:
        entry: Seen = request.entry  # type: ignore[attr-defined]
        if request.header("authorization") != f"Bearer {self.api_key}":
            entry.status = 401
            return Reply(401, sendgrid_errors((None, "bad key")))
        if request.method != "POST" or request.path != "/v3/mail/send":
            return super().handle(request)
        if request.body is None:
            self.violation("mail/send body is not JSON")
            entry.status = 400
            return Reply(400, sendgrid_errors((None, "Bad Request")))
        if self.validate:
            reply = self._mail_send(request)
        else:
            from fakes.sendgrid import _limit_problems

            problems = _limit_problems(request.body)
            for path, message in problems:
                self.violation(f"mail/send {path}: {message}")
            reply = Reply(400, sendgrid_errors(*problems)) if problems else Reply(202, None, {"X-Message-Id": "x"})
        entry.status = reply.status
        if reply.status == 202:
            entry.accepted = True
            with self._count_lock:
                self.accepted_requests += 1
                self.accepted_recipients += len(entry.addresses)
        return reply

    # what the drill checks -------------------------------------------------------------------------

    def received(self, message: str | None = None) -> Counter[str]:
        """How many accepted requests each address was in (of one plan message, or of all)."""
        with self._seen_lock:
            return Counter(a for s in self.seen if s.accepted and message in (None, s.message) for a in s.addresses)

    @property
    def delayed_now(self) -> int:
        """Requests held in a delay right now: arrived, not yet answered (their sender is mid-request)."""
        with self._seen_lock:
            return self._delayed

    def retry_after_violations(self, *, in_flight_grace: float = IN_FLIGHT_GRACE) -> tuple[list[str], list[str]]:
        """(same deliveries re-sent before their Retry-After, any request sent before a Retry-After).

        With K requests in flight, the other K-1 may reach the fake just after a 429 was answered: they
        left before comms read it. Requests of other deliveries arriving within ``in_flight_grace`` of
        the 429 are those, not violations; the same deliveries re-sent early always are.
        """
        with self._seen_lock:
            seen = sorted(self.seen, key=lambda s: s.at)
        same: list[str] = []
        anywhere: list[str] = []
        for index, limited in enumerate(seen):
            if limited.not_before is None:
                continue
            mine = set(limited.addresses)
            for later in seen[index + 1 :]:
                if later.at >= limited.not_before:
                    break
                early = limited.not_before - later.at
                note = f"{limited.kind} at {limited.at:.3f}: a request {early:.3f} s before it allowed"
                again = bool(mine.intersection(later.addresses))
                if again:
                    same.append(note + " re-sent the same deliveries")
                if again or later.at - limited.at >= in_flight_grace:
                    anywhere.append(note)
        return same, anywhere


def _describe(fault: Fault, now: float) -> tuple[str, float | None]:
    """The kind of a fault scripted with ``fail_next`` and, for a 429, the earliest next request it allows."""
    if fault.drop:
        return "drop", None
    reply = fault.reply
    if reply is None:
        return ("late" if fault.delay >= 1.0 else "slow"), None
    if reply.status == 429:
        headers = {k.lower(): v for k, v in reply.headers.items()}
        if "retry-after" in headers:
            return "429-retry-after", now + float(headers["retry-after"])
        if "x-ratelimit-reset" in headers:
            return "429-reset", float(headers["x-ratelimit-reset"])
        return "429", None
    return ("5xx" if reply.status >= 500 else f"{reply.status}"), None


# -- the kill drill -----------------------------------------------------------------------------------


@dataclass
class KillResult:
    recipients: int
    kills: list[str] = field(default_factory=list)
    in_flight_at_kill: list[int] = field(default_factory=list)
    in_flight_limit: int = 8 * 1000
    """K batches of 1000: the most a kill may leave in flight."""
    uncertain: int = 0
    uncertain_never_left: int = 0
    """Uncertain recipients the fake had not received before the retry. Since a batch is marked ``started``
    only once its body is built and its request is about to leave (``Channel.send``'s ``leaving``), these
    are batches killed between that mark and the request arriving whole: at most the batches in flight."""
    lost: int = 0
    duplicates: int = 0
    duplicates_outside_uncertain: int = 0
    requests: int = 0
    final_states: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return (
            self.lost == 0
            and self.duplicates_outside_uncertain == 0
            and all(n <= self.in_flight_limit for n in self.in_flight_at_kill)
            and self.uncertain_never_left <= sum(self.in_flight_at_kill)
            and self.final_states == {"sent": self.recipients}
        )


def _states(db: Path) -> dict[str, int]:
    """Delivery states of the measured audience (escalation notices to contacts are not counted)."""
    with sqlite3.connect(db, timeout=30) as connection:
        return dict(
            connection.execute(
                "SELECT state, count(*) FROM delivery WHERE audience = 'end-users' GROUP BY state"
            ).fetchall()
        )


def _claims(db: Path) -> dict[str, int]:
    with sqlite3.connect(db, timeout=30) as connection:
        return dict(
            connection.execute(
                "SELECT claim, count(*) FROM delivery WHERE state = 'in_flight' GROUP BY claim"
            ).fetchall()
        )


def _comms(env: dict[str, str], cwd: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "comms", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def kill_drill(
    workdir: Path,
    *,
    recipients: int,
    kills: int,
    seed: int = 11,
    slow_share: float = 0.3,
    log: Any = print,
) -> KillResult:
    """Dispatch one message to ``recipients`` with the real worker, SIGKILLed ``kills`` times at random points.

    Each kill lands either a random 0.3-3 s after the worker started (start-up, recovery, the CSV
    streaming into the store) or when the fake has received a random number of requests, plus 0-50 ms
    (so some land while a request is in flight). A share of the fake's answers is slow (0.05-0.4 s) to
    widen that window. After the last kill the worker runs to the end, then ``comms retry --uncertain``.
    """
    rng = random.Random(seed)
    started = time.monotonic()
    plan = _common.make_plan(workdir, recipients)
    db = workdir / "comms.db"
    result = KillResult(recipients=recipients)
    fake = DrillSendGrid(FaultPlan(rate=slow_share, kinds=("slow",), slow=(0.05, 0.4), seed=seed))
    with fake:
        env = _common.comms_env(db, workdir / "outbox", fake.url, API_KEY)
        start = _common.due_now_start()
        scheduled = _comms(env, workdir, "schedule", "--start", start.isoformat(), "--plan", str(plan))
        if scheduled.returncode != 0:
            raise RuntimeError(scheduled.stderr)
        total_requests = -(-recipients // 1000)
        claimed_before: set[str] = set()
        targets = sorted(rng.randint(1, max(1, total_requests - 2)) for _ in range(kills))
        for number in range(kills):
            worker = subprocess.Popen(
                [sys.executable, "-m", "comms", "run", "--until-idle"],
                env=env,
                cwd=workdir,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            by_time = rng.random() < 0.25
            if by_time:
                delay = rng.uniform(0.3, 3.0)
                deadline = time.monotonic() + delay
                while time.monotonic() < deadline and worker.poll() is None:
                    time.sleep(0.005)
                where = f"kill {number + 1}: {delay:.2f} s after start"
            else:
                target = max(targets[number], fake.accepted_requests + 1)
                limit = time.monotonic() + 300
                while fake.accepted_requests < target and worker.poll() is None and time.monotonic() < limit:
                    time.sleep(0.002)
                extra = rng.uniform(0.0, 0.05)
                time.sleep(extra)
                where = f"kill {number + 1}: at request {fake.accepted_requests} (+{extra * 1000:.0f} ms)"
            if worker.poll() is not None:
                result.kills.append(where + " - the worker had already finished, no kill")
                log(f"    {result.kills[-1]}")
                continue
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=30)
            time.sleep(0.5)  # let the fake finish answering what the dead worker left behind
            states = _states(db) if db.exists() else {}
            claims = _claims(db) if db.exists() else {}
            # only claims this worker made: a worker killed before its recovery ran still shows the last one's
            left = sum(count for claim, count in claims.items() if claim not in claimed_before)
            claimed_before.update(claims)
            result.in_flight_at_kill.append(left)
            result.kills.append(f"{where}; {left} deliveries left in flight by this kill, states {states}")
            log(f"    {result.kills[-1]}")
        final = _comms(env, workdir, "run", "--until-idle")
        if final.returncode != 0:
            raise RuntimeError(final.stderr)
        before_retry = _states(db)
        result.uncertain = int(before_retry.get("uncertain", 0))
        with sqlite3.connect(db) as connection:
            uncertain = {
                r[0].lower()
                for r in connection.execute(
                    "SELECT recipient FROM delivery WHERE state = 'uncertain' AND audience = 'end-users'"
                )
            }
        with fake._seen_lock:
            reached = {a for seen in fake.seen for a in seen.addresses}
        result.uncertain_never_left = len(uncertain - reached)
        if result.uncertain:
            retried = _comms(env, workdir, "retry", "--uncertain")
            if retried.returncode != 0:
                raise RuntimeError(retried.stderr)
        result.final_states = _states(db)
        received = fake.received()
        expected = {_common.address(n) for n in range(recipients)}
        result.lost = len(expected - set(received))
        doubled = {a for a, count in received.items() if count > 1}
        result.duplicates = len(doubled)
        result.duplicates_outside_uncertain = len(doubled - uncertain)
        result.requests = len(fake.seen)
        if fake.violations:
            raise RuntimeError(f"the fake saw contract violations: {fake.violations[:3]}")
    result.seconds = time.monotonic() - started
    return result


# -- the fault drill ----------------------------------------------------------------------------------


@dataclass
class FaultResult:
    recipients: int
    requests: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    delivered: int = 0
    lost: int = 0
    uncertain: int = 0
    retry_rounds: int = 0
    duplicates: int = 0
    duplicates_outside_uncertain: int = 0
    duplicates_by_kind: dict[str, int] = field(default_factory=dict)
    final_states: dict[str, int] = field(default_factory=dict)
    same_deliveries_early: list[str] = field(default_factory=list)
    any_request_early: list[str] = field(default_factory=list)
    seconds: float = 0.0
    report: dict[str, int] = field(default_factory=dict)


def fault_drill(
    workdir: Path,
    *,
    recipients: int,
    faults: FaultPlan,
    client_timeout: float = 2.0,
    retry_base: float = 0.5,
    max_attempts: int = 12,
    prepare: Callable[[DrillSendGrid], None] | None = None,
    max_in_flight: int = 8,
) -> FaultResult:
    """Send one message to ``recipients`` through the real Dispatcher on the real clock while the fake misbehaves.

    In-process (``bootstrap`` with the real SendGridChannel, its timeout shortened to
    ``client_timeout`` so an answer later than that is a timeout) and ``run_until_idle``, which waits
    out every backoff with ``time.sleep``. The retry policy is the settings' (``retry_base`` seconds,
    doubling, ``max_attempts``); a provider's Retry-After / X-RateLimit-Reset, where the channel reads
    it, raises the wait. ``prepare`` may script the fake (``fail_next``) before the send starts. Deliveries
    the dispatcher records uncertain are then re-sent as ``comms retry --uncertain`` would (a person's
    decision), so duplicates among them are expected and counted apart.
    """
    from comms.bootstrap import bootstrap
    from comms.channels.sendgrid import SendGridChannel
    from comms.plan.fields import Channel as ChannelKind
    from comms.plan.loader import load_plan
    from comms.services.scheduling import schedule_cutover
    from comms.settings import Settings
    from comms.store.ledger_repair import retry_deliveries

    started = time.monotonic()
    plan_dir = _common.make_plan(workdir, recipients)
    db = workdir / "comms.db"
    result = FaultResult(recipients=recipients)
    fake = DrillSendGrid(faults)
    with fake:
        settings = Settings(
            database_url=f"sqlite:///{db}",
            outbox_dir=workdir / "outbox",
            sendgrid_api_key=API_KEY,
            sendgrid_host=fake.url,
            email_from=_common.EMAIL_FROM,
            retry_base_seconds=retry_base,
            max_attempts=max_attempts,
            max_in_flight=max_in_flight,
        )
        from comms.channels.factory import build_channels

        channels = build_channels(settings)
        channels[ChannelKind.EMAIL] = SendGridChannel(settings, timeout=client_timeout)
        services = bootstrap(settings, channels=channels)
        schedule_cutover(
            services.engine,
            load_plan(plan_dir, check_templates=False),
            start=_common.due_now_start(),
            now=services.clock(),
        )
        if prepare is not None:
            prepare(fake)
        report = services.dispatcher.run_until_idle()
        fake.wait_for_delayed()  # answers that come after the client's timeout land (and count) before we look
        uncertain: set[str] = set()
        for _round in range(10):  # what `comms retry --uncertain` does, repeated while some stay uncertain
            with sqlite3.connect(db, timeout=30) as connection:
                now_uncertain = {
                    r[0].lower()
                    for r in connection.execute(
                        "SELECT recipient FROM delivery WHERE state = 'uncertain' AND audience = 'end-users'"
                    )
                }
            if not now_uncertain:
                break
            uncertain |= now_uncertain
            result.retry_rounds += 1
            retry_deliveries(services.engine, cutover_id=1, states=["uncertain"], now=services.clock())
            services.dispatcher.run_until_idle()
            fake.wait_for_delayed()
        result.uncertain = len(uncertain)
        services.engine.dispose()
        result.report = {
            "sent": report.sent,
            "retrying": report.retrying,
            "dead": report.dead,
            "requests": report.requests,
        }
        result.final_states = _states(db)
        received = fake.received()
        expected = {_common.address(n) for n in range(recipients)}
        result.delivered = len(expected & set(received))
        result.lost = len(expected - set(received))
        doubled = {a for a, count in received.items() if count > 1}
        result.duplicates = len(doubled)
        result.duplicates_outside_uncertain = len(doubled - uncertain)
        kinds_of: dict[str, list[str]] = {}
        for seen in fake.seen:
            if seen.accepted:
                for a in seen.addresses:
                    kinds_of.setdefault(a, []).append(seen.kind)
        dup_kinds: Counter[str] = Counter()
        for kinds in kinds_of.values():
            if len(kinds) > 1:  # blame the fault behind the extra copy (an answer the client never read)
                faulty = sorted({k for k in kinds if k != "ok"})
                dup_kinds.update(faulty or ["ok"])
        result.duplicates_by_kind = dict(dup_kinds)
        result.requests = len(fake.seen)
        result.by_kind = dict(Counter(s.kind for s in fake.seen))
        result.same_deliveries_early, result.any_request_early = fake.retry_after_violations()
        if fake.violations:
            raise RuntimeError(f"the fake saw contract violations: {fake.violations[:3]}")
    result.seconds = time.monotonic() - started
    return result


def cleanup(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
