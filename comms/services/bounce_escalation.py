"""One escalation per audience whose bounce-and-drop rate (SendGrid's events) passes the plan's threshold.

``schedules/escalation.yaml`` sets ``bounce_rate: {threshold: 0.05, min_reported: 20}``; the notice
goes to the ``delivery_failures`` contacts as an ``escalation-notice`` of kind ``delivery_failure``.
Its occurrence key (``escalation:bounce-rate/<audience>``, UNIQUE per cutover) makes it one notice per
audience and cutover, however many webhook batches arrive afterwards.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from comms.plan.cache import PlanCache
from comms.plan.models import Trigger
from comms.services.escalations import ESCALATION_MESSAGE, add_occurrence, notice_targets
from comms.store import occurrences as occurrence_store
from comms.store import provider_events
from comms.store import repository as repo
from comms.store.engine import Engine
from comms.store.transaction import transaction

__all__ = ["escalate_bounce_rates"]

log = logging.getLogger(__name__)


def escalate_bounce_rates(engine: Engine, plans: PlanCache, *, now: datetime) -> list[int]:
    """Queue the bounce-rate notices now due for every cutover; return their occurrence ids."""
    created: list[int] = []
    with transaction(engine) as tx:
        for cutover in repo.list_cutovers(tx):
            assert cutover.id is not None
            plan, _ = plans.get(cutover.plan_dir)
            matrix = plan.escalation
            if matrix is None or matrix.bounce_rate is None or matrix.delivery_failures is None:
                continue
            try:
                message = plan.message(ESCALATION_MESSAGE)
            except KeyError:
                continue
            policy = matrix.bounce_rate
            for audience, outcomes in sorted(provider_events.outcome_counts(tx, cutover.id).items()):
                reported = sum(outcomes.values())
                failed = outcomes.get("bounced", 0) + outcomes.get("dropped", 0)
                if reported < policy.min_reported or failed / reported <= policy.threshold:
                    continue
                key = f"escalation:bounce-rate/{audience}"
                if occurrence_store.occurrence_id_by_key(tx, cutover.id, key) is not None:
                    continue
                reason = (
                    f"{failed} of {reported} deliveries to {audience} bounced or were dropped "
                    f"({failed / reported:.0%}, over the plan's {policy.threshold:.0%})"
                )
                audiences, channels, direct = notice_targets(plan, matrix.delivery_failures, message)
                context: dict[str, Any] = {
                    "escalation": {
                        "level": 1,
                        "repeat": 0,
                        "kind": "delivery_failure",
                        "reason": reason,
                        "message": f"email to {audience}",
                        "occurrence": key,
                        "incident": {
                            "id": f"bounce-rate-{audience}",
                            "severity": "delivery",
                            "status": "investigating",
                            "summary": f"email to {audience} is bouncing",
                            "components": [audience],
                            "update": "Check the addresses and the sender's reputation in SendGrid.",
                            "opened_at": now,
                            "acked_by": None,
                        },
                    }
                }
                if direct:
                    context["direct"] = direct
                created.append(
                    add_occurrence(
                        tx,
                        cutover_id=cutover.id,
                        key=key,
                        message=message,
                        trigger=Trigger.ESCALATION,
                        audiences=audiences,
                        channels=channels,
                        context=context,
                        now=now,
                    )
                )
                log.warning("escalated to the delivery_failures contacts: %s", reason)
        tx.commit()
    return created
