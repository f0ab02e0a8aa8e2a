"""A recording channel: implements the channel port and can be scripted to fail."""

from __future__ import annotations

import threading
from collections import deque

from comms.channels.base import Envelope, Leaving, Receipt, Reconciliation, not_watched
from comms.errors import ChannelError
from comms.plan.fields import Channel


class RecordingChannel:
    """Records every envelope; raises the scripted errors first, in order."""

    def __init__(self, kind: Channel, *, max_batch: int = 1000) -> None:
        self.kind = kind
        self.max_batch = max_batch if kind is Channel.EMAIL else 1
        self.dry_run = False
        self.sent: list[Envelope] = []
        self.failures: deque[ChannelError] = deque()
        self.reconcile_state = "unknown"
        self._counter = 0
        self._lock = threading.Lock()  # the dispatcher sends from several request threads

    def send(self, envelope: Envelope, leaving: Leaving = not_watched) -> Receipt:
        leaving()
        with self._lock:
            if self.failures:
                raise self.failures.popleft()
            self._counter += 1
            counter = self._counter
            self.sent.append(envelope)
        ref = envelope.thread_ref or f"{self.kind.value}-{counter}"
        if envelope.statuspage is not None:
            ref = envelope.statuspage.incident_id or f"inc-{counter}"
        return Receipt(provider_id=f"{self.kind.value}-{counter}", thread_ref=ref)

    def reconcile(self, envelope: Envelope) -> Reconciliation:
        if self.reconcile_state == "sent":
            return Reconciliation("sent", Receipt(provider_id="reconciled"))
        return Reconciliation(self.reconcile_state)  # type: ignore[arg-type]

    def recipients(self) -> list[str]:
        return [r.address for e in self.sent for r in e.recipients]


def recording_channels() -> dict[Channel, RecordingChannel]:
    """One recording channel per kind."""
    return {kind: RecordingChannel(kind) for kind in Channel}
