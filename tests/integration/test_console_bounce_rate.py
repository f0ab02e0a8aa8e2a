"""A bounce-and-drop rate over the plan's threshold raises one escalation, from SendGrid's signed events."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from comms.services.incidents import open_incident
from comms.store.tables import DeliveryRow, OccurrenceRow
from tests.integration.test_console_sendgrid import PUBLIC_KEY, _event, _now, _post
from tests.support.console_server import ConsoleServer, start_console


@pytest.fixture
def console(tmp_path: Path, plan_copy: Path) -> Iterator[ConsoleServer]:
    escalation = plan_copy / "schedules" / "escalation.yaml"
    text = escalation.read_text(encoding="utf-8")
    escalation.write_text(text.replace("threshold: 0.05\n  min_reported: 20", "threshold: 0.3\n  min_reported: 2"))
    server = start_console(tmp_path, sendgrid_public_key=PUBLIC_KEY, plan_root=plan_copy)
    services = server.services
    outcome = open_incident(
        services.engine, services.dispatcher.plans, severity="sev1", summary="Sign-in fails", now=services.clock()
    )
    services.dispatcher.dispatch_now(outcome.occurrences)
    yield server
    server.stop()


def _audience_keys(console: ConsoleServer) -> tuple[str, list[str]]:
    """An audience with at least two sent emails, and their delivery keys."""
    with Session(console.services.engine) as session:
        rows = list(
            session.exec(select(DeliveryRow).where(DeliveryRow.channel == "email", DeliveryRow.state == "sent"))
        )
    audience = next(name for name, count in Counter(r.audience for r in rows).most_common() if count >= 2)
    return audience, [r.idempotency_key for r in rows if r.audience == audience]


def _bounce_notices(console: ConsoleServer) -> list[OccurrenceRow]:
    with Session(console.services.engine) as session:
        return list(
            session.exec(select(OccurrenceRow).where(col(OccurrenceRow.key).startswith("escalation:bounce-rate/")))
        )


def test_bounces_over_the_threshold_raise_one_notice(console: ConsoleServer) -> None:
    """All of an audience's emails bouncing queues one notice naming the rate; more bounces add none."""
    audience, keys = _audience_keys(console)
    now = _now(console)
    _post(console, [_event(key, "bounce", now) for key in keys])
    notices = _bounce_notices(console)
    assert [n.key for n in notices] == [f"escalation:bounce-rate/{audience}"]
    reason = json.loads(notices[0].context_json or "{}")["escalation"]["reason"]
    assert f"{len(keys)} of {len(keys)} deliveries to {audience}" in reason
    assert list(console.outbox.rglob("escalation_bounce-rate_*.email.*"))
    _post(console, [_event(key, "dropped", now + 1) for key in keys])
    assert len(_bounce_notices(console)) == 1


def test_a_rate_under_the_threshold_raises_nothing(console: ConsoleServer) -> None:
    """Delivered emails (no bounce) raise no notice."""
    _, keys = _audience_keys(console)
    _post(console, [_event(key, "delivered", _now(console)) for key in keys])
    assert _bounce_notices(console) == []
