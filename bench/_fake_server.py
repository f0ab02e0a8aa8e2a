"""The fast SendGrid fake for benchmarks, servable from its own process.

``BenchSendGrid`` is ``FakeSendGrid(fast=True)`` (no JSON parsing, no validation) that also counts the
recipients it accepted (occurrences of ``"delivery_key"`` in the raw body, a byte scan) and the time of
its first and last accepted request, and answers ``GET /_bench/stats`` and ``POST /_bench/reset``.

Run as a script it prints ``URL http://127.0.0.1:PORT`` and serves until its stdin closes, so a bench
can put the fake in another process (it then does not compete with the measured code for the GIL).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fakes.sendgrid import API_KEY, FakeSendGrid  # noqa: E402
from fakes.server import RecordedRequest, Reply  # noqa: E402


class BenchSendGrid(FakeSendGrid):
    """The fast SendGrid fake plus recipient and timing counters and a stats endpoint."""

    name = "sendgrid-bench"

    def __init__(self) -> None:
        super().__init__(api_key=API_KEY, fast=True)
        self._reset_counters()

    def _reset_counters(self) -> None:
        self.accepted_requests = 0
        self.recipients = 0
        self.first_at: float | None = None
        self.last_at: float | None = None
        self.bytes_in = 0

    def parse(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> RecordedRequest:
        request = super().parse(method, target, headers, raw)
        request.body = (raw.count(b'"delivery_key"'), len(raw))
        return request

    def handle(self, request: RecordedRequest) -> Reply:
        if request.path.startswith("/_bench/"):
            return self._control(request)
        reply = super().handle(request)
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
            }

    def _control(self, request: RecordedRequest) -> Reply:
        if request.path == "/_bench/stats":
            return Reply(200, self.stats())
        if request.path == "/_bench/reset" and request.method == "POST":
            with self._count_lock:
                self._reset_counters()
            return Reply(200, {"reset": True})
        return Reply(404, {"error": "unknown bench control path"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", choices=["fast"], default="fast")
    parser.parse_args()
    fake = BenchSendGrid().start()
    sys.stdout.write(f"URL {fake.url}\n")
    sys.stdout.flush()
    try:
        sys.stdin.read()  # serve until the bench closes our stdin (or dies)
    except KeyboardInterrupt:
        pass
    fake.stop()


if __name__ == "__main__":
    main()
