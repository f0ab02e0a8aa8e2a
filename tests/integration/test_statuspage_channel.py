"""StatuspageChannel against the loopback Statuspage fake (bodies validated against the OpenAPI spec)."""

from __future__ import annotations

from datetime import timedelta
from email.utils import format_datetime

import pytest
from fakes.statuspage import FakeStatuspage

from comms.channels.pacing import Pacer
from comms.channels.statuspage import StatuspageChannel
from comms.errors import PermanentChannelError, TransientChannelError

from .builders import (
    COMPONENT,
    PAGE_ID,
    STATUSPAGE_KEY,
    T0,
    WINDOW,
    make_settings,
    statuspage_envelope,
)


@pytest.fixture
def channel(tmp_path, statuspage, clock):
    pacer = Pacer(1.0, monotonic=clock.monotonic, sleep=clock.sleep)
    adapter = StatuspageChannel(make_settings(tmp_path, statuspage=statuspage), pacer=pacer, clock=clock, timeout=2)
    yield adapter
    adapter.close()


def _schedule(channel) -> str:
    receipt = channel.send(statuspage_envelope("scheduled", window=WINDOW, impact="maintenance"))
    assert receipt.provider_id
    return receipt.provider_id


def test_scheduled_creates_a_maintenance_with_its_window(channel, statuspage):
    """A scheduled create posts scheduled_for/scheduled_until in ISO-8601 UTC."""
    _schedule(channel)
    (request,) = statuspage.requests_to("/incidents", "POST")
    incident = request.body["incident"]
    assert (incident["scheduled_for"], incident["scheduled_until"]) == ("2026-12-05T22:00:00Z", "2026-12-06T10:00:00Z")


def test_scheduled_create_sets_the_maintenance_options(channel, statuspage):
    """The create carries status, reminders, auto transitions, components and impact."""
    _schedule(channel)
    incident = statuspage.requests_to("/incidents", "POST")[0].body["incident"]
    assert incident["status"] == "scheduled" and incident["impact_override"] == "maintenance"
    assert incident["scheduled_remind_prior"] is True and incident["scheduled_auto_in_progress"] is False
    assert incident["scheduled_auto_completed"] is False and incident["component_ids"] == [COMPONENT]


def test_create_carries_name_body_and_delivery_key_metadata(channel, statuspage):
    """Name and body come from the content; metadata.comms carries the delivery key."""
    envelope = statuspage_envelope("scheduled", window=WINDOW)
    channel.send(envelope)
    incident = statuspage.requests_to("/incidents", "POST")[0].body["incident"]
    assert incident["name"] == envelope.content.title and incident["body"] == envelope.content.body
    assert incident["metadata"]["comms"]["delivery_key"] == envelope.recipients[0].delivery_key


def test_receipt_names_the_incident(channel, statuspage):
    """provider_id and thread_ref are the incident id."""
    receipt = channel.send(statuspage_envelope("scheduled", window=WINDOW))
    assert receipt.provider_id in statuspage.incidents and receipt.thread_ref == receipt.provider_id


def test_requests_authenticate_with_oauth_key(channel, statuspage):
    """Every request carries Authorization: OAuth <key>."""
    _schedule(channel)
    assert statuspage.requests[0].header("authorization") == f"OAuth {STATUSPAGE_KEY}"


def test_maintenance_lifecycle_updates_one_incident(channel, statuspage):
    """scheduled -> in_progress -> verifying -> completed all land on the same incident id."""
    incident_id = _schedule(channel)
    for status in ("in_progress", "verifying", "completed"):
        receipt = channel.send(statuspage_envelope(status, incident_id=incident_id))
        assert receipt.provider_id == incident_id
    patches = statuspage.requests_to(f"/incidents/{incident_id}", "PATCH")
    assert [p.body["incident"]["status"] for p in patches] == ["in_progress", "verifying", "completed"]
    assert statuspage.incidents[incident_id]["status"] == "completed" and len(statuspage.incidents) == 1


def test_lifecycle_leaves_every_update_readable(channel, statuspage):
    """The incident read back has one update per status, newest first."""
    incident_id = _schedule(channel)
    for status in ("in_progress", "verifying", "completed"):
        channel.send(statuspage_envelope(status, incident_id=incident_id))
    updates = channel.incident(incident_id)["incident_updates"]
    assert [u["status"] for u in updates] == ["completed", "verifying", "in_progress", "scheduled"]


def test_update_with_component_status_sets_the_components(channel, statuspage):
    """in_progress with under_maintenance sends the components map and the page shows it."""
    incident_id = _schedule(channel)
    channel.send(statuspage_envelope("in_progress", incident_id=incident_id, component_status="under_maintenance"))
    patch = statuspage.requests_to(f"/incidents/{incident_id}", "PATCH")[0].body["incident"]
    assert patch["components"] == {COMPONENT: "under_maintenance"}
    assert statuspage.components[COMPONENT]["status"] == "under_maintenance"


