"""Commands that run the cutover: schedule, run, event, reschedule, cancel, retry, simulate.

The store and the channels are imported inside the commands, so that `comms --help` and the
plan-only commands start without loading SQLAlchemy or the vendor SDKs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from comms.cli.app import (
    CutoverOption,
    JsonOption,
    PlanOption,
    StartOption,
    TzOption,
    app,
    console,
    handles_errors,
    print_json,
)
from comms.cli.sending import NoWaitOption, send_through_sender
from comms.core.times import iso_utc, parse_start
from comms.errors import InputError
from comms.plan.loader import load_plan
from comms.plan.models import Trigger

if TYPE_CHECKING:
    from comms.bootstrap import Services
    from comms.store.tables import CutoverRow

__all__ = [
    "ByOption",
    "ForceOption",
    "OverrideReasonOption",
    "PlanOverride",
    "ReasonOption",
    "cancel",
    "event_app",
    "event_complete",
    "event_go",
    "event_no_go",
    "event_rollback",
    "event_stage",
    "reschedule",
    "retry",
    "schedule",
    "simulate",
]


def _services(*, quiet: bool = False, worker: bool = False) -> Services:
    """The services; the worker waits longer for another process's write lock than an operator's command."""
    from comms.bootstrap import OPERATOR_BUSY_TIMEOUT_S, WORKER_BUSY_TIMEOUT_S, bootstrap
    from comms.cli.progress import terminal_progress

    services = bootstrap(busy_timeout=WORKER_BUSY_TIMEOUT_S if worker else OPERATOR_BUSY_TIMEOUT_S)
    services.dispatcher.progress = terminal_progress(console, quiet=quiet)
    return services


def _cutover(services: Services, name: str | None) -> CutoverRow:
    from comms.store.repository import load_cutover

    return load_cutover(services.engine, name)


event_app = typer.Typer(help="Record a cutover event and send its messages at once.", no_args_is_help=True)
app.add_typer(event_app, name="event")

ReasonOption = Annotated[str, typer.Option("--reason", help="Why; the audiences read it.")]
ByOption = Annotated[str | None, typer.Option("--by", help="Who decided.")]
ForceOption = Annotated[
    bool, typer.Option("--force", help="Record the event outside its window (needs --reason; audited).")
]
OverrideReasonOption = Annotated[
    str | None, typer.Option("--reason", help="With --force: why the event is recorded outside its window.")
]


@app.command()
@handles_errors
def schedule(
    start: StartOption,
    plan: PlanOption = Path("."),
    tz: TzOption = None,
    name: Annotated[str | None, typer.Option("--name", help="Cutover name (default: the plan's).")] = None,
    metrics_file: Annotated[
        Path | None, typer.Option("--metrics-file", help="YAML/JSON of the migration's KPIs for the T+1 week report.")
    ] = None,
    accept_missed: Annotated[
        bool,
        typer.Option("--accept-missed", help="T0 is so close that some messages are too late: record them missed."),
    ] = False,
    json: JsonOption = False,
) -> None:
    """Validate the plan, compute the timeline for T0 = --start, and store it (a T0 in the past is refused)."""
    from comms.reports.kpis import load_kpis, store_kpis
    from comms.services.scheduling import schedule_cutover

    t0 = parse_start(start, tz=tz)
    loaded = load_plan(plan)
    if metrics_file is not None:
        load_kpis(metrics_file)  # a bad file fails before anything is stored
    services = _services(quiet=json)
    outcome = schedule_cutover(
        services.engine, loaded, start=t0, now=services.clock(), name=name, accept_missed=accept_missed
    )
    if metrics_file is not None:
        store_kpis(services.engine, outcome.cutover, metrics_file, now=services.clock())
    if json:
        print_json(
            {
                "cutover": outcome.cutover,
                "created": outcome.created,
                "start": iso_utc(outcome.start),
                "missed": outcome.missed,
                "occurrences": [
                    {
                        "key": o.key,
                        "message": o.message,
                        "due_at": iso_utc(o.due_at) if o.due_at else None,
                        "trigger": o.trigger.value,
                    }
                    for o in outcome.occurrences
                ],
            }
        )
        return
    verb = "Scheduled" if outcome.created else "Already scheduled (nothing changed):"
    console.print(f"{verb} [bold]{outcome.cutover}[/] for T0 {iso_utc(outcome.start)}")
    table = Table()
    for column in ("occurrence", "due (UTC)", "trigger"):
        table.add_column(column)
    for o in outcome.occurrences:
        table.add_row(o.key, iso_utc(o.due_at) if o.due_at else "-", o.trigger.value)
    console.print(table)
    if outcome.missed:
        console.print(f"Recorded missed (--accept-missed, one escalation): {', '.join(outcome.missed)}")


def _event(trigger: Trigger, cutover: str | None, plan: Path | None, *, wait: bool = True, **kwargs: object) -> None:
    from comms.services.scheduling import apply_event

    services = _services()
    row = _cutover(services, cutover)
    loaded = load_plan(plan or Path(row.plan_dir), check_templates=False)
    outcome = apply_event(services.engine, loaded, cutover_name=row.name, event=trigger, now=services.clock(), **kwargs)  # type: ignore[arg-type]
    console.print(
        f"Recorded {trigger.value}: cutover {outcome.cutover} is now {outcome.state}"
        + (f" at {outcome.stage} %" if outcome.stage is not None else "")
    )
    if outcome.fired:
        report = send_through_sender(services, outcome.fired, wait=wait)
        if report is None:
            console.print(f"Queued its {len(outcome.fired)} message(s); see 'comms status'.")
        else:
            console.print(
                f"Sent its {len(outcome.fired)} message(s): {report.sent} deliveries in {report.requests} "
                f"requests ({report.retrying} retrying, {report.dead} dead); see 'comms status'."
            )


PlanOverride = Annotated[Path | None, typer.Option("--plan", help="Plan folder (default: the scheduled one).")]


@event_app.command("go")
@handles_errors
def event_go(
    cutover: CutoverOption = None,
    by: ByOption = None,
    plan: PlanOverride = None,
    force: ForceOption = False,
    reason: OverrideReasonOption = None,
    no_wait: NoWaitOption = False,
) -> None:
    """Go decision: the cutover proceeds; held T0 messages are released (only inside the plan's go window)."""
    _event(Trigger.GO, cutover, plan, wait=not no_wait, by=by, force=force, reason=reason)


@event_app.command("no-go")
@handles_errors
def event_no_go(
    reason: ReasonOption,
    cutover: CutoverOption = None,
    by: ByOption = None,
    plan: PlanOverride = None,
    no_wait: NoWaitOption = False,
) -> None:
    """No-go: hold the cutover and send the postponement notice."""
    _event(Trigger.NO_GO, cutover, plan, wait=not no_wait, reason=reason, by=by)


@event_app.command("stage")
@handles_errors
def event_stage(
    pct: Annotated[int, typer.Argument(help="Traffic percentage reached (10, 25, 50, 75, 100).")],
    cutover: CutoverOption = None,
    plan: PlanOverride = None,
    force: ForceOption = False,
    reason: OverrideReasonOption = None,
    no_wait: NoWaitOption = False,
) -> None:
    """A traffic-switch stage was reached (only after T0)."""
    _event(Trigger.STAGE, cutover, plan, wait=not no_wait, stage=pct, force=force, reason=reason)


@event_app.command("complete")
@handles_errors
def event_complete(
    cutover: CutoverOption = None,
    plan: PlanOverride = None,
    force: ForceOption = False,
    reason: OverrideReasonOption = None,
    no_wait: NoWaitOption = False,
) -> None:
    """The cutover succeeded (only after T0): messages of the window and before it end, the follow-up starts."""
    _event(Trigger.COMPLETE, cutover, plan, wait=not no_wait, force=force, reason=reason)


@event_app.command("rollback")
@handles_errors
def event_rollback(
    reason: ReasonOption, cutover: CutoverOption = None, plan: PlanOverride = None, no_wait: NoWaitOption = False
) -> None:
    """Rolled back: the success path is cancelled and the rollback notice goes out."""
    _event(Trigger.ROLLBACK, cutover, plan, wait=not no_wait, reason=reason)


@app.command()
@handles_errors
def reschedule(
    start: StartOption,
    reason: ReasonOption,
    tz: TzOption = None,
    cutover: CutoverOption = None,
    plan: PlanOverride = None,
    no_wait: NoWaitOption = False,
) -> None:
    """Move T0: shift every pending message and tell the audiences already told the old time."""
    _event(Trigger.RESCHEDULE, cutover, plan, wait=not no_wait, reason=reason, new_start=parse_start(start, tz=tz))


@app.command()
@handles_errors
def cancel(
    reason: ReasonOption, cutover: CutoverOption = None, plan: PlanOverride = None, no_wait: NoWaitOption = False
) -> None:
    """Cancel the cutover: pending messages are cancelled and a cancellation notice goes out."""
    _event(Trigger.CANCEL, cutover, plan, wait=not no_wait, reason=reason)


@app.command()
@handles_errors
def retry(
    uncertain: Annotated[bool, typer.Option("--uncertain", help="Re-send deliveries whose fate is unknown.")] = False,
    dead: Annotated[bool, typer.Option("--dead", help="Re-send deliveries that gave up.")] = False,
    held: Annotated[
        bool, typer.Option("--held", help="Release deliveries held after a channel-wide refusal (a bad key).")
    ] = False,
    cutover: CutoverOption = None,
    no_wait: NoWaitOption = False,
) -> None:
    """Put uncertain or dead deliveries back in the queue and send them now."""
    states = [name for name, chosen in (("uncertain", uncertain), ("dead", dead)) if chosen]
    if not states and not held:
        raise InputError("retry: choose --uncertain, --dead and/or --held")
    from comms.store.ledger_repair import release_held, retry_deliveries
    from comms.store.sending_queries import occurrences_with_pending

    services = _services()
    row = _cutover(services, cutover)
    assert row.id is not None
    count = retry_deliveries(services.engine, cutover_id=row.id, states=states, now=services.clock()) if states else 0
    if held:
        count += release_held(services.engine, cutover_id=row.id, now=services.clock())
    queued = occurrences_with_pending(services.engine, row.id)
    report = send_through_sender(services, queued, wait=not no_wait)
    if report is None:
        console.print(f"Re-queued {count} deliveries for the worker.")
        return
    console.print(
        f"Re-queued {count} deliveries; sent {report.sent}, {report.dead} dead"
        + (f", {report.retrying} waiting for a retry." if report.retrying else ".")
    )


@app.command()
@handles_errors
def simulate(
    start: StartOption,
    plan: PlanOption = Path("."),
    tz: TzOption = None,
    rollback_at: Annotated[int | None, typer.Option("--rollback-at", help="Roll back at this stage.")] = None,
    outbox: Annotated[Path | None, typer.Option("--outbox", help="Outbox folder (default COMMS_OUTBOX_DIR).")] = None,
    db: Annotated[
        Path | None, typer.Option("--db", help="Rehearsal database file (default: a new temporary one).")
    ] = None,
    json: JsonOption = False,
) -> None:
    """Rehearse the whole plan on a simulated clock into a throwaway database and the outbox."""
    from comms.core.times import format_offset
    from comms.services.simulation import simulate as run_simulation
    from comms.settings import Settings

    t0 = parse_start(start, tz=tz)
    loaded = load_plan(plan)
    if db is not None and db.exists():
        raise InputError(f"--db: {db} already exists; a rehearsal starts from an empty database")
    result = run_simulation(
        loaded,
        start=t0,
        rollback_at=rollback_at,
        outbox_dir=outbox or Settings().outbox_dir,
        database_url=f"sqlite:///{db.resolve()}" if db is not None else None,
    )
    if json:
        print_json(
            {
                "cutover": result.cutover,
                "start": iso_utc(result.start),
                "database_url": result.database_url,
                "outbox": str(result.outbox_dir),
                "events": [{"at": iso_utc(e.at), "event": e.trigger.value, "stage": e.stage} for e in result.events],
                "occurrences": [
                    {
                        "key": line.key,
                        "due_at": iso_utc(line.due_at) if line.due_at else None,
                        "sent_at": iso_utc(line.sent_at) if line.sent_at else None,
                        "state": line.state,
                        "deliveries": line.deliveries,
                    }
                    for line in result.lines
                ],
            }
        )
        return
    from comms.cli.tables import breakable_key, fitted_table, fixed, short_utc, text

    kinds = ["email", "slack", "statuspage"]
    kinds += sorted({kind for line in result.lines for kind in line.deliveries} - set(kinds))  # e.g. webhook
    columns = [fixed("UTC"), fixed("T±"), text("occurrence"), fixed("state")]
    columns += [fixed(k.replace("statuspage", "status page")) for k in kinds]
    rows = []
    for line in result.lines:
        when = line.sent_at or line.due_at
        rows.append(
            (
                short_utc(when),
                format_offset(when - t0) if when else "",
                breakable_key(line.key),
                line.state,
                *(str(line.deliveries.get(kind, "")) for kind in kinds),
            )
        )
    table = fitted_table(f"Rehearsal of {loaded.cutover.title}, T0 {iso_utc(t0)}", columns, rows)
    console.print(table)
    total = sum(sum(line.deliveries.values()) for line in result.lines)
    console.print(
        f"{total} deliveries written to the outbox at {result.outbox_dir}/{result.cutover}/ "
        + (f"(database: {result.database_url})." if result.database_url else "(database not kept; --db FILE keeps it).")
    )
