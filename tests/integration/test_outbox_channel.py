"""OutboxChannel: the dry run writes real .eml files and the exact JSON payloads, atomically and idempotently."""

from __future__ import annotations

import email
import json
from email.policy import default

import pytest
from icalendar import Calendar

from comms.channels.base import ChannelKind
from comms.channels.factory import outbox_channel
from comms.channels.outbox import OutboxChannel
from comms.channels.slack import build_post_args
from comms.errors import PermanentChannelError

from .builders import (
    CUTOVER,
    PAGE_ID,
    T0,
    WINDOW,
    email_envelope,
    make_settings,
    slack_envelope,
    statuspage_envelope,
)


@pytest.fixture
def outbox(tmp_path, clock):
    settings = make_settings(tmp_path, email_from_name="Cutover comms", email_reply_to=None, statuspage_page_id=PAGE_ID)

    def make(kind: ChannelKind) -> OutboxChannel:
        return outbox_channel(kind, settings, clock=clock)

    return make


def _eml(path):
    return email.message_from_bytes(path.read_bytes(), policy=default)


def test_email_is_a_parseable_eml_with_text_and_html(outbox):
    """The .eml parses and holds text/plain and text/html alternatives of the content."""
    channel = outbox(ChannelKind.EMAIL)
    envelope = email_envelope(2, calendar=None)
    channel.send(envelope)
    message = _eml(channel.path_for(envelope))
    assert message.get_content_type() == "multipart/alternative"
    text, html = (message.get_body((kind,)).get_content().replace("\r\n", "\n") for kind in ("plain", "html"))
    assert text == envelope.content.text and html.strip() == envelope.content.html


def test_email_headers_name_sender_recipient_and_subject(outbox):
    """From, To (the batch's first recipient alone, as that person receives it) and Subject are set."""
    channel = outbox(ChannelKind.EMAIL)
    envelope = email_envelope(3, calendar=None)
    channel.send(envelope)
    message = _eml(channel.path_for(envelope))
    assert [a.addr_spec for a in message["To"].addresses] == [envelope.recipients[0].address]
    assert message["From"].addresses[0].addr_spec == "cutover@example.com"
    assert message["Subject"] == envelope.content.subject
    assert message["X-Comms-Recipients"] == "3"


def test_small_batch_has_one_eml_per_recipient(outbox):
    """Beside a batch of 3, a folder holds 3 .eml files, each addressed to its one recipient with its key."""
    channel = outbox(ChannelKind.EMAIL)
    envelope = email_envelope(3, calendar=None)
    channel.send(envelope)
    files = sorted(channel.path_for(envelope).with_suffix("").glob("*.eml"))
    assert len(files) == 3
    for path, recipient in zip(files, envelope.recipients, strict=True):
        message = _eml(path)
        assert [a.addr_spec for a in message["To"].addresses] == [recipient.address]
        assert str(message["X-Comms-Delivery-Key"]).strip() == recipient.delivery_key
        assert message.get_body(("plain",)).get_content().replace("\r\n", "\n") == envelope.content.text
    assert len({_eml(path)["Message-ID"] for path in files}) == 3


def test_large_batch_has_a_sample_and_the_sendgrid_request(outbox, tmp_path):
    """A batch of 21 gets one sample .eml and the Mail Send body SendGrid would receive, not 21 files."""
    from comms.channels.outbox import SENDGRID_BODY_FILE
    from comms.channels.sendgrid import SendGridChannel

    channel = outbox(ChannelKind.EMAIL)
    envelope = email_envelope(21)
    channel.send(envelope)
    folder = channel.path_for(envelope).with_suffix("")
    assert [p.name for p in folder.iterdir()] == [SENDGRID_BODY_FILE]
    body = json.loads((folder / SENDGRID_BODY_FILE).read_text())
    settings = make_settings(
        tmp_path, email_from_name="Cutover comms", email_reply_to=None, sendgrid_api_key="SG.test-not-a-key"
    )
    expected = SendGridChannel(settings).build_request(envelope)
    assert body["personalizations"] == expected["personalizations"] and len(body["personalizations"]) == 21
    assert {k: v for k, v in body.items() if k != "attachments"} == {
        k: v for k, v in expected.items() if k != "attachments"
    }
    assert body["attachments"][0]["type"].startswith("text/calendar")
    assert "SG.test-not-a-key" not in (folder / SENDGRID_BODY_FILE).read_text()


def test_email_with_calendar_attaches_the_ics(outbox):
    """With a calendar, the .eml carries a text/calendar attachment with the window in UTC."""
    channel = outbox(ChannelKind.EMAIL)
    envelope = email_envelope(1)
    channel.send(envelope)
    message = _eml(channel.path_for(envelope))
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_content_type() == "text/calendar"
    (event,) = Calendar.from_ical(attachment.get_payload(decode=True)).walk("VEVENT")
    assert event.decoded("DTSTART") == T0 and event.decoded("DTEND") == WINDOW.end


def test_email_file_is_named_by_occurrence_audience_channel_and_batch(outbox, tmp_path):
    """Email files live under <outbox>/<cutover>/ named occurrence.audience.email.batch-<id>.eml."""
    channel = outbox(ChannelKind.EMAIL)
    receipt = channel.send(email_envelope(1))
    relative = receipt.provider_id.removeprefix("outbox:")
    assert relative.startswith(f"{CUTOVER}/advance-notice.end-users.email.batch-") and relative.endswith(".eml")
    assert (tmp_path / "outbox" / relative).is_file()


