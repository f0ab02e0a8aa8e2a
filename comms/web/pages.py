"""The console's pages and their JSON twins: health, login, the cutover, incidents."""

from __future__ import annotations

import logging
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from comms.errors import NotFoundError
from comms.services.incidents import list_incidents
from comms.store import console as console_store
from comms.web.context import Console
from comms.web.security import LOGIN_COOKIE, SESSION_COOKIE
from comms.web.views import cutover_names, cutover_view

__all__ = [
    "ROUTES",
    "cutover_json",
    "cutover_page",
    "healthz",
    "incidents_json",
    "incidents_page",
    "index",
    "login",
    "login_page",
    "logout",
]

log = logging.getLogger(__name__)


def _console(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


async def healthz(request: Request) -> Response:
    """200 when the store answers a query, 503 when it does not (no login)."""
    console = _console(request)
    ok = await run_in_threadpool(console_store.store_answers, console.services.engine)
    return PlainTextResponse("ok" if ok else "the database does not answer", status_code=200 if ok else 503)


async def login_page(request: Request) -> Response:
    """The login form."""
    return _console(request).render(
        request, "login.html.j2", next=_safe_next(request.query_params.get("next")), error=None
    )


async def login(request: Request) -> Response:
    """Check the CSRF token and the console token; start a session."""
    console = _console(request)
    form = await request.form()
    target = _safe_next(str(form.get("next", "")))
    if not console.guard.csrf_ok(request.cookies.get(LOGIN_COOKIE), str(form.get("csrf", ""))):
        return console.render(request, "login.html.j2", status=403, next=target, error="The form expired; try again.")
    if not console.guard.token_matches(str(form.get("token", ""))):
        log.warning("console login refused from %s", request.client.host if request.client else "?")
        return console.render(request, "login.html.j2", status=401, next=target, error="That is not the console token.")
    response = RedirectResponse(target, status_code=303)
    console.set_cookie(response, SESSION_COOKIE, console.guard.new_session())
    return response


async def logout(request: Request) -> Response:
    """End the session (a POST with the session's CSRF token)."""
    console = _console(request)
    form = await request.form()
    if not console.guard.csrf_ok(console.form_nonce(request), str(form.get("csrf", ""))):
        return PlainTextResponse("CSRF token missing or wrong", status_code=403)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


async def index(request: Request) -> Response:
    """The cutovers; the only one opens directly."""
    console = _console(request)
    session = console.require_session(request)
    if isinstance(session, Response):
        return session
    names = await run_in_threadpool(cutover_names, console.services.engine)
    if len(names) == 1:
        return RedirectResponse(f"/cutovers/{names[0]}", status_code=303)
    return console.render(request, "index.html.j2", names=names)


async def cutover_page(request: Request) -> Response:
    """A cutover's day: state, T0 and window per zone, the timeline by lane, counts, what is next."""
    console = _console(request)
    session = console.require_session(request)
    if isinstance(session, Response):
        return session
    name = request.path_params["name"]
    try:
        view = await run_in_threadpool(cutover_view, console.services.engine, console.plans, name, now=console.now())
    except NotFoundError as exc:
        return console.render(request, "message.html.j2", status=404, title="Not found", text=str(exc))
    return console.render(request, "cutover.html.j2", view=view, status_json=view.status.to_json())


async def incidents_page(request: Request) -> Response:
    """Open incidents (severity, level reached, who was told when, the ack deadline) and their history."""
    console = _console(request)
    session = console.require_session(request)
    if isinstance(session, Response):
        return session
    views = await run_in_threadpool(_incidents, console, request.query_params.get("cutover"))
    return console.render(request, "incidents.html.j2", incidents=views)


async def cutover_json(request: Request) -> Response:
    """The cutover page as JSON (``Authorization: Bearer <COMMS_CONSOLE_TOKEN>``)."""
    console = _console(request)
    if not console.guard.bearer_ok(request):
        return _unauthorized()
    try:
        view = await run_in_threadpool(
            cutover_view, console.services.engine, console.plans, request.path_params["name"], now=console.now()
        )
    except NotFoundError as exc:
        return JSONResponse({"error": str(exc)}, status_code=404)
    return JSONResponse(view.to_json())


async def incidents_json(request: Request) -> Response:
    """The incidents page as JSON (``Authorization: Bearer <COMMS_CONSOLE_TOKEN>``)."""
    console = _console(request)
    if not console.guard.bearer_ok(request):
        return _unauthorized()
    views = await run_in_threadpool(_incidents, console, request.query_params.get("cutover"))
    return JSONResponse([view for view in views])


def _incidents(console: Console, cutover: str | None) -> list[dict[str, Any]]:
    views = list_incidents(console.services.engine, console.plans, now=console.now(), cutover_name=cutover)
    result = []
    for view in views:
        data = view.to_json()
        levels = [step.level for step in view.history if step.kind == "notified" and step.level]
        data["level_reached"] = max(levels) if levels else None
        result.append(data)
    return result


def _unauthorized() -> Response:
    return JSONResponse(
        {"error": "send Authorization: Bearer <COMMS_CONSOLE_TOKEN>"},
        status_code=401,
        headers={"WWW-Authenticate": "Bearer"},
    )


def _safe_next(value: str | None) -> str:
    """A local path to go to after login (never another site)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


ROUTES = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/login", login_page, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
    Route("/", index, methods=["GET"]),
    Route("/cutovers/{name}", cutover_page, methods=["GET"]),
    Route("/incidents", incidents_page, methods=["GET"]),
    Route("/api/cutovers/{name}", cutover_json, methods=["GET"]),
    Route("/api/incidents", incidents_json, methods=["GET"]),
]
