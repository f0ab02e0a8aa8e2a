"""The fast SendGrid fake for benchmarks, servable from its own process.

``BenchSendGrid`` is ``FakeSendGrid(fast=True)`` (no JSON parsing, no validation) that also counts the
recipients it accepted (occurrences of ``"delivery_key"`` in the raw body, a byte scan) and the time of
its first and last accepted request, and answers ``GET /_bench/stats`` and ``POST /_bench/reset``.

A ``Latency`` makes every Mail Send answer wait, like a real provider far away: fixed (``--latency 150ms``)
or drawn from a seeded distribution (``--latency-dist lognormal:150ms:0.3``: median 150 ms, log-sigma 0.3).
The server is a ``ThreadingHTTPServer`` (``tests/fakes/server.py``): each request is served, and waits, on
its own thread, so concurrent requests overlap. The stats count the most requests seen in flight at once.
A reset reseeds the distribution, so every measured phase meets the same sequence of delays.

Run as a script it prints ``URL http://127.0.0.1:PORT`` and serves until its stdin closes, so a bench
can put the fake in another process (it then does not compete with the measured code for the GIL).
"""

from __future__ import annotations

import argparse
import math
import random
import re
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fakes.sendgrid import API_KEY, FakeSendGrid  # noqa: E402
from fakes.server import RecordedRequest, Reply  # noqa: E402


def parse_duration(text: str) -> float:
    """``150ms``, ``0.15s`` or ``150`` (milliseconds) as seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s)?\s*", text)
    if match is None:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (write 150ms or 0.15s)")
    value = float(match.group(1))
    return value if match.group(2) == "s" else value / 1000


class Latency:
    """How long the fake waits before answering a Mail Send: none, fixed, or lognormal (seeded)."""

    def __init__(self, *, fixed: float = 0.0, median: float = 0.0, sigma: float = 0.0, seed: int = 0) -> None:
        self.fixed, self.median, self.sigma, self.seed = fixed, median, sigma, seed
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Latency:
        """From ``--latency``, ``--latency-dist`` and ``--latency-seed`` (see ``add_arguments``)."""
        if args.latency_dist:
            kind, _, rest = args.latency_dist.partition(":")
            median, _, sigma = rest.partition(":")
            if kind != "lognormal" or not median or not sigma:
                raise SystemExit(f"--latency-dist {args.latency_dist!r}: write lognormal:MEDIAN:SIGMA")
            return cls(median=parse_duration(median), sigma=float(sigma), seed=args.latency_seed)
        return cls(fixed=args.latency or 0.0, seed=args.latency_seed)

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        """The latency options, shared by this script and the benches that start it."""
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--latency", type=parse_duration, help="answer every Mail Send after this delay (150ms)")
        group.add_argument(
            "--latency-dist", help="draw each delay: lognormal:MEDIAN:SIGMA (lognormal:150ms:0.3), seeded"
        )
        parser.add_argument("--latency-seed", type=int, default=1, help="seed of --latency-dist (default 1)")

    def argv(self) -> list[str]:
        """Options that rebuild this latency in another process."""
        if self.sigma:
            return ["--latency-dist", f"lognormal:{self.median}s:{self.sigma}", "--latency-seed", str(self.seed)]
        return ["--latency", f"{self.fixed}s"] if self.fixed else []

    def describe(self) -> str:
        if self.sigma:
            return f"lognormal median {self.median * 1000:.0f} ms, sigma {self.sigma} (seed {self.seed})"
        return f"{self.fixed * 1000:.0f} ms fixed" if self.fixed else "none"

    def reseed(self) -> None:
        with self._lock:
            self._random.seed(self.seed)

    def next_delay(self) -> float:
        if not self.sigma:
            return self.fixed
        with self._lock:
            return self.median * math.exp(self._random.gauss(0.0, self.sigma))


class BenchSendGrid(FakeSendGrid):
    """The fast SendGrid fake plus recipient and timing counters, a latency, and a stats endpoint."""

    name = "sendgrid-bench"

    def __init__(self, latency: Latency | None = None) -> None:
        super().__init__(api_key=API_KEY, fast=True)
        self.latency = latency or Latency()
        self._reset_counters()

    def _reset_counters(self) -> None:
        self.accepted_requests = 0
        self.recipients = 0
        self.first_at: float | None = None
        self.last_at: float | None = None
        self.bytes_in = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.delayed = 0
        self.delay_total = 0.0

    def parse(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> RecordedRequest:
        request = super().parse(method, target, headers, raw)
        request.body = (raw.count(b'"delivery_key"'), len(raw))
        return request

    def handle(self, request: RecordedRequest) -> Reply:
        if request.path.startswith("/_bench/"):
            return self._control(request)
        delay = self.latency.next_delay()
        with self._count_lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.delayed += 1
            self.delay_total += delay
        try:
            if delay:
                self._stopping.wait(delay)  # on this request's own thread: concurrent requests overlap
            reply = super().handle(request)
        finally:
            with self._count_lock:
                self.in_flight -= 1
        if reply.status == 202:
            now = time.time()
            count, size = request.body
            with self._count_lock:
                self.recipients += count
                self.bytes_in += size
                if self.first_at is None:
                    self.first_at = now
                self.last_at = now
        return reply

    def stats(self) -> dict[str, object]:
        with self._count_lock:
            return {
                "requests": self.accepted_requests,
                "recipients": self.recipients,
                "bytes": self.bytes_in,
                "first_at": self.first_at,
                "last_at": self.last_at,
                "max_in_flight": self.max_in_flight,
                "mean_delay_s": self.delay_total / self.delayed if self.delayed else 0.0,
                "latency": self.latency.describe(),
            }

    def _control(self, request: RecordedRequest) -> Reply:
        if request.path == "/_bench/stats":
            return Reply(200, self.stats())
        if request.path == "/_bench/reset" and request.method == "POST":
            with self._count_lock:
                self._reset_counters()
            self.latency.reseed()
            return Reply(200, {"reset": True})
        return Reply(404, {"error": "unknown bench control path"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", choices=["fast"], default="fast")
    Latency.add_arguments(parser)
    fake = BenchSendGrid(Latency.from_args(parser.parse_args())).start()
    sys.stdout.write(f"URL {fake.url}\n")
    sys.stdout.flush()
    try:
        sys.stdin.read()  # serve until the bench closes our stdin (or dies)
    except KeyboardInterrupt:
        pass
    fake.stop()


if __name__ == "__main__":
    main()
