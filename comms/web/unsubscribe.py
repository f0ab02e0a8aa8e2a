"""Unsubscribing from end-user emails: ``GET /unsubscribe/{token}`` asks, ``POST`` unsubscribes (RFC 8058).

The links come from ``comms.core.unsubscribe`` (a token naming the audience and the address, signed with
``COMMS_UNSUBSCRIBE_SECRET``), so the token is the proof of who is asking: no login. The GET never
changes anything (mail scanners prefetch links). The POST must carry ``List-Unsubscribe=One-Click``, as a
mail client's one-click request (RFC 8058 section 3.2) and the page's own button do; it records the
address once, and a replay says so and changes nothing. Later materializations of the audience's emails
record the address ``suppressed`` instead of sending to it.
"""

from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from comms.core.unsubscribe import verify_token
from comms.store.unsubscribes import record_unsubscribe, unsubscribed_at
from comms.web.context import Console

__all__ = ["ROUTES", "unsubscribe", "unsubscribe_page"]

log = logging.getLogger(__name__)

_NOT_VALID = "This unsubscribe link is not valid. Use the link in the latest email, or reply to it."


def _console(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


def _named(console: Console, token: str) -> tuple[str, str] | None:
    """The (audience, address) a valid token names; None for a bad token or a console without the secret."""
    secret = console.services.settings.unsubscribe_secret
    if secret is None:
        return None
    return verify_token(secret.get_secret_value().encode(), token)


async def unsubscribe_page(request: Request) -> Response:
    """Who the link is for, and a button that unsubscribes (a form that POSTs)."""
    console = _console(request)
    token = request.path_params["token"]
    named = _named(console, token)
    if named is None:
        return console.render(request, "message.html.j2", status=400, title="Link not valid", text=_NOT_VALID)
    audience, address = named
    since = await run_in_threadpool(unsubscribed_at, console.services.engine, audience, address)
    return console.render(
        request, "unsubscribe.html.j2", audience=audience, address=address, token=token, since=since, done=False
    )


async def unsubscribe(request: Request) -> Response:
    """Record the unsubscription once (one-click or the page's button)."""
    console = _console(request)
    token = request.path_params["token"]
    named = _named(console, token)
    if named is None:
        return console.render(request, "message.html.j2", status=400, title="Link not valid", text=_NOT_VALID)
    form = await request.form()
    if form.get("List-Unsubscribe") != "One-Click":
        return console.render(
            request,
            "message.html.j2",
            status=400,
            title="Not an unsubscribe request",
            text="The request must carry List-Unsubscribe=One-Click (RFC 8058); use the button on the link's page.",
        )
    audience, address = named
    engine, now = console.services.engine, console.now()
    recorded = await run_in_threadpool(record_unsubscribe, engine, audience, address, now=now)
    if recorded:
        log.info("an address unsubscribed from audience %s through its link", audience)
    since = await run_in_threadpool(unsubscribed_at, engine, audience, address)
    return console.render(
        request, "unsubscribe.html.j2", audience=audience, address=address, token=token, since=since, done=recorded
    )


ROUTES = [
    Route("/unsubscribe/{token}", unsubscribe_page, methods=["GET"]),
    Route("/unsubscribe/{token}", unsubscribe, methods=["POST"]),
]
