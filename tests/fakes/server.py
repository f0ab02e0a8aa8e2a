"""A loopback HTTP server base for the vendor fakes: records requests and plays scripted faults.

Each fake subclasses ``FakeServer`` and implements ``handle(request) -> Reply``. The server listens
on 127.0.0.1 on a free port, in a thread; ``fail_next`` scripts the next N requests to answer with
a given status (429, 420, 500...), to answer late (beyond the client's timeout) or to drop the
connection without an answer.
"""

from __future__ import annotations

import json
import socket
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class RecordedRequest:
    """One request as the fake received it: headers with lower-case names, the body parsed."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    raw: bytes
    body: Any = None
    form: bool = False

    def header(self, name: str) -> str | None:
        """A header by case-insensitive name."""
        return self.headers.get(name.lower())


@dataclass
class Reply:
    """What a fake answers: status, headers and a body (bytes, or data sent as JSON)."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode("utf-8")
        return json.dumps(self.body).encode("utf-8")


@dataclass
class Fault:
    """A scripted misbehaviour for one request."""

    reply: Reply | None = None
    delay: float = 0.0
    drop: bool = False


class FakeServer:
    """Base of the vendor fakes; use as a context manager or call start() / stop()."""

    name = "fake"
    default_content_type = "application/json"

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.violations: list[str] = []
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle -----------------------------------------------------------------------------

    def start(self) -> FakeServer:
        """Listen on 127.0.0.1 on a free port, serving from a daemon thread."""
        handler = _handler_for(self)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, name=f"{self.name}-fake", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, release slow answers and close the socket."""
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "start() the fake first"
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """The base URL, ``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    # scripting -----------------------------------------------------------------------------

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
        drop: bool = False,
    ) -> None:
        """Make the next ``count`` requests fail: a status (with body and headers), a delay, or a drop."""
        reply = Reply(status, body, dict(headers or {})) if status is not None else None
        with self._lock:
            for _ in range(count):
                self._faults.append(Fault(reply=reply, delay=delay, drop=drop))

    def _next_fault(self) -> Fault | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def record(self, request: RecordedRequest) -> None:
        """Keep a request for assertions (fakes in a fast mode may skip this)."""
        with self._lock:
            self.requests.append(request)

    def violation(self, message: str) -> None:
        """Note a contract violation (also answered to the client as the vendor would)."""
        with self._lock:
            self.violations.append(message)

    def requests_to(self, path: str, method: str | None = None) -> list[RecordedRequest]:
        """Recorded requests whose path ends with ``path`` (and, if given, with that method)."""
        return [r for r in self.requests if r.path.endswith(path) and (method is None or r.method == method)]

    # to implement --------------------------------------------------------------------------

    def parse(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> RecordedRequest:
        """Turn the raw request into a RecordedRequest (JSON or form bodies)."""
        parts = urlsplit(target)
        request = RecordedRequest(method=method, path=parts.path, query=parse_qs(parts.query), headers=headers, raw=raw)
        content_type = headers.get("content-type", "")
        if raw and "json" in content_type:
            try:
                request.body = json.loads(raw)
            except ValueError:
                request.body = None
        elif raw and "x-www-form-urlencoded" in content_type:
            request.body = {k: v[-1] for k, v in parse_qs(raw.decode("utf-8"), keep_blank_values=True).items()}
            request.form = True
        return request

    def handle(self, request: RecordedRequest) -> Reply:
        raise NotImplementedError


def _handler_for(fake: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = f"{fake.name}-fake/1.0"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence the default log
            return

        def do_GET(self) -> None:  # noqa: N802
            self._serve()

        do_POST = do_PATCH = do_PUT = do_DELETE = do_GET  # noqa: N815

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            fault = fake._next_fault()
            if fault is not None and fault.drop:
                # recorded before the connection drops, so a client that sees the drop finds the request
                fake.record(fake.parse(self.command, self.path, headers, raw))
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            if fault is not None and fault.delay:
                fake._stopping.wait(fault.delay)
            if fault is not None and fault.reply is not None:
                fake.record(fake.parse(self.command, self.path, headers, raw))
                reply = fault.reply
            else:
                try:
                    reply = fake.handle(fake.parse(self.command, self.path, headers, raw))
                except Exception as exc:  # a bug in the fake: answer 500 and keep it visible
                    fake.violation(f"fake crashed on {self.command} {self.path}: {exc!r}")
                    reply = Reply(500, {"error": f"fake crashed: {exc!r}"})
            self._write(reply)

        def _write(self, reply: Reply) -> None:
            data = reply.encoded()
            try:
                self.send_response(reply.status)
                names = {k.lower() for k in reply.headers}
                if "content-type" not in names and data:
                    self.send_header("Content-Type", fake.default_content_type)
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if data:
                    self.wfile.write(data)
            except OSError:
                pass  # the client gave up (timeout) or the fake is stopping

    return Handler
