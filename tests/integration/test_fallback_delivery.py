"""Fallback channels end to end against the Slack and SendGrid fakes: a dead Slack post becomes one email."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fakes.sendgrid import FakeSendGrid
from fakes.slack import FakeSlack
from sqlmodel import Session, col, select

from comms.bootstrap import Services, bootstrap
from comms.plan.loader import load_plan
from comms.plan.models import Plan
from comms.services.adhoc import send_adhoc
from comms.services.scheduling import schedule_cutover
from comms.store.tables import DeliveryRow
from tests.support.clock import FakeClock

from .builders import T0, make_settings

EXECUTIVES = ("cto@example.com", "ceo@example.com", "vp-engineering@example.com")


def _services(
    tmp_path: Path, plan: Plan, sendgrid: FakeSendGrid, slack: FakeSlack, clock: FakeClock, database_url: str
) -> Services:
    built = bootstrap(
        make_settings(
            tmp_path, sendgrid=sendgrid, slack=slack, max_attempts=2, retry_base_seconds=1.0, database_url=database_url
        ),
        clock=clock,
        sleep=clock.sleep,
    )
    built.dispatcher.plans.put(plan)
    schedule_cutover(built.engine, plan, start=T0 + timedelta(days=30), now=clock())  # nothing due meanwhile
    return built


def _announce(services: Services, clock: FakeClock, *, channel: str = "slack") -> None:
    outcome = send_adhoc(
        services.engine,
        services.dispatcher.plans,
        "announcement",
        audiences=["executives"],
        channels=[channel],
        variables={"summary": "Heads-up", "details": "More soon"},
        now=clock(),
    )
    services.dispatcher.dispatch_now([outcome.occurrence_id])
    services.dispatcher.run_until_idle()


def _announcement_emails(sendgrid: FakeSendGrid) -> list[tuple[str, dict[str, Any]]]:
    return [
        (p["to"][0]["email"], body)
        for body in sendgrid.accepted
        if body["custom_args"]["message"] == "announcement"
        for p in body["personalizations"]
    ]


def _announcement_posts(slack: FakeSlack) -> list[Any]:
    return [
        p
        for p in slack.posts()
        if p.body.get("channel") in ("#exec-updates", "exec-updates")
        or "announcement" in str(p.body.get("metadata", ""))
    ]


def _deliveries(services: Services) -> list[DeliveryRow]:
    with Session(services.engine) as session:
        rows = session.exec(select(DeliveryRow).order_by(col(DeliveryRow.id))).all()
        return [r for r in rows if "announcement" in r.idempotency_key]


@pytest.fixture
def plan(plan_copy: Path) -> Plan:
    return load_plan(plan_copy, check_templates=False)


def test_dead_slack_post_sends_exactly_one_email(
    tmp_path: Path, database_url: str, plan: Plan, sendgrid: FakeSendGrid, slack: FakeSlack, clock: FakeClock
) -> None:
    """#exec-updates refuses the post (the bot was removed): each executive gets the announcement by email, once."""
    slack.error_next("not_in_channel")
    services = _services(tmp_path, plan, sendgrid, slack, clock, database_url)
    _announce(services, clock)
    emails = _announcement_emails(sendgrid)
    assert sorted(address for address, _ in emails) == sorted(EXECUTIVES)
    [(_, body)] = {id(b): (a, b) for a, b in emails}.values()  # one request carries the three
    assert body["subject"] and "Heads-up" in body["content"][0]["value"]
    rows = [r for r in _deliveries(services) if r.audience == "executives"]
    [dead] = [r for r in rows if r.channel == "slack"]
    fallbacks = [r for r in rows if r.channel == "email"]
    assert dead.state == "dead" and dead.fallback_of is None
    assert {r.fallback_of for r in fallbacks} == {dead.id} and {r.state for r in fallbacks} == {"sent"}
    assert sendgrid.violations == []


def test_slack_post_that_succeeds_sends_no_email(
    tmp_path: Path, database_url: str, plan: Plan, sendgrid: FakeSendGrid, slack: FakeSlack, clock: FakeClock
) -> None:
    """Never both: a Slack post that goes through leaves the fallback unused."""
    services = _services(tmp_path, plan, sendgrid, slack, clock, database_url)
    _announce(services, clock)
    assert _announcement_emails(sendgrid) == [] and len(_announcement_posts(slack)) == 1


def test_slack_dead_after_its_retries_falls_back(
    tmp_path: Path, database_url: str, plan: Plan, sendgrid: FakeSendGrid, slack: FakeSlack, clock: FakeClock
) -> None:
    """Slack answering 500 until the retries are spent: the post ends dead and the email goes once."""
    slack.fail_next(10, status=500, body={"ok": False, "error": "internal_error"})
    services = _services(tmp_path, plan, sendgrid, slack, clock, database_url)
    _announce(services, clock)
    assert sorted(a for a, _ in _announcement_emails(sendgrid)) == sorted(EXECUTIVES)


