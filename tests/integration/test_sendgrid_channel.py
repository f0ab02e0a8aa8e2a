"""SendGridChannel against the loopback SendGrid fake (requests validated against the v3 spec)."""

from __future__ import annotations

import base64
import dataclasses
import socket
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from icalendar import Calendar

from comms.channels.sendgrid import SendGridChannel
from comms.errors import PermanentChannelError, TransientChannelError

from .builders import CUTOVER, T0, WINDOW, email_envelope, make_settings, recipients


@pytest.fixture
def channel(tmp_path, sendgrid, clock):
    return SendGridChannel(make_settings(tmp_path, sendgrid=sendgrid), clock=clock, timeout=2)


def test_send_puts_each_recipient_in_its_own_personalization(channel, sendgrid):
    """Three recipients give one request with three personalizations of one address each."""
    channel.send(email_envelope(3))
    (body,) = sendgrid.accepted
    assert [p["to"] for p in body["personalizations"]] == [
        [{"email": f"user{n}@example.com", "name": f"User {n}"}] for n in range(3)
    ]


def test_each_personalization_carries_its_delivery_key(channel, sendgrid):
    """custom_args of every personalization holds that recipient's delivery key."""
    envelope = email_envelope(3)
    channel.send(envelope)
    keys = [p["custom_args"]["delivery_key"] for p in sendgrid.accepted[0]["personalizations"]]
    assert keys == [r.delivery_key for r in envelope.recipients]


def test_each_personalization_carries_its_delivery_id_when_the_row_has_one(channel, sendgrid):
    """The row id goes beside the key (as a string, as custom_args take), so events find the row by id."""
    envelope = email_envelope(2)
    envelope = dataclasses.replace(
        envelope, recipients=(envelope.recipients[0]._replace(delivery_id=41), envelope.recipients[1])
    )
    channel.send(envelope)
    args = [p["custom_args"] for p in sendgrid.accepted[0]["personalizations"]]
    assert args[0]["delivery_id"] == "41" and "delivery_id" not in args[1]


def test_top_level_custom_args_name_cutover_and_occurrence(channel, sendgrid):
    """Top-level custom_args carry the cutover and the occurrence."""
    channel.send(email_envelope(1))
    args = sendgrid.accepted[0]["custom_args"]
    assert args["cutover"] == CUTOVER and args["occurrence"] == "advance-notice"


def test_send_stores_x_message_id_as_provider_id(channel, sendgrid):
    """The receipt's provider_id is SendGrid's X-Message-Id."""
    receipt = channel.send(email_envelope(2))
    assert receipt.provider_id and receipt.provider_id.startswith("fake-")


def test_send_has_text_then_html_alternatives(channel, sendgrid):
    """Content is text/plain first, then text/html, as SendGrid requires."""
    channel.send(email_envelope(1))
    assert [c["type"] for c in sendgrid.accepted[0]["content"]] == ["text/plain", "text/html"]


def test_send_uses_sender_and_reply_to_from_settings(channel, sendgrid):
    """from and reply_to come from the settings."""
    channel.send(email_envelope(1))
    body = sendgrid.accepted[0]
    assert body["from"] == {"email": "cutover@example.com", "name": "Cutover communications"}
    assert body["reply_to"] == {"email": "support@example.com"}


def test_categories_name_cutover_message_and_audience(channel, sendgrid):
    """Categories name the cutover, message and audience, within SendGrid's limits."""
    channel.send(email_envelope(1))
    categories = sendgrid.accepted[0]["categories"]
    assert categories == [f"cutover:{CUTOVER}", "message:advance-notice", "audience:end-users"]


def test_bearer_key_is_sent(channel, sendgrid):
    """The request authenticates with Authorization: Bearer <key>."""
    channel.send(email_envelope(1))
    assert sendgrid.requests[0].header("authorization").startswith("Bearer SG.")


def test_batch_of_1000_is_one_valid_request(channel, sendgrid):
    """A full batch of 1000 recipients is accepted in one request."""
    channel.send(email_envelope(1000))
    assert sendgrid.accepted_recipients == 1000 and sendgrid.violations == []


