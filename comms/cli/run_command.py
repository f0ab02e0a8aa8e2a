"""``comms run``: the worker under the sender lease, standby by default, stopping cleanly on a signal.

SIGTERM or the first Ctrl-C: say what it is doing, let the requests in flight come back and record
them, and exit 0 (nothing else is claimed: a batch is claimed only as its request leaves). A second
Ctrl-C exits at once and says how many deliveries were in flight and the command that settles them.
"""

from __future__ import annotations

import os
import signal
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from comms.cli.app import app, console, handles_errors
from comms.errors import SenderError

if TYPE_CHECKING:
    from comms.delivery.dispatcher import Dispatcher

__all__ = ["run"]


class _StopSignals:
    """SIGTERM / first SIGINT set the dispatcher's stop flag; a second SIGINT exits at once."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self.signals = 0
        self._previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        for sig in self._previous:
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.signals += 1
        if self.signals == 1 or signum == signal.SIGTERM:
            console.print(
                f"Stopping ({signal.Signals(signum).name}): waiting for the {self.dispatcher.in_flight} "
                "deliveries in flight to come back, then exiting; nothing else is claimed. "
                "Ctrl-C again exits at once."
            )
            self.dispatcher.stop_requested.set()
            return
        console.print(
            f"Exiting now: {self.dispatcher.in_flight} deliveries were in flight. The next 'comms run' settles "
            "them (asks the provider; what it cannot confirm becomes uncertain, re-sent by "
            "'comms retry --uncertain')."
        )
        os._exit(130)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


@app.command()
@handles_errors
def run(
    until_idle: Annotated[bool, typer.Option("--until-idle", help="Send what is due now, then exit.")] = False,
    tick_seconds: Annotated[float, typer.Option("--tick", help="Seconds between worker ticks.")] = 5.0,
    exclusive: Annotated[
        bool,
        typer.Option(
            "--exclusive/--standby",
            help="If another worker holds the sender lease: refuse (exit 1), or wait and take over (default).",
        ),
    ] = False,
) -> None:
    """Run the worker: send every due message on time, retry failures, record every delivery."""
    from comms.cli.engine_commands import _services
    from comms.delivery.sender import SenderLease
    from comms.delivery.worker import Worker

    services = _services(worker=True)
    dispatcher = services.dispatcher
    keeper = SenderLease(dispatcher, role="worker", ttl=services.settings.lease_seconds)
    stops = _StopSignals(dispatcher)
    try:
        other = keeper.try_acquire()
        if not keeper.held:
            assert other is not None
            described = escape(other.describe(keeper.clock()))
            if exclusive:
                raise SenderError(
                    f"another sender holds the lease: {other.describe(keeper.clock())}; "
                    "stop it, or run without --exclusive to stand by"
                )
            console.print(
                f"Standby: the sender lease is held by {described}. Taking over when it is "
                f"released or {keeper.ttl:.0f} s after its last heartbeat; Ctrl-C stops."
            )
            if not keeper.wait_for(on_wait=lambda _holder: None):
                console.print("Stopped while on standby; nothing was sent.")
                return
            console.print("Took over the sender lease.")
        others = keeper.other_workers() if exclusive else []
        if others:  # PostgreSQL: workers share the work, so the lease was ours too; --exclusive wants no other
            keeper.release()
            raise SenderError(
                f"{len(others)} other worker(s) are sending on this database: "
                f"{'; '.join(o.describe(keeper.clock()) for o in others)}; stop them, or run without --exclusive"
            )
        recovered = dispatcher.recover()
        if any(recovered.values()):
            console.print(f"Settled deliveries left in flight: {recovered}")
        if until_idle:
            report = dispatcher.run_until_idle()
            console.print(
                f"Sent {report.sent} deliveries in {report.requests} requests; {report.retrying} retrying, "
                f"{report.dead} dead, {report.missed} missed."
            )
        else:
            worker = Worker(services.engine, dispatcher, tick_seconds=tick_seconds)
            console.print(
                f"Worker running (up to {dispatcher.max_in_flight} requests in flight); Ctrl-C or SIGTERM stops it."
            )
            worker.run_forever()
            if worker.failure is not None:
                raise worker.failure
        if keeper.lost:
            raise SenderError(
                "another process took the sender lease (this one stalled past its expiry); "
                "it stopped after the requests in flight"
            )
        if dispatcher.stop_requested.is_set():
            console.print(
                "Stopped cleanly: every request in flight was recorded; the rest is pending for the next 'comms run'."
            )
    finally:
        dispatcher.close()
        keeper.release()
        stops.restore()