def test_each_email_batch_gets_its_own_file(outbox, tmp_path):
    """Two batches of one occurrence are two files."""
    channel = outbox(ChannelKind.EMAIL)
    channel.send(email_envelope(2, first=0))
    channel.send(email_envelope(2, first=2))
    assert len(list((tmp_path / "outbox" / CUTOVER).glob("*.eml"))) == 2


def test_email_batch_over_1000_is_refused(outbox):
    """The outbox batches email like SendGrid: more than 1000 recipients is refused."""
    with pytest.raises(PermanentChannelError):
        outbox(ChannelKind.EMAIL).send(email_envelope(1001))


def test_slack_file_is_the_post_payload(outbox):
    """The Slack JSON is exactly what chat.postMessage would receive."""
    channel = outbox(ChannelKind.SLACK)
    envelope = slack_envelope(thread_ref="1764972000.000100", broadcast=True)
    channel.send(envelope)
    assert json.loads(channel.path_for(envelope).read_text()) == build_post_args(envelope)


def test_slack_dry_run_gives_a_thread_ref(outbox):
    """A dry-run top-level post returns a thread_ref later posts can thread under."""
    receipt = outbox(ChannelKind.SLACK).send(slack_envelope())
    assert receipt.thread_ref and receipt.thread_ref.startswith("outbox-")


def test_statuspage_create_file_is_the_post_request(outbox):
    """A status-page create is written as the POST /pages/{id}/incidents request."""
    channel = outbox(ChannelKind.STATUSPAGE)
    envelope = statuspage_envelope("scheduled", window=WINDOW)
    receipt = channel.send(envelope)
    request = json.loads(channel.path_for(envelope).read_text())
    assert request["method"] == "POST" and request["url"].endswith(f"/pages/{PAGE_ID}/incidents")
    assert request["json"]["incident"]["scheduled_for"] == "2026-12-05T22:00:00Z" and receipt.thread_ref


def test_statuspage_update_file_is_the_patch_request(outbox):
    """An update of a dry-run incident is written as PATCH of that incident id."""
    channel = outbox(ChannelKind.STATUSPAGE)
    created = channel.send(statuspage_envelope("scheduled", window=WINDOW))
    update = statuspage_envelope("in_progress", incident_id=created.thread_ref)
    channel.send(update)
    request = json.loads(channel.path_for(update).read_text())
    assert request["method"] == "PATCH" and request["url"].endswith(f"/incidents/{created.thread_ref}")


def test_same_envelope_twice_is_one_file(outbox, tmp_path):
    """Sending the same envelope again rewrites the same file (idempotent)."""
    channel = outbox(ChannelKind.SLACK)
    first = channel.send(slack_envelope())
    second = channel.send(slack_envelope())
    assert first == second and len(list((tmp_path / "outbox" / CUTOVER).iterdir())) == 1


def test_writes_leave_no_temporary_files(outbox, tmp_path):
    """Atomic writes leave only the final files behind."""
    for kind, envelope in (
        (ChannelKind.EMAIL, email_envelope(2)),
        (ChannelKind.SLACK, slack_envelope()),
        (ChannelKind.STATUSPAGE, statuspage_envelope("scheduled", window=WINDOW)),
    ):
        outbox(kind).send(envelope)
    names = [p.name for p in (tmp_path / "outbox" / CUTOVER).rglob("*")]
    files = [p for p in (tmp_path / "outbox" / CUTOVER).iterdir() if p.is_file()]
    assert len(files) == 3 and not any(n.startswith(".") or n.endswith(".tmp") for n in names)


def test_reconcile_is_not_sent_before_and_sent_after(outbox):
    """Reconcile answers not_sent until the file exists, then sent with the same receipt."""
    channel = outbox(ChannelKind.SLACK)
    envelope = slack_envelope()
    assert channel.reconcile(envelope).state == "not_sent"
    receipt = channel.send(envelope)
    verdict = channel.reconcile(envelope)
    assert verdict.state == "sent" and verdict.receipt == receipt


def test_email_reconcile_after_send_is_sent(outbox):
    """An email batch whose .eml exists reconciles as sent."""
    channel = outbox(ChannelKind.EMAIL)
    envelope = email_envelope(2)
    channel.send(envelope)
    assert channel.reconcile(envelope).state == "sent"


def test_occurrence_keys_become_safe_file_names(outbox):
    """'#' and '@' of occurrence keys do not reach file names."""
    channel = outbox(ChannelKind.SLACK)
    receipt = channel.send(slack_envelope(occurrence="traffic-stage@50"))
    assert "@" not in receipt.provider_id.split("/", 1)[1].split(".")[0]


def test_outbox_is_a_dry_run(outbox):
    """The outbox marks itself dry_run and batches email by 1000, others by 1."""
    assert outbox(ChannelKind.EMAIL).dry_run and outbox(ChannelKind.EMAIL).max_batch == 1000
    assert outbox(ChannelKind.SLACK).max_batch == 1
