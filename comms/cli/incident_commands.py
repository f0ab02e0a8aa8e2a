"""Commands for the unplanned: incidents (open, update, ack, resolve, list) and ad-hoc sends."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from comms.cli.app import CutoverOption, JsonOption, app, console, handles_errors, print_json
from comms.cli.sending import NoWaitOption, send_through_sender

if TYPE_CHECKING:  # the services load SQLAlchemy and the SDKs: imported inside the commands
    from collections.abc import Mapping

    from comms.bootstrap import Services
    from comms.channels.base import Channel as ChannelPort
    from comms.delivery.dispatcher import TickReport
    from comms.plan.fields import Channel
    from comms.services.incidents import IncidentOutcome

__all__ = [
    "IncidentId",
    "MessageOption",
    "bootstrap",
    "incident_ack",
    "incident_app",
    "incident_list",
    "incident_open",
    "incident_resolve",
    "incident_update",
    "send",
]


def bootstrap(*, channels: Mapping[Channel, ChannelPort] | None = None) -> Services:
    """Build the services (imported late so the CLI starts fast)."""
    from comms.bootstrap import bootstrap as build

    return build(channels=channels)


incident_app = typer.Typer(
    help="Open, update, acknowledge and resolve incidents; escalation follows schedules/escalation.yaml.",
    no_args_is_help=True,
)
app.add_typer(incident_app, name="incident")

IncidentId = Annotated[int, typer.Argument(help="Incident number (see 'comms incident list').")]
MessageOption = Annotated[str, typer.Option("--message", help="What changed; every audience of the incident reads it.")]


def _sent(report: TickReport) -> str:
    text = f"sent {report.sent} deliveries in {report.requests} requests"
    if report.retrying or report.dead:
        text += f" ({report.retrying} retrying, {report.dead} dead; see 'comms status')"
    return text


def _dispatch(services: Services, outcome: IncidentOutcome, verb: str, *, wait: bool = True) -> None:
    report = send_through_sender(services, outcome.occurrences, wait=wait)
    done = _sent(report) if report is not None else f"{len(outcome.occurrences)} message(s) queued"
    console.print(f"Incident #{outcome.incident_id} {verb} (state {outcome.state}, status {outcome.status}); {done}.")


@incident_app.command("open")
@handles_errors
def incident_open(
    severity: Annotated[str, typer.Option("--severity", help="sev1, sev2 or sev3 (see schedules/escalation.yaml).")],
    summary: Annotated[str, typer.Option("--summary", help="What is wrong, in words every audience understands.")],
    component: Annotated[
        list[str] | None, typer.Option("--component", help="An affected component (repeat the option).")
    ] = None,
    message: Annotated[
        str | None, typer.Option("--message", help="The first update (default: 'We are investigating.').")
    ] = None,
    cutover: CutoverOption = None,
    no_wait: NoWaitOption = False,
) -> None:
    """Open an incident: announce it to the severity's audiences and start its escalation."""
    from comms.services.incidents import open_incident

    services = bootstrap()
    outcome = open_incident(
        services.engine,
        services.dispatcher.plans,
        severity=severity,
        summary=summary,
        components=component or [],
        update=message,
        cutover_name=cutover,
        now=services.clock(),
    )
    _dispatch(services, outcome, "opened", wait=not no_wait)


@incident_app.command("update")
@handles_errors
def incident_update(
    incident_id: IncidentId,
    status: Annotated[str, typer.Option("--status", help="identified or monitoring.")],
    message: MessageOption,
    no_wait: NoWaitOption = False,
) -> None:
    """Post an update to the incident's audiences (threaded in Slack, same status-page incident)."""
    from comms.services.incidents import update_incident

    services = bootstrap()
    outcome = update_incident(
        services.engine, services.dispatcher.plans, incident_id, status=status, message=message, now=services.clock()
    )
    _dispatch(services, outcome, "updated", wait=not no_wait)


