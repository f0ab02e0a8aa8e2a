"""The console's ASGI app: pages, JSON twins, ack links, behind a body size limit and strict headers."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from comms.bootstrap import Services
from comms.web import acks, actions, pages, sendgrid_events, slack_actions, unsubscribe
from comms.web.context import Console, page_environment
from comms.web.security import MAX_BODY_BYTES, BodyLimit, ConsoleGuard

__all__ = ["StrictHeaders", "create_app"]

_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; frame-ancestors 'none'; form-action 'self'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


class StrictHeaders:
    """ASGI middleware: every answer forbids framing, inline scripts, sniffing, referrers and caching."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + _HEADERS
            await send(message)

        await self.app(scope, receive, with_headers if scope["type"] == "http" else send)


def create_app(
    services: Services,
    *,
    console_token: str,
    ack_secret: str | None = None,
    slack_signing_secret: str | None = None,
    sendgrid_public_key: str | None = None,
    secure_cookies: bool = False,
    body_limit: int = MAX_BODY_BYTES,
) -> Starlette:
    """The console on ``services`` (the worker's store), logging in with ``console_token``."""
    console = Console(
        services=services,
        guard=ConsoleGuard(console_token, secure_cookies=secure_cookies),
        pages=page_environment(),
        ack_secret=ack_secret.encode("utf-8") if ack_secret else None,
        slack_signing_secret=slack_signing_secret,
        sendgrid_webhook=sendgrid_events.event_webhook(sendgrid_public_key) if sendgrid_public_key else None,
    )
    routes = [
        *pages.ROUTES,
        *acks.ROUTES,
        *actions.ROUTES,
        *slack_actions.ROUTES,
        *sendgrid_events.ROUTES,
        *unsubscribe.ROUTES,
        Mount("/static", app=StaticFiles(packages=[("comms.web", "static")]), name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(StrictHeaders), Middleware(BodyLimit, limit=body_limit)],
    )
    app.state.console = console
    return app
