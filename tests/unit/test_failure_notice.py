"""The escalation notice worded for a failed or missed delivery rather than an incident."""

from __future__ import annotations

from pathlib import Path

import pytest

from comms.core.content import EmailContent, SlackContent
from comms.core.context import sample_context
from comms.plan.fields import Channel
from comms.plan.loader import load_plan
from comms.rendering import Renderer

ROOT = Path(__file__).resolve().parents[2]
PLAN = load_plan(ROOT, check_templates=False)
FAILURE = {
    "level": 1,
    "repeat": 0,
    "kind": "delivery_failure",
    "reason": "4 delivery(ies) dead: 401 invalid key",
    "message": "reminder",
    "occurrence": "reminder",
    "incident": {
        "id": "delivery-3",
        "severity": "delivery",
        "summary": "'reminder' could not be delivered",
        "status": "investigating",
        "update": "Fix the cause, then re-send with 'comms retry --dead'.",
        "components": ["reminder"],
        "opened_at": None,
        "acked_by": None,
    },
}


def _render(audience: str | None, channel: Channel, kind: str = "delivery_failure") -> EmailContent | SlackContent:
    message = PLAN.message("escalation-notice")
    context = sample_context(PLAN, message, PLAN.audiences[audience] if audience else None)
    context["escalation"] = {**FAILURE, "kind": kind}
    content = Renderer(ROOT / "templates").render("escalation-notice", audience, channel, context)
    assert isinstance(content, EmailContent | SlackContent)
    return content


@pytest.mark.parametrize("audience", ["engineering", "executives", "support", None])
def test_failure_notice_names_the_failed_message(audience: str | None) -> None:
    """Every view of a delivery-failure notice names the message and the next step, not an incident."""
    email = _render(audience, Channel.EMAIL)
    assert isinstance(email, EmailContent)
    assert email.subject.startswith("[DELIVERY FAILURE] reminder")
    assert "comms retry --dead" in email.text and "Incident #" not in email.text
    assert "could not be delivered" in email.html


def test_missed_notice_says_missed() -> None:
    """A missed message is worded as not sent within its lateness bound."""
    slack = _render("engineering", Channel.SLACK, kind="missed")
    assert isinstance(slack, SlackContent) and "lateness bound" in slack.text
