"""The fakes themselves: they refuse what the vendor specs refuse, so adapter tests mean something."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import httpx
import pytest
from fakes.sendgrid import FakeSendGrid
from fakes.specs import errors_of, statuspage_validator

from comms.channels.statuspage import build_incident_request

from .builders import COMPONENT, PAGE_ID, SENDGRID_KEY, SLACK_TOKEN, STATUSPAGE_KEY, WINDOW, statuspage_envelope

VALID_MAIL = {
    "personalizations": [{"to": [{"email": "ada@example.com"}], "custom_args": {"delivery_key": "k1"}}],
    "from": {"email": "cutover@example.com"},
    "subject": "Hello",
    "content": [{"type": "text/plain", "value": "Hi"}],
    "custom_args": {"cutover": "c"},
}


def _mail(fake, body, key=SENDGRID_KEY) -> httpx.Response:
    return httpx.post(f"{fake.url}/v3/mail/send", json=body, headers={"Authorization": f"Bearer {key}"})


def test_sendgrid_fake_accepts_a_valid_mail_with_object_custom_args(sendgrid):
    """A valid body (top-level custom_args as an object, per the spec patch) gets 202 and X-Message-Id."""
    response = _mail(sendgrid, VALID_MAIL)
    assert response.status_code == 202 and response.headers["X-Message-Id"] and sendgrid.violations == []
    assert all(name in response.headers for name in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"categories": ["a", "a"]}, "$.categories"),
        ({"from": {"name": "no address"}}, "$.from"),
        ({"subject": ""}, "$.subject"),
        ({"personalizations": [{"to": [{"email": "not-an-address"}]}]}, "$.personalizations[0].to[0].email"),
    ],
)
def test_sendgrid_fake_refuses_what_the_spec_refuses(sendgrid, change, field):
    """Spec violations get SendGrid's 400 with the offending field."""
    response = _mail(sendgrid, {**VALID_MAIL, **change})
    assert response.status_code == 400 and field in json.dumps(response.json())


def test_sendgrid_fake_refuses_duplicate_addresses(sendgrid):
    """The same address in two personalizations gets 400 (a documented limit beyond the schema)."""
    twice = [{"to": [{"email": "ada@example.com"}]}, {"to": [{"email": "ADA@example.com"}]}]
    assert _mail(sendgrid, {**VALID_MAIL, "personalizations": twice}).status_code == 400


def test_sendgrid_fake_checks_the_bearer_key(sendgrid):
    """A wrong key gets 401 with SendGrid's error body."""
    response = _mail(sendgrid, VALID_MAIL, key="SG.other")
    assert response.status_code == 401 and response.json()["errors"][0]["message"]


def test_sendgrid_fast_mode_only_counts():
    """In fast mode the fake skips validation and records nothing but counters."""
    with FakeSendGrid(api_key=SENDGRID_KEY, fast=True) as fake:
        for _ in range(3):
            assert _mail(fake, {"not": "validated"}).status_code == 202
        assert fake.accepted_requests == 3 and fake.requests == [] and fake.accepted == []


def _slack(fake, method, *, json_body=None, form=None, token=SLACK_TOKEN) -> dict:
    headers = {"Authorization": f"Bearer {token}"}
    if form is not None:
        response = httpx.post(
            f"{fake.api_url}{method}",
            content=urlencode(form),
            headers={**headers, "Content-Type": "application/x-www-form-urlencoded"},
        )
    else:
        response = httpx.post(f"{fake.api_url}{method}", json=json_body, headers=headers)
    return response.json()


