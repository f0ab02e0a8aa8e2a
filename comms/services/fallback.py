"""Fallback channels: when an audience's delivery ends dead, the same message goes once on its fallback channel.

An audience names the fallback on a target (``slack: {channels: [...], fallback: email}``). When rows of
an occurrence die after being tried (their retries spent, or a permanent error), the dispatcher's
``on_failure`` hook calls ``DeliveryFallback`` inside the transaction that recorded them: for each
audience and dead channel with a fallback, the message is rendered for the fallback channel and one
delivery per fallback target is written on the same occurrence, ``fallback_of`` the first dead one.
The sender picks them up on its next pass. Never a fallback of a fallback (stand-ins that die are left
dead), never twice (one set per audience and channel), and never when the audience already gets this
occurrence on that channel (a message sent by email and Slack does not send the email twice).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from comms.channels.base import target_state
from comms.channels.registry import channel_spec
from comms.clock import Clock
from comms.core.content import content_hash
from comms.delivery.materialize import MetricsProvider, audience_targets, delivery_key, render_content, render_extras
from comms.plan.cache import PlanCache
from comms.plan.fields import Channel
from comms.store import fallback_queries
from comms.store.recipient_writes import RecipientValues
from comms.store.tables import CutoverRow, OccurrenceRow
from comms.store.transaction import Transaction

__all__ = ["DeliveryFallback", "queue_fallbacks"]

log = logging.getLogger(__name__)


class DeliveryFallback:
    """An ``on_failure`` hook: queue the fallback deliveries of the audiences whose deliveries just died."""

    def __init__(self, plans: PlanCache, *, clock: Clock, metrics: MetricsProvider) -> None:
        self.plans = plans
        self.clock = clock
        self.metrics = metrics

    def __call__(self, tx: Transaction, cutover: CutoverRow, occurrence: OccurrenceRow, reason: str) -> None:
        if reason == "missed":
            return  # too late for the primary is too late for a fallback
        try:
            with tx.begin_nested():  # a fallback that cannot be written leaves the failure's own records alone
                queue_fallbacks(tx, self.plans, cutover, occurrence, now=self.clock(), metrics=self.metrics)
        except Exception:
            log.exception("could not queue the fallback of %s", occurrence.key)


def queue_fallbacks(
    tx: Transaction,
    plans: PlanCache,
    cutover: CutoverRow,
    occurrence: OccurrenceRow,
    *,
    now: datetime,
    metrics: MetricsProvider,
) -> int:
    """Write the fallback deliveries the occurrence's dead rows call for; return how many (the caller commits)."""
    assert cutover.id is not None and occurrence.id is not None
    plan, renderer = plans.get(cutover.plan_dir)
    message = plan.message(occurrence.message)
    written = 0
    extra: dict[str, Any] | None = None
    for dead in fallback_queries.dead_primaries(tx, occurrence.id):
        audience = plan.audiences.get(dead.audience)
        if audience is None:
            continue  # the status page and directly named contacts have no fallback
        fallback = audience.channels.fallback_for(Channel(dead.channel))
        if fallback is None or fallback_queries.audience_has_channel(tx, occurrence.id, audience.key, fallback.value):
            continue
        if extra is None:  # read (and the metrics computed) once, for the first fallback
            extra, _ = render_extras(tx, cutover, occurrence, message, metrics)
        body = render_content(plan, renderer, cutover, occurrence, audience, fallback, extra, now=now)
        targets = _once_each(
            (
                delivery_key(cutover.name, occurrence.key, audience.key, fallback.value, address),
                address,
                name,
                target_state(problem) if problem else None,
                problem,
            )
            for address, name, problem in audience_targets(tx, audience, fallback)
        )
        count = fallback_queries.add_fallback_deliveries(
            tx,
            cutover_id=cutover.id,
            occurrence_id=occurrence.id,
            audience=audience.key,
            channel=fallback.value,
            body_json=body,
            sha256=content_hash(body),
            targets=targets,
            batch_size=channel_spec(fallback).batch,
            fallback_of=dead.id,
            now=now,
        )
        log.warning(
            "%s to %s ended dead on %s: %d fallback delivery(ies) queued on %s",
            occurrence.key,
            audience.key,
            dead.channel,
            count,
            fallback.value,
        )
        written += count
    return written


def _once_each(targets: Iterable[RecipientValues]) -> list[RecipientValues]:
    """The targets with a repeated address (any case) left out: one delivery each, as materialize writes."""
    seen: set[str] = set()
    unique: list[RecipientValues] = []
    for target in targets:
        if target[0] not in seen:  # the key lower-cases the address
            seen.add(target[0])
            unique.append(target)
    return unique