def test_reschedule_patches_the_window(channel, statuspage):
    """An update with a window (a reschedule) sends the new scheduled_for/scheduled_until."""
    from dataclasses import replace
    from datetime import timedelta

    incident_id = _schedule(channel)
    later = replace(WINDOW, start=T0 + timedelta(days=7), end=WINDOW.end + timedelta(days=7))
    channel.send(statuspage_envelope("scheduled", incident_id=incident_id, window=later))
    assert statuspage.incidents[incident_id]["scheduled_for"] == "2026-12-12T22:00:00Z"


def test_rollback_creates_a_realtime_incident(channel, statuspage):
    """identified with a component status creates an incident with components and no window."""
    receipt = channel.send(
        statuspage_envelope("identified", impact="minor", component_status="degraded_performance", title="Rolled back")
    )
    incident = statuspage.requests_to("/incidents", "POST")[0].body["incident"]
    assert incident["components"] == {COMPONENT: "degraded_performance"} and "scheduled_for" not in incident
    assert statuspage.incidents[receipt.provider_id]["status"] == "identified"


def test_requests_match_the_spec(channel, statuspage):
    """Creates and updates of a whole lifecycle raise no schema violation in the fake."""
    incident_id = _schedule(channel)
    channel.send(statuspage_envelope("in_progress", incident_id=incident_id, component_status="under_maintenance"))
    channel.send(statuspage_envelope("completed", incident_id=incident_id, component_status="operational"))
    assert statuspage.violations == []


def test_scheduled_create_without_window_is_refused(channel, statuspage):
    """A scheduled maintenance without a window raises PermanentChannelError before any request."""
    with pytest.raises(PermanentChannelError, match="window"):
        channel.send(statuspage_envelope("scheduled"))
    assert statuspage.requests == []


@pytest.mark.parametrize("status", [420, 429])
def test_rate_limits_are_transient_with_retry_after(channel, statuspage, status):
    """420 and 429 raise TransientChannelError with the Retry-After header's wait."""
    statuspage.fail_next(status=status, body={"message": "Rate limited"}, headers={"Retry-After": "7"})
    with pytest.raises(TransientChannelError) as caught:
        _schedule(channel)
    assert caught.value.retry_after == 7 and caught.value.status == status


def test_rate_limit_with_an_http_date_waits_until_it_by_the_injected_clock(channel, statuspage, clock):
    """A Retry-After given as an HTTP-date is the wait from the channel's clock to that date."""
    until = format_datetime(clock() + timedelta(seconds=90), usegmt=True)
    statuspage.fail_next(status=429, body={"message": "Rate limited"}, headers={"Retry-After": until})
    with pytest.raises(TransientChannelError) as caught:
        _schedule(channel)
    assert caught.value.retry_after == 90.0


def test_rate_limit_with_an_unreadable_retry_after_waits_one_second(channel, statuspage):
    """A Retry-After that is neither seconds nor a date is treated like none: a 1 s wait."""
    statuspage.fail_next(status=420, body={"error": "Slow down"}, headers={"Retry-After": "soon"})
    with pytest.raises(TransientChannelError) as caught:
        _schedule(channel)
    assert caught.value.retry_after == 1.0


def test_rate_limit_without_retry_after_waits_one_second(channel, statuspage):
    """A 420 without Retry-After asks for a 1 s wait."""
    statuspage.fail_next(status=420, body={"error": "Slow down"})
    with pytest.raises(TransientChannelError) as caught:
        _schedule(channel)
    assert caught.value.retry_after == 1.0


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_transient(channel, statuspage, status):
    """5xx raises TransientChannelError."""
    statuspage.fail_next(status=status, body=b"<html>oops</html>")
    with pytest.raises(TransientChannelError):
        _schedule(channel)


def test_dropped_connection_is_transient(channel, statuspage):
    """A connection closed without an answer raises TransientChannelError."""
    statuspage.fail_next(drop=True)
    with pytest.raises(TransientChannelError, match="connection failed"):
        _schedule(channel)


def test_answer_slower_than_the_timeout_is_transient(tmp_path, statuspage, clock):
    """An answer later than the client's timeout raises TransientChannelError."""
    pacer = Pacer(1.0, monotonic=clock.monotonic, sleep=clock.sleep)
    channel = StatuspageChannel(make_settings(tmp_path, statuspage=statuspage), pacer=pacer, timeout=0.2)
    statuspage.fail_next(delay=2.0)
    with pytest.raises(TransientChannelError, match="ReadTimeout"):
        _schedule(channel)


