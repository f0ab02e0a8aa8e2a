"""Pacing that holds across workers: with several senders on one database, slots are reserved in it.

``pacer_for`` gives the dispatcher its Slack pacer: the in-process ``Pacer`` when one sender is all there
can be (SQLite), else a ``SharedPacer`` whose slots every worker reserves in the database, so two workers
together still post at most once per interval to a channel. ``shared_pacer_for`` is the same for a limit
that a channel already keeps in-process (Statuspage, per page): the shared one, or None with one sender. ``hold_for`` likewise makes a provider's
429 (Retry-After) hold every worker's next request, not only the pending rows. ``RequestPacing`` puts
the three together for the dispatcher's request threads.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

from comms.channels.base import Channel
from comms.channels.pacing import Pacer, monotonic_for
from comms.clock import Clock
from comms.plan.fields import Channel as ChannelKind
from comms.store import pacing_slots
from comms.store.engine import Engine

__all__ = [
    "ProviderHold",
    "RequestPacing",
    "SERIAL_KINDS",
    "STATUSPAGE_INTERVAL_S",
    "SharedPacer",
    "hold_for",
    "pacer_for",
    "shared_pacer_for",
]

STATUSPAGE_INTERVAL_S = 1.0
"""Statuspage's limit: about one request a second per page (its API token)."""
SERIAL_KINDS = (ChannelKind.SLACK, ChannelKind.STATUSPAGE)
"""Channels whose provider limits are per target and per second: one request in flight."""


class SharedPacer:
    """Spaces calls with the same key ``interval`` seconds apart across every worker of the database."""

    def __init__(
        self, engine: Engine, scope: str, interval: float, *, clock: Clock, sleep: Callable[[float], None]
    ) -> None:
        self.engine = engine
        self.scope = scope
        self.interval = interval
        self._clock = clock
        self._sleep = sleep

    def wait(self, key: Hashable = None) -> float:
        """Block until this caller's slot for ``key``; return how many seconds it waited."""
        now = self._clock()
        slot = pacing_slots.reserve_slot(self.engine, f"{self.scope}:{key}", interval=self.interval, now=now)
        delay = (slot - now).total_seconds()
        if delay > 0:
            self._sleep(delay)
        return max(delay, 0.0)

    def __repr__(self) -> str:
        return f"SharedPacer({self.scope!r}, interval={self.interval})"


def pacer_for(
    engine: Engine, scope: str, interval: float, *, clock: Clock, sleep: Callable[[float], None]
) -> Pacer | SharedPacer:
    """The pacer of ``scope`` (``slack``): shared through the database when several workers may send."""
    if pacing_slots.is_shared(engine):
        return SharedPacer(engine, scope, interval, clock=clock, sleep=sleep)
    return Pacer(interval, monotonic=monotonic_for(clock), sleep=sleep)


def shared_pacer_for(
    engine: Engine, scope: str, interval: float, *, clock: Clock, sleep: Callable[[float], None]
) -> SharedPacer | None:
    """The database-wide pacer of ``scope`` when several workers may send; None with one sender."""
    return SharedPacer(engine, scope, interval, clock=clock, sleep=sleep) if pacing_slots.is_shared(engine) else None


class ProviderHold:
    """Waits out a provider's 429 that any worker was answered (the hold row ``ledger.hold_channel`` writes)."""

    def __init__(self, engine: Engine, *, clock: Clock, sleep: Callable[[float], None]) -> None:
        self.engine = engine
        self._clock = clock
        self._sleep = sleep

    def wait(self, channel: str) -> float:
        """Block until the provider of ``channel`` accepts requests again; return how many seconds it waited."""
        until = pacing_slots.provider_held_until(self.engine, channel)
        delay = (until - self._clock()).total_seconds() if until is not None else 0.0
        if delay > 0:
            self._sleep(delay)
        return max(delay, 0.0)


def hold_for(engine: Engine, *, clock: Clock, sleep: Callable[[float], None]) -> ProviderHold | None:
    """The shared provider hold when several workers may send; None with one sender (it holds in-process)."""
    return ProviderHold(engine, clock=clock, sleep=sleep) if pacing_slots.is_shared(engine) else None


class RequestPacing:
    """How fast each provider may be asked, before a request leaves: a 429's hold on the whole channel (every
    worker), Slack's post a second per channel, Statuspage's request a second per page."""

    def __init__(self, engine: Engine, *, slack_interval: float, clock: Clock, sleep: Callable[[float], None]) -> None:
        self._slack = pacer_for(engine, "slack", slack_interval, clock=clock, sleep=sleep)
        self._hold = hold_for(engine, clock=clock, sleep=sleep)  # several workers: a 429 holds them all
        # Statuspage paces itself per page in-process; with several workers they also share one slot per page
        self._statuspage = shared_pacer_for(engine, "statuspage", STATUSPAGE_INTERVAL_S, clock=clock, sleep=sleep)

    def wait(self, channel: Channel, target: str) -> None:
        """Block until a request of ``channel`` to ``target`` may leave (in the request thread)."""
        if self._hold is not None:
            self._hold.wait(channel.kind.value)
        if channel.dry_run:
            return
        if channel.kind is ChannelKind.SLACK:
            self._slack.wait(target)
        elif channel.kind is ChannelKind.STATUSPAGE and self._statuspage is not None:
            self._statuspage.wait(target)