@incident_app.command("ack")
@handles_errors
def incident_ack(
    incident_id: IncidentId,
    by: Annotated[str, typer.Option("--by", help="Who takes the incident.")],
    no_wait: NoWaitOption = False,
) -> None:
    """Acknowledge the incident: escalation stops and the acknowledgement is announced."""
    from comms.services.incidents import acknowledge_incident

    services = bootstrap()
    outcome = acknowledge_incident(services.engine, services.dispatcher.plans, incident_id, by=by, now=services.clock())
    _dispatch(services, outcome, "acknowledged", wait=not no_wait)


@incident_app.command("resolve")
@handles_errors
def incident_resolve(incident_id: IncidentId, message: MessageOption, no_wait: NoWaitOption = False) -> None:
    """Resolve the incident: escalation stops, the resolution goes out, the status-page incident closes."""
    from comms.services.incidents import resolve_incident

    services = bootstrap()
    outcome = resolve_incident(
        services.engine, services.dispatcher.plans, incident_id, message=message, now=services.clock()
    )
    _dispatch(services, outcome, "resolved", wait=not no_wait)


@incident_app.command("list")
@handles_errors
def incident_list(cutover: CutoverOption = None, json: JsonOption = False) -> None:
    """List incidents with their state, next escalation and history."""
    from comms.services.incidents import list_incidents

    services = bootstrap(channels={})
    views = list_incidents(services.engine, services.dispatcher.plans, now=services.clock(), cutover_name=cutover)
    if json:
        print_json([view.to_json() for view in views])
        return
    if not views:
        console.print("No incidents.")
        return
    from comms.cli.tables import fitted_table, fixed, short_utc, text

    columns = [
        fixed("#"),
        fixed("sev"),
        text("state / status"),
        text("summary"),
        fixed("opened"),
        text("acked by"),
        fixed("escalates"),
        fixed("steps"),
    ]
    rows = [
        (
            view.id,
            view.severity,
            f"{view.state} / {view.status}",
            view.summary,
            short_utc(view.opened_at),
            view.acked_by,
            short_utc(view.next_escalation_at),
            len(view.history),
        )
        for view in views
    ]
    console.print(fitted_table("Incidents (times in UTC)", columns, rows))


@app.command("send")
@handles_errors
def send(
    template: Annotated[str, typer.Argument(help="The plan message to send, e.g. announcement.")],
    audience: Annotated[list[str], typer.Option("--audience", help="Audience(s): a,b or the option repeated.")],
    channel: Annotated[
        list[str] | None, typer.Option("--channel", help="Channel(s) (default: the message's channels).")
    ] = None,
    var: Annotated[
        list[str] | None, typer.Option("--var", help="A template value NAME=VALUE (repeat); sent as plain text.")
    ] = None,
    cutover: CutoverOption = None,
    no_wait: NoWaitOption = False,
    json: JsonOption = False,
) -> None:
    """Send a message now, outside the timeline, through the same delivery log, retries and idempotency."""
    from comms.services.adhoc import parse_vars, send_adhoc

    variables = parse_vars(var or [])
    services = bootstrap()
    outcome = send_adhoc(
        services.engine,
        services.dispatcher.plans,
        template,
        audiences=audience,
        channels=channel or [],
        variables=variables,
        cutover_name=cutover,
        now=services.clock(),
    )
    report = send_through_sender(services, [outcome.occurrence_id], wait=not no_wait, quiet=json)
    if json:
        counts = {"sent": report.sent, "retrying": report.retrying, "dead": report.dead} if report else {}
        print_json(
            {
                "occurrence": outcome.key,
                "audiences": list(outcome.audiences),
                "channels": [c.value for c in outcome.channels],
                "queued": report is None,
                **counts,
            }
        )
        return
    done = _sent(report) if report is not None else "queued for the worker"
    console.print(
        f"Sent {escape(outcome.key)} to {', '.join(outcome.audiences)} on "
        f"{', '.join(c.value for c in outcome.channels)}: {done}."
    )