@pytest.mark.parametrize("shape", ["message", "error"])
@pytest.mark.parametrize(
    ("status", "remedy"),
    [
        (400, "fix what Statuspage rejected"),
        (401, "set COMMS_STATUSPAGE_API_KEY"),
        (403, f"may manage page {PAGE_ID}"),
        (404, "check COMMS_STATUSPAGE_PAGE_ID"),
        (422, "fix what Statuspage rejected"),
    ],
)
def test_client_errors_are_permanent_with_a_remedy(tmp_path, clock, shape, status, remedy):
    """400/401/403/404/422 raise PermanentChannelError with a remedy, in either error body shape."""
    with FakeStatuspage(api_key=STATUSPAGE_KEY, page_id=PAGE_ID, error_shape=shape) as fake:
        pacer = Pacer(1.0, monotonic=clock.monotonic, sleep=clock.sleep)
        channel = StatuspageChannel(make_settings(tmp_path, statuspage=fake), pacer=pacer)
        fake.fail_with(status, "is invalid", field="name")
        with pytest.raises(PermanentChannelError) as caught:
            _schedule(channel)
    assert remedy in caught.value.remedy and "name" in str(caught.value) and "is invalid" in str(caught.value)


def test_error_shape_with_field_lists_is_readable(tmp_path, clock):
    """{"error": {field: [messages]}} becomes "field message" in the error."""
    with FakeStatuspage(api_key=STATUSPAGE_KEY, page_id=PAGE_ID) as fake:
        channel = StatuspageChannel(make_settings(tmp_path, statuspage=fake), pacer=Pacer(0))
        fake.fail_next(status=422, body={"error": {"scheduled_for": ["can't be blank", "is invalid"]}})
        with pytest.raises(PermanentChannelError, match="scheduled_for can't be blank, is invalid"):
            _schedule(channel)


def test_wrong_key_is_permanent(tmp_path, statuspage, clock):
    """A key the page does not accept (fake state, not scripted) gives the API key remedy."""
    settings = make_settings(tmp_path, statuspage=statuspage, statuspage_api_key="wrong")
    with pytest.raises(PermanentChannelError, match="COMMS_STATUSPAGE_API_KEY"):
        _schedule(StatuspageChannel(settings, pacer=Pacer(0)))


def test_unknown_incident_is_permanent_404(channel, statuspage):
    """Updating an incident that does not exist raises PermanentChannelError (404)."""
    with pytest.raises(PermanentChannelError) as caught:
        channel.send(statuspage_envelope("in_progress", incident_id="missing00001"))
    assert caught.value.status == 404


def test_requests_are_paced_one_per_second(channel, statuspage, clock):
    """Back-to-back requests wait 1 s each on the injected clock; the first does not wait."""
    incident_id = _schedule(channel)
    channel.send(statuspage_envelope("in_progress", incident_id=incident_id))
    channel.send(statuspage_envelope("verifying", incident_id=incident_id))
    assert clock.sleeps == [1.0, 1.0]


def test_pacing_counts_time_already_passed(channel, statuspage, clock):
    """A request 0.4 s after the previous one waits only the remaining 0.6 s."""
    incident_id = _schedule(channel)
    clock.advance(0.4)
    channel.send(statuspage_envelope("in_progress", incident_id=incident_id))
    assert clock.sleeps == [pytest.approx(0.6)]


def test_reconcile_update_that_landed_is_sent(channel, statuspage):
    """An update whose delivery key is on the incident reconciles as sent."""
    incident_id = _schedule(channel)
    update = statuspage_envelope("in_progress", incident_id=incident_id)
    channel.send(update)
    verdict = channel.reconcile(update)
    assert verdict.state == "sent" and verdict.receipt.provider_id == incident_id


def test_reconcile_update_that_did_not_land_is_not_sent(channel, statuspage):
    """An update not yet on the incident (latest update differs) reconciles as not_sent."""
    incident_id = _schedule(channel)
    assert channel.reconcile(statuspage_envelope("in_progress", incident_id=incident_id)).state == "not_sent"


def test_reconcile_create_that_landed_is_sent(channel, statuspage):
    """A maintenance created with this key is found among upcoming incidents by its metadata."""
    envelope = statuspage_envelope("scheduled", window=WINDOW)
    receipt = channel.send(envelope)
    verdict = channel.reconcile(envelope)
    assert verdict.state == "sent" and verdict.receipt.provider_id == receipt.provider_id


def test_reconcile_create_that_did_not_land_is_not_sent(channel, statuspage):
    """With no matching incident, a create reconciles as not_sent."""
    assert channel.reconcile(statuspage_envelope("scheduled", window=WINDOW)).state == "not_sent"


def test_reconcile_realtime_create_reads_unresolved(channel, statuspage):
    """A rollback incident is looked for among unresolved incidents."""
    envelope = statuspage_envelope("identified", component_status="degraded_performance", title="Rolled back")
    channel.send(envelope)
    assert channel.reconcile(envelope).state == "sent"
    assert statuspage.requests_to("/incidents/unresolved", "GET")


def test_reconcile_when_the_page_refuses_is_unknown(channel, statuspage):
    """When the page cannot be read (401), reconcile answers unknown."""
    statuspage.fail_with(401, "Could not authenticate", count=2)
    assert channel.reconcile(statuspage_envelope("scheduled", window=WINDOW)).state == "unknown"


def test_components_lists_the_page_components(channel, statuspage):
    """components() returns the page's components."""
    assert {c["id"] for c in channel.components()} == set(statuspage.components)