def test_batch_of_1001_is_refused_before_any_request(channel, sendgrid):
    """More than max_batch recipients raise PermanentChannelError without calling SendGrid."""
    with pytest.raises(PermanentChannelError, match="at most 1000"):
        channel.send(email_envelope(1001))
    assert sendgrid.requests == []


def test_2500_recipients_in_three_envelopes_make_three_valid_requests(channel, sendgrid):
    """Batches of 1000, 1000 and 500 give three valid requests carrying all 2500 distinct keys."""
    for first, count in ((0, 1000), (1000, 1000), (2000, 500)):
        channel.send(email_envelope(count, first=first))
    sizes = [len(body["personalizations"]) for body in sendgrid.accepted]
    keys = {p["custom_args"]["delivery_key"] for body in sendgrid.accepted for p in body["personalizations"]}
    assert sizes == [1000, 1000, 500] and len(keys) == 2500 and sendgrid.violations == []


def test_duplicate_address_is_refused(channel, sendgrid):
    """The same address twice in one envelope is refused (SendGrid would answer 400)."""
    people = recipients(2) + recipients(1)
    with pytest.raises(PermanentChannelError, match="appears twice"):
        channel.send(email_envelope(people=people))


def test_names_with_commas_are_cleaned_for_sendgrid(channel, sendgrid):
    """Display names lose ';' and ',' which SendGrid refuses."""
    person = recipients(1)[0]
    renamed = type(person)(person.address, person.delivery_key, name="Lovelace, Ada; Countess")
    channel.send(email_envelope(people=(renamed,)))
    assert sendgrid.accepted[0]["personalizations"][0]["to"][0]["name"] == "Lovelace Ada Countess"


def _invite(body) -> Calendar:
    (attachment,) = body["attachments"]
    assert attachment["filename"].endswith(".ics") and attachment["type"].startswith("text/calendar")
    return Calendar.from_ical(base64.b64decode(attachment["content"]))


def test_calendar_invite_is_a_parseable_ics(channel, sendgrid):
    """The attached .ics parses with icalendar and has METHOD and one VEVENT with the window's UID."""
    channel.send(email_envelope(1))
    calendar = _invite(sendgrid.accepted[0])
    (event,) = calendar.walk("VEVENT")
    assert str(calendar["METHOD"]) in ("PUBLISH", "REQUEST") and str(event["UID"]) == WINDOW.uid


def test_calendar_invite_has_the_window_in_utc(channel, sendgrid):
    """DTSTART and DTEND are the window's start and end, in UTC."""
    channel.send(email_envelope(1))
    (event,) = _invite(sendgrid.accepted[0]).walk("VEVENT")
    start, end = event.decoded("DTSTART"), event.decoded("DTEND")
    assert (start, end) == (T0, WINDOW.end) and start.utcoffset().total_seconds() == 0


def test_calendar_invite_has_summary_and_description(channel, sendgrid):
    """SUMMARY and DESCRIPTION come from the window."""
    channel.send(email_envelope(1))
    (event,) = _invite(sendgrid.accepted[0]).walk("VEVENT")
    assert str(event["SUMMARY"]) == WINDOW.title and str(event["DESCRIPTION"]) == WINDOW.description


def test_no_attachment_without_calendar(channel, sendgrid):
    """An envelope without a calendar sends no attachment."""
    channel.send(email_envelope(1, calendar=None))
    assert "attachments" not in sendgrid.accepted[0]


def test_429_is_transient_with_retry_after_from_rate_limit_reset(channel, sendgrid, clock):
    """429 raises TransientChannelError waiting until X-RateLimit-Reset (by the injected clock)."""
    sendgrid.rate_limit_next(reset_at=int(clock().timestamp()) + 42)
    with pytest.raises(TransientChannelError) as caught:
        channel.send(email_envelope(1))
    assert caught.value.retry_after == 42 and caught.value.status == 429


def test_429_with_an_http_date_retry_after_waits_until_it_by_the_injected_clock(channel, sendgrid, clock):
    """A Retry-After given as an HTTP-date is the wait from the channel's clock to that date."""
    until = format_datetime(clock() + timedelta(seconds=30), usegmt=True)
    sendgrid.fail_next(
        status=429, body={"errors": [{"field": None, "message": "too many"}]}, headers={"Retry-After": until}
    )
    with pytest.raises(TransientChannelError) as caught:
        channel.send(email_envelope(1))
    assert caught.value.retry_after == 30.0


