"""The console's guards: the login session, CSRF tokens, the API's bearer token, the body size limit.

A session is a cookie ``<issued>.<nonce>.<mac>`` signed with a key made when the app starts (a
restart logs everyone out); it is HttpOnly and SameSite=Strict and holds no secret. Every form
carries a CSRF token derived from the session nonce (or, before login, from a nonce cookie), and
every POST that changes something checks it. The console token itself is only ever compared, in
constant time; it never reaches a page, a log or the store.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "BodyLimit",
    "ConsoleGuard",
    "LOGIN_COOKIE",
    "MAX_BODY_BYTES",
    "SESSION_COOKIE",
    "SESSION_SECONDS",
    "Session",
]

SESSION_COOKIE = "comms_session"
LOGIN_COOKIE = "comms_login"
SESSION_SECONDS = 12 * 3600
MAX_BODY_BYTES = 64 * 1024


@dataclass(frozen=True)
class Session:
    """A logged-in viewer: the nonce their CSRF tokens derive from."""

    nonce: str


class ConsoleGuard:
    """Signs and checks sessions and CSRF tokens; checks the console token and bearer headers."""

    def __init__(self, console_token: str, *, key: bytes | None = None, secure_cookies: bool = False) -> None:
        if not console_token:
            raise ValueError("the console needs a login token")
        self._token = console_token.encode("utf-8")
        self._key = key or secrets.token_bytes(32)
        self.secure_cookies = secure_cookies

    def token_matches(self, given: str) -> bool:
        """Whether a typed or sent token is the console token (constant time)."""
        return hmac.compare_digest(given.encode("utf-8"), self._token)

    def bearer_ok(self, request: Request) -> bool:
        """Whether the request carries ``Authorization: Bearer <COMMS_CONSOLE_TOKEN>``."""
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and self.token_matches(value.strip())

    def new_session(self, *, now: float | None = None) -> str:
        """A fresh session cookie value."""
        issued = str(int(now if now is not None else time.time()))
        nonce = secrets.token_urlsafe(16)
        return f"{issued}.{nonce}.{self._mac('session', issued, nonce)}"

    def session(self, request: Request, *, now: float | None = None) -> Session | None:
        """The request's valid, unexpired session, or None."""
        value = request.cookies.get(SESSION_COOKIE, "")
        parts = value.split(".")
        if len(parts) != 3 or not parts[0].isdigit():
            return None
        issued, nonce, mac = parts
        if not hmac.compare_digest(mac, self._mac("session", issued, nonce)):
            return None
        age = (now if now is not None else time.time()) - int(issued)
        if age < 0 or age > SESSION_SECONDS:
            return None
        return Session(nonce)

    def csrf_token(self, nonce: str) -> str:
        """The CSRF token forms of a session (or a login nonce) carry."""
        return self._mac("csrf", nonce)

    def csrf_ok(self, nonce: str | None, given: str) -> bool:
        """Whether a form's CSRF token belongs to the nonce."""
        return bool(nonce) and bool(given) and hmac.compare_digest(given, self.csrf_token(nonce or ""))

    def _mac(self, *parts: str) -> str:
        return hmac.new(self._key, "\x00".join(parts).encode("utf-8"), hashlib.sha256).hexdigest()


class BodyLimit:
    """ASGI middleware: a request body larger than ``limit`` bytes is answered 413, unread by the app."""

    def __init__(self, app: ASGIApp, *, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await _too_large(self.limit, scope, receive, send)
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body.extend(message.get("body", b""))
            more = bool(message.get("more_body"))
            if len(body) > self.limit:
                await _too_large(self.limit, scope, receive, send)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)


async def _too_large(limit: int, scope: Scope, receive: Receive, send: Send) -> None:
    response = PlainTextResponse(f"request body larger than {limit // 1024} KB", status_code=413)
    await response(scope, receive, send)
