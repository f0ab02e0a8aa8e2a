"""What every console route shares: the services, the guard, the page templates, the secrets it checks with."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from comms.bootstrap import Services
from comms.core.times import format_utc, iso_utc
from comms.plan.cache import PlanCache
from comms.web.security import LOGIN_COOKIE, SESSION_SECONDS, ConsoleGuard, Session

__all__ = ["Console", "page_environment"]


@dataclass
class Console:
    """The console's dependencies, kept on ``app.state.console``."""

    services: Services
    guard: ConsoleGuard
    pages: Environment
    ack_secret: bytes | None
    slack_signing_secret: str | None
    sendgrid_webhook: Any
    """sendgrid's EventWebhook verifier (None: COMMS_SENDGRID_WEBHOOK_PUBLIC_KEY is not set)."""

    @property
    def plans(self) -> PlanCache:
        """The plans the dispatcher uses (one cache for the app)."""
        return self.services.dispatcher.plans

    def now(self) -> datetime:
        """The services' clock."""
        return self.services.clock()

    def render(self, request: Request, name: str, *, status: int = 200, **values: Any) -> HTMLResponse:
        """A page from ``comms/web/templates``, with the viewer's session and CSRF token when logged in."""
        session = self.guard.session(request)
        nonce = session.nonce if session else request.cookies.get(LOGIN_COOKIE)
        fresh = None
        if nonce is None:
            fresh = nonce = secrets.token_urlsafe(16)
        html = self.pages.get_template(name).render(
            session=session, csrf=self.guard.csrf_token(nonce), now=self.now(), **values
        )
        response = HTMLResponse(html, status_code=status)
        if fresh is not None:
            self.set_cookie(response, LOGIN_COOKIE, fresh)
        return response

    def form_nonce(self, request: Request) -> str | None:
        """The nonce a form's CSRF token must belong to: the session's, else the pre-login cookie's."""
        session = self.guard.session(request)
        return session.nonce if session else request.cookies.get(LOGIN_COOKIE)

    def set_cookie(self, response: Response, name: str, value: str) -> None:
        """Set an HttpOnly, SameSite=Strict cookie (Secure when the console is served over https)."""
        response.set_cookie(
            name,
            value,
            max_age=SESSION_SECONDS,
            httponly=True,
            samesite="strict",
            secure=self.guard.secure_cookies,
            path="/",
        )

    def require_session(self, request: Request) -> Session | Response:
        """The viewer's session, or a redirect to the login page."""
        session = self.guard.session(request)
        if session is not None:
            return session
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={target}", status_code=303)


def page_environment() -> Environment:
    """The Jinja environment of the console's pages: autoescaped, strict, with time filters."""
    env = Environment(
        loader=PackageLoader("comms.web", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["utc"] = lambda value: format_utc(value) if value else "—"
    env.filters["iso"] = lambda value: iso_utc(value) if value else ""
    return env