def test_slack_fake_accepts_form_bodies(slack):
    """Form-encoded arguments (with URL-encoded JSON blocks) are accepted like JSON ones."""
    blocks = json.dumps([{"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}])
    answer = _slack(slack, "chat.postMessage", form={"channel": "#cutover", "text": "hi", "blocks": blocks})
    assert answer["ok"] is True and answer["ts"]


def test_slack_fake_refuses_undeclared_arguments(slack):
    """An argument chat.postMessage does not declare is refused and noted as a violation."""
    answer = _slack(slack, "chat.postMessage", json_body={"channel": "#cutover", "text": "hi", "colour": "red"})
    assert answer == {
        "ok": False,
        "error": "invalid_arguments",
        "response_metadata": {"messages": ["unknown argument 'colour'"]},
    }
    assert slack.violations


def test_slack_fake_requires_declared_required_arguments(slack):
    """A call missing a required argument (channel) is refused."""
    assert _slack(slack, "chat.postMessage", json_body={"text": "hi"})["error"] == "invalid_arguments"


def test_slack_fake_checks_the_token(slack):
    """A wrong token is invalid_auth; none at all is not_authed."""
    assert _slack(slack, "auth.test", json_body={}, token="xoxb-other")["error"] == "invalid_auth"
    assert httpx.post(f"{slack.api_url}auth.test").json()["error"] == "not_authed"


def test_slack_fake_rate_limit_has_an_integer_retry_after(slack):
    """A scripted rate limit is 429 with an integer Retry-After and error ratelimited."""
    slack.rate_limit_next(retry_after=3)
    response = httpx.post(f"{slack.api_url}auth.test", headers={"Authorization": f"Bearer {SLACK_TOKEN}"})
    assert response.status_code == 429 and response.headers["Retry-After"] == "3"
    assert response.json() == {"ok": False, "error": "ratelimited"}


def test_slack_fake_hides_metadata_unless_asked(slack):
    """conversations.history returns metadata only with include_all_metadata."""
    metadata = {"event_type": "comms_delivery", "event_payload": {"delivery_key": "k"}}
    _slack(slack, "chat.postMessage", json_body={"channel": "#cutover", "text": "hi", "metadata": metadata})
    channel = slack.channel("cutover").id
    plain = _slack(slack, "conversations.history", form={"channel": channel})
    full = _slack(slack, "conversations.history", form={"channel": channel, "include_all_metadata": "1"})
    assert "metadata" not in plain["messages"][0] and full["messages"][0]["metadata"] == metadata


def _incident(fake, body, *, method="POST", path="/incidents", form=False) -> httpx.Response:
    url = f"{fake.api_url}/pages/{PAGE_ID}{path}"
    headers = {"Authorization": f"OAuth {STATUSPAGE_KEY}"}
    if form:
        return httpx.request(
            method,
            url,
            content=urlencode(body),
            headers={**headers, "Content-Type": "application/x-www-form-urlencoded"},
        )
    return httpx.request(method, url, json=body, headers=headers)


def test_statuspage_fake_refuses_an_unknown_status(statuspage):
    """A status outside the spec's enum gets 422."""
    response = _incident(statuspage, {"incident": {"name": "x", "status": "exploded"}})
    assert response.status_code == 422 and "status" in response.json()["message"]


def test_statuspage_fake_refuses_metadata_that_is_not_nested(statuspage):
    """Metadata whose top-level values are not objects gets 422."""
    response = _incident(statuspage, {"incident": {"name": "x", "status": "investigating", "metadata": {"k": "v"}}})
    assert response.status_code == 422


def test_statuspage_fake_accepts_form_bodies(statuspage):
    """Form-encoded incident[...] fields create an incident like JSON does."""
    response = _incident(statuspage, {"incident[name]": "Outage", "incident[status]": "investigating"}, form=True)
    assert response.status_code == 201 and response.json()["name"] == "Outage"


def test_statuspage_fake_answers_with_spec_shaped_incidents(statuspage):
    """Created and updated incidents validate against the spec's Incident schema."""
    created = _incident(statuspage, {"incident": {"name": "x", "status": "investigating", "body": "b"}}).json()
    updated = _incident(
        statuspage, {"incident": {"status": "resolved"}}, method="PATCH", path=f"/incidents/{created['id']}"
    ).json()
    for validator in (statuspage_validator("Incident"), statuspage_validator("Incident", own=True)):
        assert errors_of(validator, created) == [] and errors_of(validator, updated) == []
    assert updated["status"] == "resolved" and len(updated["incident_updates"]) == 2


def test_statuspage_own_schema_accepts_what_comms_sends():
    """The project's schema accepts comms's maintenance create and its update, as the adapter builds them."""
    create = statuspage_envelope("scheduled", window=WINDOW, impact="maintenance", component_status="under_maintenance")
    update = statuspage_envelope("in_progress", incident_id="inc1", component_status="under_maintenance")
    for envelope, schema in ((create, "postPagesPageIdIncidents"), (update, "patchPagesPageIdIncidents")):
        _, _, body = build_incident_request(envelope, PAGE_ID)
        assert errors_of(statuspage_validator(schema, own=True), body) == []


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"status": "exploded"}, "$.incident.status"),
        ({"impact_override": "catastrophic"}, "$.incident.impact_override"),
        ({"components": {COMPONENT: "on_fire"}}, f"$.incident.components.{COMPONENT}"),
        ({"metadata": {"comms": "flat"}}, "$.incident.metadata.comms"),
        ({"scheduled_for": "tomorrow"}, "$.incident.scheduled_for"),
        ({"name": "x" * 256}, "$.incident.name"),
    ],
)
def test_statuspage_own_schema_refuses_what_the_docs_refuse(change, where):
    """Bad enums, flat metadata, a bad timestamp or a too-long name fail the project's schema."""
    body = {"incident": {"name": "Maintenance", "status": "scheduled", **change}}
    assert [path for path, _ in errors_of(statuspage_validator("postPagesPageIdIncidents", own=True), body)] == [where]


def test_statuspage_own_schema_needs_a_name_to_create():
    """A create without incident.name fails; an update without it is fine."""
    body = {"incident": {"status": "investigating"}}
    assert errors_of(statuspage_validator("postPagesPageIdIncidents", own=True), body)
    assert errors_of(statuspage_validator("patchPagesPageIdIncidents", own=True), body) == []


def test_statuspage_fake_lists_spec_shaped_components(statuspage):
    """GET components answers a list the project's ComponentList schema accepts."""
    response = httpx.get(
        f"{statuspage.api_url}/pages/{PAGE_ID}/components", headers={"Authorization": f"OAuth {STATUSPAGE_KEY}"}
    )
    assert response.status_code == 200 and response.json()
    assert errors_of(statuspage_validator("ComponentList", own=True), response.json()) == []


def test_statuspage_fake_checks_the_oauth_key(statuspage):
    """A wrong key gets 401."""
    response = httpx.get(f"{statuspage.api_url}/pages/{PAGE_ID}/components", headers={"Authorization": "OAuth nope"})
    assert response.status_code == 401