def test_a_dead_fallback_has_no_fallback_of_its_own(
    tmp_path: Path, database_url: str, plan_copy: Path, sendgrid: FakeSendGrid, slack: FakeSlack, clock: FakeClock
) -> None:
    """Slack falls back to email and email to Slack: when both die, nothing else is sent (no fallback chain)."""
    path = plan_copy / "audiences" / "executives.yaml"
    path.write_text(
        path.read_text().replace(
            "      - vp-engineering@example.com\n", "      - vp-engineering@example.com\n    fallback: slack\n"
        ),
    )
    plan = load_plan(plan_copy, check_templates=False)
    assert plan.audiences["executives"].channels.email is not None
    assert plan.audiences["executives"].channels.email.fallback is not None
    slack.error_next("channel_not_found")
    sendgrid.fail_next(10, status=400, body={"errors": [{"message": "bad", "field": None}]})
    services = _services(tmp_path, plan, sendgrid, slack, clock, database_url)
    _announce(services, clock)
    rows = [r for r in _deliveries(services) if r.audience == "executives"]
    assert [(r.channel, r.state) for r in rows] == [("slack", "dead")] + [("email", "dead")] * 3
    assert len(_announcement_posts(slack)) == 1


def test_message_already_sent_by_email_is_not_emailed_again(
    tmp_path: Path, database_url: str, plan: Plan, sendgrid: FakeSendGrid, slack: FakeSlack, clock: FakeClock
) -> None:
    """An announcement sent on email and Slack whose Slack post dies: the executives' one email stays one."""
    slack.error_next("not_in_channel")
    services = _services(tmp_path, plan, sendgrid, slack, clock, database_url)
    outcome = send_adhoc(
        services.engine,
        services.dispatcher.plans,
        "announcement",
        audiences=["executives"],
        channels=["email", "slack"],
        variables={"summary": "Heads-up", "details": "More soon"},
        now=clock(),
    )
    services.dispatcher.dispatch_now([outcome.occurrence_id])
    services.dispatcher.run_until_idle()
    assert sorted(a for a, _ in _announcement_emails(sendgrid)) == sorted(EXECUTIVES)
    assert all(r.fallback_of is None for r in _deliveries(services))


def test_a_broken_escalation_does_not_cost_the_fallback(
    tmp_path: Path,
    database_url: str,
    plan: Plan,
    sendgrid: FakeSendGrid,
    slack: FakeSlack,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The escalation hook raising after the fallback: its savepoint is undone alone, the fallback email goes."""
    from comms.bootstrap import FailureHooks
    from comms.services.fallback import DeliveryFallback

    def broken_escalation(*_args: object) -> None:
        raise RuntimeError("escalation contacts unreadable")

    slack.error_next("not_in_channel")
    services = _services(tmp_path, plan, sendgrid, slack, clock, database_url)
    hooks = services.dispatcher.on_failure
    assert isinstance(hooks, FailureHooks) and isinstance(hooks.hooks[0], DeliveryFallback)
    services.dispatcher.outcomes.on_failure = FailureHooks(hooks.hooks[0], broken_escalation)
    _announce(services, clock)
    assert sorted(a for a, _ in _announcement_emails(sendgrid)) == sorted(EXECUTIVES)
    rows = [r for r in _deliveries(services) if r.audience == "executives"]
    assert [r.state for r in rows if r.channel == "slack"] == ["dead"]
    assert "escalation contacts unreadable" in caplog.text


def test_a_fallback_email_skips_who_unsubscribed_through_their_link(
    tmp_path: Path, database_url: str, plan_copy: Path, sendgrid: FakeSendGrid, slack: FakeSlack, clock: FakeClock
) -> None:
    """An audience with unsubscribe: its fallback email is recorded suppressed for whoever unsubscribed, not sent."""
    from comms.store.unsubscribes import record_unsubscribe

    path = plan_copy / "audiences" / "executives.yaml"
    path.write_text(path.read_text() + "unsubscribe: {}\n")
    plan = load_plan(plan_copy, check_templates=False)
    slack.error_next("not_in_channel")
    services = _services(tmp_path, plan, sendgrid, slack, clock, database_url)
    record_unsubscribe(services.engine, "executives", "ceo@example.com", now=clock())
    _announce(services, clock)
    assert sorted(address for address, _ in _announcement_emails(sendgrid)) == [
        "cto@example.com",
        "vp-engineering@example.com",
    ]
    states = {r.recipient: r.state for r in _deliveries(services) if r.channel == "email"}
    assert states == {"cto@example.com": "sent", "ceo@example.com": "suppressed", "vp-engineering@example.com": "sent"}
