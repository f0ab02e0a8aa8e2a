"""The comms lead's actions, behind login: go / no-go, stage, complete, rollback; open, update, resolve an incident.

Each action is two POSTs with the session's CSRF token: ``/actions/confirm`` shows what will happen
and asks again; ``/actions/do`` (with ``confirmed=yes``) calls the same service as the CLI, with the
name the lead typed recorded as who did it (in the event payload or the incident's history), then
hands the messages to the one sender (``send_queued``, not waiting: a running worker sends them).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from comms.delivery.sender import send_queued
from comms.errors import CommsError, InputError
from comms.plan.models import Trigger
from comms.services.incidents import open_incident, resolve_incident, update_incident
from comms.services.scheduling import apply_event
from comms.store import repository as repo
from comms.web.context import Console

__all__ = ["ACTIONS", "Action", "Fields", "ROUTES", "confirm", "perform"]

log = logging.getLogger(__name__)

Fields = Mapping[str, str]


@dataclass(frozen=True)
class Action:
    """One action: its label, the fields it needs, and what it does (returns a sentence and occurrence ids)."""

    label: str
    fields: tuple[str, ...]
    run: Callable[[Console, Fields, str], tuple[str, list[int]]]


def _event(trigger: Trigger) -> Callable[[Console, Fields, str], tuple[str, list[int]]]:
    def run(console: Console, form: Fields, by: str) -> tuple[str, list[int]]:
        engine = console.services.engine
        cutover = repo.load_cutover(engine, form.get("cutover") or None)
        plan, _ = console.plans.get(cutover.plan_dir)
        stage = _number(form.get("stage"), "stage") if trigger is Trigger.STAGE else None
        outcome = apply_event(
            engine,
            plan,
            cutover_name=cutover.name,
            event=trigger,
            now=console.now(),
            stage=stage,
            reason=form.get("reason") or None,
            by=by,
        )
        where = f" at {outcome.stage} %" if outcome.stage is not None else ""
        return f"Recorded {trigger.value}: cutover {outcome.cutover} is now {outcome.state}{where}.", outcome.fired

    return run


def _open(console: Console, form: Fields, by: str) -> tuple[str, list[int]]:
    components = [c.strip() for c in (form.get("components") or "").split(",") if c.strip()]
    outcome = open_incident(
        console.services.engine,
        console.plans,
        severity=form.get("severity", ""),
        summary=form.get("summary", ""),
        components=components,
        cutover_name=form.get("cutover") or None,
        now=console.now(),
        by=by,
    )
    return f"Incident #{outcome.incident_id} opened.", outcome.occurrences


def _update(console: Console, form: Fields, by: str) -> tuple[str, list[int]]:
    incident_id = _number(form.get("incident"), "incident")
    outcome = update_incident(
        console.services.engine,
        console.plans,
        incident_id,
        status=form.get("status", ""),
        message=form.get("message", ""),
        now=console.now(),
        by=by,
    )
    return f"Incident #{incident_id} updated ({outcome.status}).", outcome.occurrences


def _resolve(console: Console, form: Fields, by: str) -> tuple[str, list[int]]:
    incident_id = _number(form.get("incident"), "incident")
    outcome = resolve_incident(
        console.services.engine, console.plans, incident_id, message=form.get("message", ""), now=console.now(), by=by
    )
    return f"Incident #{incident_id} resolved.", outcome.occurrences


ACTIONS: dict[str, Action] = {
    "go": Action("Go", ("cutover",), _event(Trigger.GO)),
    "no-go": Action("No-go", ("cutover", "reason"), _event(Trigger.NO_GO)),
    "stage": Action("Traffic stage reached", ("cutover", "stage"), _event(Trigger.STAGE)),
    "complete": Action("Complete", ("cutover",), _event(Trigger.COMPLETE)),
    "rollback": Action("Rollback", ("cutover", "reason"), _event(Trigger.ROLLBACK)),
    "incident-open": Action("Open an incident", ("cutover", "severity", "summary", "components"), _open),
    "incident-update": Action("Update an incident", ("incident", "status", "message"), _update),
    "incident-resolve": Action("Resolve an incident", ("incident", "message"), _resolve),
}


def _number(value: str | None, name: str) -> int:
    text = (value or "").strip()
    if not text.isdigit():
        raise InputError(f"{name}: give a whole number")
    return int(text)


async def _checked(request: Request) -> tuple[Console, dict[str, str], Action] | Response:
    console: Console = request.app.state.console
    session = console.require_session(request)
    if isinstance(session, Response):
        return session
    form = {key: str(value) for key, value in (await request.form()).items()}
    if not console.guard.csrf_ok(session.nonce, form.get("csrf", "")):
        return console.render(
            request,
            "message.html.j2",
            status=403,
            title="Form expired",
            text="The form's CSRF token is missing or wrong; reload the page and try again.",
        )
    action = ACTIONS.get(form.get("action", ""))
    if action is None:
        return console.render(
            request, "message.html.j2", status=400, title="Unknown action", text="Choose one of the console's actions."
        )
    return console, form, action


async def confirm(request: Request) -> Response:
    """Show what the action will do and ask once more."""
    checked = await _checked(request)
    if isinstance(checked, Response):
        return checked
    console, form, action = checked
    if not form.get("by", "").strip():
        return console.render(
            request,
            "message.html.j2",
            status=400,
            title="Who is this?",
            text="Type your name: the audit trail records who took each action.",
        )
    values = {name: form.get(name, "") for name in action.fields}
    return console.render(
        request,
        "confirm.html.j2",
        action=action,
        key=form["action"],
        values=values,
        by=form["by"].strip(),
        back=request.headers.get("referer", "/"),
    )


async def perform(request: Request) -> Response:
    """Do the confirmed action through the same service as the CLI; the one sender sends its messages."""
    checked = await _checked(request)
    if isinstance(checked, Response):
        return checked
    console, form, action = checked
    by = form.get("by", "").strip()
    if form.get("confirmed") != "yes" or not by:
        return console.render(
            request,
            "message.html.j2",
            status=400,
            title="Not confirmed",
            text="Nothing was done: confirm the action first.",
        )
    try:
        text = await run_in_threadpool(_perform, console, action, form, f"{by} (console)")
    except CommsError as exc:
        return console.render(
            request,
            "message.html.j2",
            status=409 if exc.exit_code == 2 else 503,
            title=f"{action.label}: not done",
            text=str(exc),
        )
    return console.render(request, "done.html.j2", title=action.label, text=text, cutover=form.get("cutover", ""))


def _perform(console: Console, action: Action, form: Fields, by: str) -> str:
    text, occurrences = action.run(console, form, by)
    log.info("console action %s by %s: %s", action.label, by, text)
    if occurrences:
        services = console.services
        result = send_queued(services.dispatcher, occurrences, ttl=services.settings.lease_seconds, wait=False)
        sender = "this console" if result.sent_by == "this command" else result.sent_by
        text += f" Its {len(occurrences)} message(s) are sent by {sender}."
    return text


ROUTES = [
    Route("/actions/confirm", confirm, methods=["POST"]),
    Route("/actions/do", perform, methods=["POST"]),
]
