"""Facts, not claims: the `send` facts in the context, and no shipped template claiming a channel its send skips.

Every (message, audience, channel) the default plan sends is rendered with the context of that very
send (for incident messages, under each severity's audiences and channels); a sentence saying that
customers, email or the status page are told now must be backed by the send.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from comms.core.content import content_to_json
from comms.core.context import SAMPLE_START, relative, sample_context, send_view
from comms.plan.fields import Channel
from comms.plan.loader import load_plan, sent_combinations
from comms.plan.models import Plan, Trigger
from comms.plan.template_check import fixed_duration_warnings
from comms.rendering import Renderer

REPO_ROOT = Path(__file__).resolve().parents[2]
PLAN = load_plan(REPO_ROOT, check_templates=False)
RENDERER = Renderer(PLAN.root / "templates")

STATUSPAGE_CLAIMS = re.compile(
    r"(?:told|shown|see[sn]?|informed)\b[^.]{0,60}\bon the status page|status page (?:shows|has) (?:it|the issue|the latest)",
    re.IGNORECASE,
)
EMAIL_CLAIMS = re.compile(r"told[^.]{0,30}\bby email\b|\bemailed (?:today|now)\b", re.IGNORECASE)
CUSTOMER_CLAIMS = re.compile(
    r"customers (?:are told|receive their|get their|see the same)[^.]{0,40}\b(?:now|today|update)\b", re.IGNORECASE
)


def false_claims(text: str, send: dict[str, Any]) -> list[str]:
    """The sentences of ``text`` that claim a channel or an audience that ``send`` does not reach."""
    customers = send["reaches"].get("end-users", [])
    found = []
    if not send["statuspage"]:
        found += STATUSPAGE_CLAIMS.findall(text)
    if "email" not in customers:
        found += EMAIL_CLAIMS.findall(text)
    if not customers and not send["statuspage"]:
        found += CUSTOMER_CLAIMS.findall(text)
    return found


def _sends(plan: Plan) -> list[tuple[str, str | None, Channel, str]]:
    """Every rendered send: (message, audience, channel, severity or '')."""
    sends = []
    for message_key, audience_key, channel in sent_combinations(plan):
        message = plan.message(message_key)
        if message.event is Trigger.INCIDENT and plan.escalation is not None:
            for severity, policy in plan.escalation.severities.items():
                in_send = audience_key is None or audience_key in policy.audiences
                if in_send and channel in policy.channels and channel is not Channel.STATUSPAGE:
                    sends.append((message_key, audience_key, channel, severity))
        else:
            sends.append((message_key, audience_key, channel, ""))
    return sends


def _render(message_key: str, audience_key: str | None, channel: Channel, severity: str) -> tuple[str, dict[str, Any]]:
    message = PLAN.message(message_key)
    audience = PLAN.audiences[audience_key] if audience_key else None
    context = sample_context(PLAN, message, audience)
    if severity and PLAN.escalation is not None:
        policy = PLAN.escalation.severities[severity]  # type: ignore[index]
        context["incident"] = {**context["incident"], "severity": severity}
        context["send"] = send_view(
            PLAN, start=SAMPLE_START, now=context["send"]["now"], audiences=policy.audiences, channels=policy.channels
        )
    return content_to_json(RENDERER.render(message_key, audience_key, channel, context)), context["send"]


@pytest.mark.parametrize(("message", "audience", "channel", "severity"), _sends(PLAN))
def test_no_shipped_template_claims_a_channel_its_send_does_not_use(
    message: str, audience: str | None, channel: Channel, severity: str
) -> None:
    """The rendering of each send names no channel or audience as told that the send does not reach."""
    text, send = _render(message, audience, channel, severity)
    assert false_claims(text, send) == []


def test_the_check_catches_the_reported_sev2_claim() -> None:
    """The old sev2 executives sentence ('told now by email and on the status page') is caught."""
    _, send = _render("incident-opened", "executives", Channel.EMAIL, "sev2")
    assert send["statuspage"] is False and "end-users" not in send["reaches"]
    assert false_claims("- Customers are told now by email and on the status page.", send)


def test_sev2_incident_says_customers_are_not_told() -> None:
    """The sev2 incident email to executives says it stays internal; sev1's says email and status page."""
    sev2, _ = _render("incident-opened", "executives", Channel.EMAIL, "sev2")
    sev1, _ = _render("incident-opened", "executives", Channel.EMAIL, "sev1")
    assert "Customers are not told by this message: it stays internal." in sev2
    assert "Customers are told now by email and on the status page." in sev1


def test_send_facts_name_reach_channels_and_status_page() -> None:
    """`send` lists this send's audiences, the channels each is reached on, and whether the page is updated."""
    send = send_view(
        PLAN,
        start=SAMPLE_START,
        now=SAMPLE_START - timedelta(days=4, hours=13),
        audiences=("executives", "end-users"),
        channels=(Channel.EMAIL, Channel.STATUSPAGE),
    )
    assert send["reaches"] == {"executives": ["email"], "end-users": ["email", "statuspage"]}
    assert send["statuspage"] is True and send["channels"] == ["email", "statuspage"]
    assert send["starts_in"] == "4 days 13 hours" and send["ends_in"] == "5 days 1 hour"


def test_advance_notice_sent_four_and_a_half_days_early_says_so() -> None:
    """The reported case: `comms send advance-notice` 4.5 days before T0 says 'in 4 days 12 hours', not '48 hours'."""
    message = PLAN.message("advance-notice")
    context = sample_context(PLAN, message, PLAN.audiences["support"])
    context["send"] = send_view(
        PLAN,
        start=SAMPLE_START,
        now=SAMPLE_START - timedelta(days=4, hours=12),
        audiences=message.audiences,
        channels=message.channels,
    )
    text = content_to_json(RENDERER.render("advance-notice", "support", Channel.EMAIL, context))
    assert "starts in 4 days 12 hours" in text and "48 hours" not in text


@pytest.mark.parametrize(
    ("delta", "words"),
    [
        (timedelta(hours=47, minutes=59, seconds=57), "2 days"),
        (timedelta(hours=1, minutes=59, seconds=50), "2 hours"),
        (timedelta(hours=2, minutes=30), "2 hours 30 minutes"),
        (timedelta(minutes=25, seconds=10), "25 minutes"),
        (timedelta(seconds=5), "1 minute"),
    ],
)
def test_relative_durations_are_rounded_to_what_matters(delta: timedelta, words: str) -> None:
    """A send that leaves seconds after its due time still says '2 days', not '1 day 23 hours'."""
    assert relative(delta) == words


def test_validate_warns_on_a_fixed_duration(plan_copy: Path) -> None:
    """A template of a message before T0 stating 'starts in 48 hours' is warned about, with file and line."""
    assert fixed_duration_warnings(load_plan(plan_copy, check_templates=False)) == []
    slack = plan_copy / "templates" / "advance-notice" / "slack.j2"
    slack.write_text(slack.read_text().replace("starts in {{ send.starts_in }}", "starts in 48 hours"))
    warnings = fixed_duration_warnings(load_plan(plan_copy, check_templates=False))
    assert [(w.file.endswith("templates/advance-notice/slack.j2"), w.line) for w in warnings] == [(True, 1)]
    assert "send.starts_in" in warnings[0].message
