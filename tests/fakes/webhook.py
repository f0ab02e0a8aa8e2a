"""A loopback webhook receiver that does what docs/WEBHOOK.md asks of one.

It verifies ``X-Comms-Signature`` (HMAC-SHA256 of ``"<timestamp>.<raw body>"`` with its own secret)
and the timestamp's replay window, answers a ping with 204, and dedupes deliveries on
``X-Comms-Delivery-Key``: the first is recorded in ``deliveries``, a repeat in ``duplicates``
(answered 200, as a receiver should). Requests it refuses (bad or missing signature, stale
timestamp) are answered 401 and their reasons kept in ``rejected``. ``answer_slowly`` makes it act
on the next deliveries at once but answer them late, as a receiver behind a slow proxy would.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import time
from collections.abc import Callable
from typing import Any

from fakes.server import FakeServer, RecordedRequest, Reply

SECRET = "whsec-fake-receiver-secret-0123456789abcdef"
REPLAY_WINDOW = 300.0
FIELDS = (
    "event",
    "delivery_key",
    "cutover",
    "message",
    "occurrence",
    "audience",
    "due_at",
    "sent_at",
    "subject",
    "text",
)


class FakeWebhookReceiver(FakeServer):
    """A verifying, deduping receiver; ``clock`` gives unix seconds for the replay window."""

    name = "webhook"

    def __init__(
        self, *, secret: str = SECRET, clock: Callable[[], float] = time.time, replay_window: float = REPLAY_WINDOW
    ) -> None:
        super().__init__()
        self.secret = secret.encode("utf-8")
        self.clock = clock
        self.replay_window = replay_window
        self.deliveries: list[dict[str, Any]] = []
        self.duplicates: list[str] = []
        self.pings: list[dict[str, Any]] = []
        self.rejected: list[str] = []
        self._ids = itertools.count(1)
        self._slow: list[float] = []

    def answer_slowly(self, count: int = 1, *, delay: float) -> None:
        """Record the next ``count`` deliveries as they arrive, but answer each ``delay`` seconds later."""
        with self._lock:
            self._slow.extend([delay] * count)

    def url_for(self, path: str = "/hooks/cutover") -> str:
        """A receiver URL on this fake."""
        return f"{self.url}{path}"

    def keys(self) -> list[str]:
        """The delivery keys received and accepted, first copies only."""
        return [d["delivery_key"] for d in self.deliveries]

    def verify(self, request: RecordedRequest) -> str | None:
        """Why the request's signature or timestamp is not acceptable (None: it is)."""
        stamp = request.header("x-comms-timestamp") or ""
        given = request.header("x-comms-signature") or ""
        if not stamp.isdigit():
            return "missing or malformed X-Comms-Timestamp"
        if abs(self.clock() - int(stamp)) > self.replay_window:
            return f"timestamp {stamp} outside the {self.replay_window:.0f} s replay window"
        expected = "sha256=" + hmac.new(self.secret, stamp.encode() + b"." + request.raw, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, given):
            return "signature mismatch"
        return None

    def handle(self, request: RecordedRequest) -> Reply:
        if request.method != "POST":
            self.violation(f"{request.method} {request.path}: deliveries are POSTs")
            return Reply(405)
        self.record(request)
        problem = self.verify(request)
        if problem is not None:
            with self._lock:
                self.rejected.append(problem)
            return Reply(401, {"error": problem})
        if not isinstance(request.body, dict):
            self.violation(f"body is not a JSON object: {request.raw[:80]!r}")
            return Reply(400, {"error": "expected a JSON object"})
        event = request.header("x-comms-event")
        if event != request.body.get("event"):
            self.violation(f"X-Comms-Event {event!r} differs from the body's event {request.body.get('event')!r}")
        if event == "ping":
            with self._lock:
                self.pings.append(request.body)
            return Reply(204)
        reply = self._delivery(request)
        with self._lock:
            delay = self._slow.pop(0) if self._slow else 0.0
        if delay:
            self._stopping.wait(delay)
        return reply

    def _delivery(self, request: RecordedRequest) -> Reply:
        body = request.body
        missing = [name for name in FIELDS if name not in body]
        if missing:
            self.violation(f"delivery lacks {missing}")
            return Reply(400, {"error": f"missing {missing}"})
        key = request.header("x-comms-delivery-key")
        if key != body["delivery_key"]:
            self.violation(f"X-Comms-Delivery-Key {key!r} differs from the body's {body['delivery_key']!r}")
            return Reply(400, {"error": "delivery key mismatch"})
        with self._lock:
            if key in {d["delivery_key"] for d in self.deliveries}:
                self.duplicates.append(key)
                return Reply(200, {"duplicate": True})
            self.deliveries.append(body)
        return Reply(200, {"ok": True}, {"X-Request-Id": f"req-{next(self._ids)}"})