def test_429_with_retry_after_seconds_wins_over_rate_limit_reset(channel, sendgrid, clock):
    """Retry-After in seconds is the wait even when X-RateLimit-Reset says otherwise."""
    reset = str(int(clock().timestamp()) + 600)
    headers = {"Retry-After": "12", "X-RateLimit-Reset": reset}
    sendgrid.fail_next(status=429, body={"errors": [{"field": None, "message": "too many"}]}, headers=headers)
    with pytest.raises(TransientChannelError) as caught:
        channel.send(email_envelope(1))
    assert caught.value.retry_after == 12.0


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_transient(channel, sendgrid, status):
    """5xx answers raise TransientChannelError."""
    sendgrid.fail_next(status=status, body={"errors": [{"field": None, "message": "oops"}]})
    with pytest.raises(TransientChannelError):
        channel.send(email_envelope(1))


@pytest.mark.parametrize(
    ("status", "message", "remedy"),
    [
        (400, "The from email does not contain a valid address.", "fix the message"),
        (401, "The provided authorization grant is invalid", "set COMMS_SENDGRID_API_KEY to a valid key"),
        (
            403,
            "The from address does not match a verified Sender Identity.",
            "mail.send scope or verify the sender cutover@example.com",
        ),
        (413, "Payload Too Large", "30 MB"),
    ],
)
def test_client_errors_are_permanent_with_a_remedy(channel, sendgrid, status, message, remedy):
    """400/401/403/413 raise PermanentChannelError naming the fix and quoting SendGrid's message."""
    sendgrid.fail_next(status=status, body={"errors": [{"field": None, "message": message}]})
    with pytest.raises(PermanentChannelError) as caught:
        channel.send(email_envelope(1))
    assert remedy in caught.value.remedy and message in str(caught.value) and caught.value.status == status


def test_wrong_key_is_permanent_401(tmp_path, sendgrid, clock):
    """A key SendGrid does not know gives the COMMS_SENDGRID_API_KEY remedy."""
    channel = SendGridChannel(make_settings(tmp_path, sendgrid=sendgrid, sendgrid_api_key="SG.wrong"), clock=clock)
    with pytest.raises(PermanentChannelError, match="COMMS_SENDGRID_API_KEY"):
        channel.send(email_envelope(1))


def test_dropped_connection_is_transient(channel, sendgrid):
    """A connection closed without an answer raises TransientChannelError."""
    sendgrid.fail_next(drop=True)
    with pytest.raises(TransientChannelError, match="connection failed"):
        channel.send(email_envelope(1))


def test_answer_slower_than_the_timeout_is_transient(tmp_path, sendgrid, clock):
    """An answer later than the client's timeout raises TransientChannelError."""
    channel = SendGridChannel(make_settings(tmp_path, sendgrid=sendgrid), clock=clock, timeout=0.2)
    sendgrid.fail_next(delay=2.0)
    with pytest.raises(TransientChannelError):
        channel.send(email_envelope(1))


def test_refused_connection_is_transient(tmp_path, clock):
    """No server listening (urllib URLError) raises TransientChannelError."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = make_settings(tmp_path, sendgrid_api_key="SG.x", sendgrid_host=f"http://127.0.0.1:{port}")
    with pytest.raises(TransientChannelError, match="URLError"):
        SendGridChannel(settings, clock=clock).send(email_envelope(1))


def test_reconcile_is_unknown(channel):
    """SendGrid cannot be queried by delivery key: reconcile answers unknown."""
    assert channel.reconcile(email_envelope(1)).state == "unknown"


def test_scopes_lists_the_key_scopes(channel):
    """scopes() returns what GET /v3/scopes answers."""
    assert "mail.send" in channel.scopes()


def test_calendar_stamp_comes_from_the_injected_clock(channel, sendgrid, clock):
    """DTSTAMP is the injected clock's time, not the machine's."""
    channel.send(email_envelope(1))
    (event,) = _invite(sendgrid.accepted[0]).walk("VEVENT")
    assert event.decoded("DTSTAMP") == clock().replace(microsecond=0) and clock().tzinfo is UTC
    assert isinstance(event.decoded("DTSTAMP"), datetime)
