"""A loopback SendGrid v3: POST /v3/mail/send (validated against the spec) and GET /v3/scopes.

Answers like SendGrid: 202 with an empty body, ``X-Message-Id`` and ``X-RateLimit-*`` headers;
errors as ``{"errors": [{"message", "field"}]}``. Beyond the JSON Schema it enforces the documented
limits the schema cannot express: 1000 recipients per request, each address once, no ';' or ','
in names, custom_args under 10,000 bytes, text/plain before text/html, base64 attachments.

``fast=True`` skips parsing and validation and keeps only counters: a benchmark can post a million
recipients through it.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import threading
import time
from typing import Any

from fakes.server import FakeServer, RecordedRequest, Reply
from fakes.specs import errors_of, sendgrid_mail_validator

API_KEY = "SG.fake-sendgrid-key"
DEFAULT_SCOPES = ("mail.send", "mail.batch.create", "scopes.read", "user.profile.read")
RATE_LIMIT = 600
MAX_RECIPIENTS = 1000


def sendgrid_errors(*messages: tuple[str | None, str]) -> dict[str, Any]:
    """SendGrid's error body for (field, message) pairs."""
    return {"errors": [{"field": field, "message": message, "help": None} for field, message in messages]}


class FakeSendGrid(FakeServer):
    """A recording, validating SendGrid; ``scopes`` is what the key may do (drop mail.send to test 403)."""

    name = "sendgrid"

    def __init__(self, *, api_key: str = API_KEY, scopes: tuple[str, ...] = DEFAULT_SCOPES, fast: bool = False) -> None:
        super().__init__()
        self.api_key = api_key
        self.scopes = list(scopes)
        self.fast = fast
        self.accepted: list[dict[str, Any]] = []
        self.accepted_requests = 0
        self.revoke_after: int | None = None
        """After this many accepted requests every request is refused 401 (a key revoked mid-send)."""
        self.refused_addresses: set[str] = set()
        """Addresses answered with a 400 naming their field, as SendGrid does for an address it will not take."""
        self.accepted_recipients = 0
        self._ids = itertools.count(1)
        self._count_lock = threading.Lock()

    # scripting helpers -----------------------------------------------------------------------

    def rate_limit_next(self, count: int = 1, *, reset_at: int) -> None:
        """Answer the next requests 429 with ``X-RateLimit-Reset: reset_at`` (unix seconds)."""
        self.fail_next(
            count,
            status=429,
            body=sendgrid_errors((None, "too many requests")),
            headers={
                "X-RateLimit-Limit": str(RATE_LIMIT),
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(reset_at),
            },
        )

    # serving ---------------------------------------------------------------------------------

    def parse(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> RecordedRequest:
        if self.fast:
            return RecordedRequest(method=method, path=target, query={}, headers=headers, raw=b"")
        return super().parse(method, target, headers, raw)

    def handle(self, request: RecordedRequest) -> Reply:
        if self.fast:
            return self._fast(request)
        self.record(request)
        auth = request.header("authorization")
        if self.revoke_after is not None and self.accepted_requests >= self.revoke_after:
            return Reply(
                401, sendgrid_errors((None, "The provided authorization grant is invalid, expired, or revoked"))
            )
        if auth is None:
            return Reply(401, sendgrid_errors((None, "authorization required")), self._limits())
        if auth != f"Bearer {self.api_key}":
            return Reply(
                401,
                sendgrid_errors((None, "The provided authorization grant is invalid, expired, or revoked")),
                self._limits(),
            )
        if request.method == "GET" and request.path == "/v3/scopes":
            return Reply(200, {"scopes": list(self.scopes)}, self._limits())
        if request.method == "POST" and request.path == "/v3/mail/send":
            return self._mail_send(request)
        return Reply(404, sendgrid_errors((None, f"{request.method} {request.path} not found")), self._limits())

    def _mail_send(self, request: RecordedRequest) -> Reply:
        if "mail.send" not in self.scopes:
            return Reply(403, sendgrid_errors((None, "access forbidden")), self._limits())
        if "json" not in (request.header("content-type") or ""):
            self.violation("mail/send without a JSON content type")
            return Reply(415, sendgrid_errors((None, "Content-Type should be application/json.")), self._limits())
        body = request.body
        if body is None:
            self.violation("mail/send body is not JSON")
            return Reply(400, sendgrid_errors((None, "Bad Request")), self._limits())
        problems = [(path, message) for path, message in errors_of(sendgrid_mail_validator(), body)]
        if not problems:
            problems = _limit_problems(body)
        if problems:
            for path, message in problems:
                self.violation(f"mail/send {path}: {message}")
            return Reply(400, sendgrid_errors(*problems), self._limits())
        refused = [
            (f"personalizations.{index}.to.0.email", "Does not contain a valid address.")
            for index, p in enumerate(body["personalizations"])
            if p.get("to") and p["to"][0]["email"].lower() in self.refused_addresses
        ]
        if refused:  # a valid request SendGrid refuses over some recipients (not a contract violation)
            return Reply(400, sendgrid_errors(*refused), self._limits())
        recipients = sum(
            len(p.get("to", [])) + len(p.get("cc", [])) + len(p.get("bcc", [])) for p in body["personalizations"]
        )
        with self._count_lock:
            self.accepted.append(body)
            self.accepted_requests += 1
            self.accepted_recipients += recipients
            message_id = f"fake-{next(self._ids):06d}-{int(time.time() * 1000) % 10**9:09d}"
        return Reply(202, None, {**self._limits(), "X-Message-Id": message_id})

    def _fast(self, request: RecordedRequest) -> Reply:
        if request.header("authorization") != f"Bearer {self.api_key}":
            return Reply(401, sendgrid_errors((None, "The provided authorization grant is invalid")))
        with self._count_lock:
            self.accepted_requests += 1
            number = next(self._ids)
        return Reply(202, None, {"X-Message-Id": f"fast-{number:08d}"})

    def _limits(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(RATE_LIMIT),
            "X-RateLimit-Remaining": str(RATE_LIMIT - 1),
            "X-RateLimit-Reset": str(int(time.time()) + 60),
        }


def _limit_problems(body: dict[str, Any]) -> list[tuple[str, str]]:
    """SendGrid's documented limits that the JSON Schema does not express."""
    problems: list[tuple[str, str]] = []
    addresses: list[str] = []
    for index, personalization in enumerate(body["personalizations"]):
        for kind in ("to", "cc", "bcc"):
            for person in personalization.get(kind, []):
                addresses.append(person["email"].lower())
                name = person.get("name", "")
                if ";" in name or "," in name:
                    problems.append((f"personalizations.{index}.{kind}.name", "names may not contain ';' or ','"))
        custom = personalization.get("custom_args", {})
        if any(not isinstance(v, str) for v in custom.values()):
            problems.append((f"personalizations.{index}.custom_args", "custom_args values must be strings"))
        if len(json.dumps({**body.get("custom_args", {}), **custom}).encode()) >= 10_000:
            problems.append((f"personalizations.{index}.custom_args", "custom_args must be under 10,000 bytes"))
    if len(addresses) > MAX_RECIPIENTS:
        problems.append(("personalizations", f"The total number of recipients must be no more than {MAX_RECIPIENTS}."))
    if len(set(addresses)) != len(addresses):
        problems.append(("personalizations", "Each email address in the personalization block should be unique."))
    if "template_id" not in body:
        if not body.get("content"):
            problems.append(("content", "Unless a valid template_id is provided, the content parameter is required."))
        has_subject = bool(body.get("subject")) or all(p.get("subject") for p in body["personalizations"])
        if not has_subject:
            problems.append(("subject", "The subject is required."))
    types = [c["type"] for c in body.get("content", [])]
    if "text/plain" in types and types.index("text/plain") != 0:
        problems.append(("content", "If present, text/plain must be first, followed by text/html."))
    for index, attachment in enumerate(body.get("attachments", [])):
        try:
            base64.b64decode(attachment["content"], validate=True)
        except (binascii.Error, ValueError):
            problems.append((f"attachments.{index}.content", "The attachment content must be base64 encoded."))
    return problems
