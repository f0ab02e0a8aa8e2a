"""Acknowledging an escalation from its email link: ``GET /ack/{token}`` shows, ``POST`` acknowledges.

The GET never changes anything (mail scanners prefetch links); the POST checks the link's signature
and expiry and the form's CSRF token, claims the link once in the store, then acknowledges exactly
as ``comms incident ack`` does and hands the announcement to the one sender.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from comms.core.ack_tokens import AckClaim, token_digest, verify_ack_token
from comms.delivery.sender import send_queued
from comms.errors import AckLinkError, StateError
from comms.services.incidents import acknowledge_incident, list_incidents
from comms.store import console as console_store
from comms.store.transaction import transaction
from comms.web.context import Console

__all__ = ["AckOutcome", "ROUTES", "ack", "ack_page"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AckOutcome:
    """What a POST did: acknowledged now, or why nothing changed."""

    acknowledged: bool
    text: str


def _console(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


def _claim(console: Console, token: str) -> AckClaim:
    if console.ack_secret is None:
        raise AckLinkError("this console cannot check ack links: COMMS_ACK_SECRET is not set")
    return verify_ack_token(token, secret=console.ack_secret, now=console.now())


async def ack_page(request: Request) -> Response:
    """The incident and an Acknowledge button (a form that POSTs)."""
    console = _console(request)
    token = request.path_params["token"]
    try:
        claim = _claim(console, token)
    except AckLinkError as exc:
        return console.render(request, "message.html.j2", status=403, title="Link not valid", text=str(exc))
    incident = await run_in_threadpool(_incident, console, claim.incident_id)
    used = await run_in_threadpool(_used, console, token)
    return console.render(request, "ack.html.j2", claim=claim, incident=incident, used=used, token=token, outcome=None)


async def ack(request: Request) -> Response:
    """Acknowledge once; a replayed link says so and changes nothing."""
    console = _console(request)
    token = request.path_params["token"]
    try:
        claim = _claim(console, token)
    except AckLinkError as exc:
        return console.render(request, "message.html.j2", status=403, title="Link not valid", text=str(exc))
    form = await request.form()
    if not console.guard.csrf_ok(console.form_nonce(request), str(form.get("csrf", ""))):
        return console.render(
            request,
            "message.html.j2",
            status=403,
            title="Form expired",
            text="Open the link from the email again and press Acknowledge.",
        )
    outcome = await run_in_threadpool(_acknowledge, console, token, claim)
    incident = await run_in_threadpool(_incident, console, claim.incident_id)
    return console.render(
        request, "ack.html.j2", claim=claim, incident=incident, used=True, token=token, outcome=outcome
    )


def _acknowledge(console: Console, token: str, claim: AckClaim) -> AckOutcome:
    services = console.services
    digest = token_digest(token)
    now = console.now()
    if not console_store.claim_ack_token(
        services.engine, digest, incident_id=claim.incident_id, level=claim.level, recipient=claim.recipient, now=now
    ):
        return AckOutcome(False, "This link was already used: the incident is already acknowledged.")
    try:
        outcome = acknowledge_incident(
            services.engine, console.plans, claim.incident_id, by=f"{claim.recipient} (email link)", now=now
        )
    except StateError as exc:
        return AckOutcome(False, f"Nothing changed: {exc}.")
    except Exception:
        console_store.release_ack_token(services.engine, digest)
        raise
    log.info("incident #%s acknowledged from an ack link (level %s)", claim.incident_id, claim.level)
    if outcome.occurrences:
        send_queued(services.dispatcher, outcome.occurrences, ttl=services.settings.lease_seconds, wait=False)
    return AckOutcome(True, f"Thank you: incident #{claim.incident_id} is acknowledged; escalation has stopped.")


def _incident(console: Console, incident_id: int) -> dict[str, Any] | None:
    views = list_incidents(console.services.engine, console.plans, now=console.now())
    return next((view.to_json() for view in views if view.id == incident_id), None)


def _used(console: Console, token: str) -> bool:
    with transaction(console.services.engine) as tx:
        return console_store.ack_token_use(tx, token_digest(token)) is not None


ROUTES = [
    Route("/ack/{token}", ack_page, methods=["GET"]),
    Route("/ack/{token}", ack, methods=["POST"]),
]
