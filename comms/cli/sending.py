"""How a command that queued messages gets them sent: through the one sender (``send_queued``).

With a live worker holding the sender lease, the command wakes it and waits for its rows; with none,
the command takes the lease for its own messages. ``--no-wait`` returns once the rows are queued.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from comms.cli.app import console

if TYPE_CHECKING:
    from comms.bootstrap import Services
    from comms.delivery.dispatcher import TickReport

__all__ = ["NoWaitOption", "send_through_sender"]

NoWaitOption = Annotated[
    bool, typer.Option("--no-wait", help="Return once the messages are queued; the running worker sends them.")
]


def send_through_sender(
    services: Services, occurrence_ids: Sequence[int], *, wait: bool = True, quiet: bool = False
) -> TickReport | None:
    """Send the queued occurrences through the one sender; None when ``wait`` is off (queued only)."""
    from comms.delivery.sender import send_queued

    result = send_queued(services.dispatcher, occurrence_ids, ttl=services.settings.lease_seconds, wait=wait)
    if quiet:
        return result.report if wait else None
    if result.sent_by != "this command":
        verb = "Sent by" if wait else "Queued for"
        console.print(f"{verb} {escape(result.sent_by)}.")
    if wait and not result.settled:
        console.print("Some deliveries were still being sent when the wait ended; see 'comms status'.")
    return result.report if wait else None
