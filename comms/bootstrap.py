"""The one place that builds real objects: settings, engine, channels and the dispatcher."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from comms.channels.base import Channel
from comms.clock import Clock, utc_now
from comms.delivery.ack_links import AckLinkedEmail
from comms.delivery.dispatcher import Dispatcher, FailureHook, RetryPolicy, Sleeper
from comms.plan.cache import PlanCache
from comms.plan.fields import Channel as ChannelKind
from comms.reports.metrics import communication_metrics
from comms.services.escalations import DeliveryFailureEscalation, EscalationTimers
from comms.services.fallback import DeliveryFallback
from comms.services.phases import PhaseRetirement
from comms.settings import Settings
from comms.store.engine import OPERATOR_BUSY_TIMEOUT_S, WORKER_BUSY_TIMEOUT_S, Engine, make_engine
from comms.store.tables import CutoverRow, OccurrenceRow
from comms.store.transaction import Transaction, savepoint

log = logging.getLogger(__name__)

__all__ = ["FailureHooks", "OPERATOR_BUSY_TIMEOUT_S", "Services", "WORKER_BUSY_TIMEOUT_S", "bootstrap"]


@dataclass
class Services:
    """What commands need: settings, the database, the channels and the dispatcher."""

    settings: Settings
    engine: Engine
    channels: Mapping[ChannelKind, Channel]
    dispatcher: Dispatcher
    clock: Clock


class FailureHooks:
    """The dispatcher's ``on_failure`` hook calling several in turn (the fallback first, then the escalation).

    Each runs in a savepoint of the failure's transaction: one that raises is undone alone and logged,
    so a broken escalation does not cost the fallback deliveries (nor the other way round).
    """

    def __init__(self, *hooks: FailureHook) -> None:
        self.hooks = hooks

    def __call__(self, tx: Transaction, cutover: CutoverRow, occurrence: OccurrenceRow, reason: str) -> None:
        for hook in self.hooks:
            try:
                with savepoint(tx):
                    hook(tx, cutover, occurrence, reason)
            except Exception:
                log.exception("%s failed for %s (%s); the failure is recorded without it", hook, occurrence.key, reason)


def bootstrap(
    settings: Settings | None = None,
    *,
    clock: Clock = utc_now,
    sleep: Sleeper = time.sleep,
    channels: Mapping[ChannelKind, Channel] | None = None,
    engine: Engine | None = None,
    busy_timeout: float = OPERATOR_BUSY_TIMEOUT_S,
) -> Services:
    """Build the services from settings (environment by default); tests inject clock, sleep and channels.

    ``busy_timeout`` is how long the engine waits for another process's write lock: about a second for
    an operator's command, WORKER_BUSY_TIMEOUT_S for the worker (``comms run``).
    """
    settings = settings or Settings()
    engine = engine or make_engine(settings.database_url, busy_timeout=busy_timeout)
    if channels is None:
        from comms.channels.factory import build_channels

        channels = with_ack_links(build_channels(settings, clock=clock, sleep=sleep), settings, clock=clock)
    plans = PlanCache()
    dispatcher = Dispatcher(
        engine,
        channels,
        clock=clock,
        sleep=sleep,
        retry=RetryPolicy(settings.max_attempts, settings.retry_base_seconds, settings.retry_max_seconds),
        plans=plans,
        metrics=communication_metrics,
        on_failure=FailureHooks(
            DeliveryFallback(plans, clock=clock, metrics=communication_metrics),
            DeliveryFailureEscalation(plans, clock=clock),
        ),
        tick_hooks=[PhaseRetirement(plans), EscalationTimers(plans)],
        max_in_flight=settings.max_in_flight,
        writer_after=settings.writer_process_after if settings.writer_process else None,
    )
    return Services(settings=settings, engine=engine, channels=channels, dispatcher=dispatcher, clock=clock)


def with_ack_links(
    channels: Mapping[ChannelKind, Channel], settings: Settings, *, clock: Clock
) -> dict[ChannelKind, Channel]:
    """The channels, the email one filling in each escalation recipient's ack link (``comms.delivery.ack_links``)."""
    result = dict(channels)
    email = result.get(ChannelKind.EMAIL)
    if email is not None:
        secret = settings.ack_secret.get_secret_value().encode("utf-8") if settings.ack_secret else None
        result[ChannelKind.EMAIL] = AckLinkedEmail(
            email,
            secret=secret or None,
            public_url=settings.public_url,
            valid_for=timedelta(hours=settings.ack_link_hours),
            clock=clock,
        )
    return result
