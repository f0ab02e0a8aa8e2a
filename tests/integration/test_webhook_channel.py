"""WebhookChannel against a loopback receiver that verifies signatures and dedupes on the delivery key."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import time
from datetime import timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from comms.bootstrap import bootstrap
from comms.channels.base import ChannelKind
from comms.channels.factory import build_channels, close_channels, outbox_channel
from comms.channels.webhook import WebhookChannel, encode_body, signature
from comms.cli import app
from comms.errors import PermanentChannelError, TransientChannelError
from comms.plan.loader import load_plan
from comms.reports.readiness import check_readiness
from comms.services.scheduling import schedule_cutover
from comms.store.tables import DeliveryRow

from .builders import CUTOVER, NOW, T0, WEBHOOK_SECRET, make_settings, webhook_envelope, write_plan


@pytest.fixture
def channel(tmp_path, webhook, clock):
    adapter = WebhookChannel(make_settings(tmp_path, webhook=webhook), clock=clock, timeout=2)
    yield adapter
    adapter.close()


def write_webhook_plan(root: Path, urls: list[str]) -> Path:
    """The small test plan plus an ``integrations`` audience reached by webhook, sent the advance notice."""
    write_plan(root)
    listed = ", ".join(json.dumps(url) for url in urls)
    (root / "audiences" / "integrations.yaml").write_text(
        "title: Integrations\ndescription: Systems that follow the cutover.\ntimezone: UTC\n"
        f"channels:\n  webhook:\n    urls: [{listed}]\n",
        encoding="utf-8",
    )
    schedule = root / "schedules" / "cutover.yaml"
    text = schedule.read_text(encoding="utf-8")
    text = text.replace("audiences: [end-users, engineering]", "audiences: [end-users, engineering, integrations]")
    text = text.replace("channels: [email, slack, statuspage]", "channels: [email, slack, statuspage, webhook]")
    schedule.write_text(text, encoding="utf-8")
    return root


# one delivery ---------------------------------------------------------------------------------


def test_signed_delivery_is_received_once(channel, webhook):
    """A delivery reaches the receiver once, its signature verifying with the shared secret."""
    receipt = channel.send(webhook_envelope(webhook.url_for()))
    assert len(webhook.deliveries) == 1 and not webhook.rejected and not webhook.violations
    assert receipt.provider_id == "req-1"


def test_payload_names_the_send_and_carries_the_content(channel, webhook, clock):
    """The JSON holds cutover, message, occurrence, audience, due and sent times (UTC), subject, text and key."""
    envelope = webhook_envelope(webhook.url_for())
    channel.send(envelope)
    (body,) = webhook.deliveries
    assert body == {
        "event": "delivery",
        "delivery_key": envelope.recipients[0].delivery_key,
        "cutover": CUTOVER,
        "message": "advance-notice",
        "occurrence": "advance-notice",
        "audience": "engineering",
        "due_at": "2026-12-03T22:00:00Z",
        "sent_at": clock().strftime("%Y-%m-%dT%H:%M:%SZ"),
        "subject": envelope.content.subject,
        "text": envelope.content.text,
    }


def test_headers_carry_key_timestamp_and_signature_of_the_exact_body(channel, webhook, clock):
    """X-Comms-Signature is sha256=HMAC of '<X-Comms-Timestamp>.<raw body>'; the key header matches the body."""
    envelope = webhook_envelope(webhook.url_for())
    channel.send(envelope)
    (request,) = webhook.requests
    stamp = request.header("X-Comms-Timestamp")
    expected = hmac.new(WEBHOOK_SECRET.encode(), f"{stamp}.".encode() + request.raw, hashlib.sha256).hexdigest()
    assert stamp == str(int(clock().timestamp())) and request.header("X-Comms-Signature") == f"sha256={expected}"
    assert request.header("X-Comms-Delivery-Key") == envelope.recipients[0].delivery_key
    assert request.header("Content-Type") == "application/json" and request.header("X-Comms-Event") == "delivery"


def test_a_resend_reuses_the_delivery_key_so_the_receiver_dedupes_it(channel, webhook, clock):
    """Sending the same envelope again (a retry) carries the same key: the receiver keeps one delivery."""
    envelope = webhook_envelope(webhook.url_for())
    channel.send(envelope)
    clock.advance(60)
    channel.send(envelope)
    assert len(webhook.requests) == 2 and webhook.keys() == [envelope.recipients[0].delivery_key]
    assert webhook.duplicates == webhook.keys()


def test_wrong_secret_is_detected_by_the_receiver(tmp_path, webhook, clock):
    """A sender with another secret is refused 401 by the receiver: permanent, naming COMMS_WEBHOOK_SECRET."""
    settings = make_settings(tmp_path, webhook_secret="not-the-receivers-secret-0123456789abcdef")
    with pytest.raises(PermanentChannelError) as caught:
        WebhookChannel(settings, clock=clock).send(webhook_envelope(webhook.url_for()))
    assert caught.value.status == 401 and "COMMS_WEBHOOK_SECRET" in caught.value.remedy
    assert webhook.rejected == ["signature mismatch"] and not webhook.deliveries


def test_a_replayed_request_outside_the_window_is_refused(channel, webhook, clock):
    """The same signed bytes posted again after the replay window are refused by a receiver checking the stamp."""
    channel.send(webhook_envelope(webhook.url_for()))
    (original,) = webhook.requests
    clock.advance(webhook.replay_window + 1)
    headers = {name: original.header(name) or "" for name in ("X-Comms-Timestamp", "X-Comms-Signature")}
    replay = httpx.post(
        webhook.url_for(), content=original.raw, headers={**headers, "Content-Type": "application/json"}
    )
    assert replay.status_code == 401 and "replay window" in webhook.rejected[0]


def test_signature_helper_matches_the_documented_recipe():
    """signature() is the hex HMAC-SHA256 of '<timestamp>.<body>', prefixed sha256=."""
    body = encode_body({"a": "é"})
    digest = hmac.new(b"k", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature(b"k", 1700000000, body) == f"sha256={digest}" and body == '{"a":"é"}'.encode()


# failures ------------------------------------------------------------------------------------


def test_429_with_retry_after_is_transient_with_its_wait(channel, webhook):
    """A 429 with Retry-After: 7 raises TransientChannelError(retry_after=7)."""
    webhook.fail_next(status=429, headers={"Retry-After": "7"})
    with pytest.raises(TransientChannelError) as caught:
        channel.send(webhook_envelope(webhook.url_for()))
    assert caught.value.retry_after == 7.0 and caught.value.status == 429 and not caught.value.maybe_delivered


def test_retry_after_as_an_http_date_is_measured_from_the_clock(channel, webhook, clock):
    """A Retry-After HTTP-date 90 s after the clock's now gives retry_after 90."""
    webhook.fail_next(
        status=503, headers={"Retry-After": format_datetime(clock() + timedelta(seconds=90), usegmt=True)}
    )
    with pytest.raises(TransientChannelError) as caught:
        channel.send(webhook_envelope(webhook.url_for()))
    assert caught.value.retry_after == pytest.approx(90.0, abs=1.0)


def test_500_is_transient(channel, webhook):
    """A 500 raises TransientChannelError without a wait of its own (the dispatcher backs off)."""
    webhook.fail_next(status=500, body="boom")
    with pytest.raises(TransientChannelError) as caught:
        channel.send(webhook_envelope(webhook.url_for()))
    assert caught.value.status == 500 and caught.value.retry_after is None


def test_400_is_permanent(channel, webhook):
    """A 400 raises PermanentChannelError quoting the receiver's answer."""
    webhook.fail_next(status=400, body={"error": "unknown cutover"})
    with pytest.raises(PermanentChannelError) as caught:
        channel.send(webhook_envelope(webhook.url_for()))
    assert caught.value.status == 400 and "unknown cutover" in str(caught.value)


def test_a_redirect_is_not_followed_and_is_permanent(channel, webhook):
    """A 308 is not followed (no second POST) and names the URL to point the audience at."""
    webhook.fail_next(status=308, headers={"Location": "https://hooks.example.com/moved"})
    with pytest.raises(PermanentChannelError) as caught:
        channel.send(webhook_envelope(webhook.url_for()))
    assert "https://hooks.example.com/moved" in caught.value.remedy and len(webhook.requests) == 1


def test_timeout_may_have_delivered_and_reconciles_as_unknown(tmp_path, webhook, clock):
    """An answer later than the timeout is transient with maybe_delivered; reconcile cannot tell (unknown)."""
    channel = WebhookChannel(make_settings(tmp_path, webhook=webhook), clock=clock, timeout=0.2)
    webhook.fail_next(delay=2.0)
    envelope = webhook_envelope(webhook.url_for())
    with pytest.raises(TransientChannelError) as caught:
        channel.send(envelope)
    assert caught.value.maybe_delivered and channel.reconcile(envelope).state == "unknown"
    channel.close()


def test_refused_connection_is_transient_and_not_delivered(channel):
    """Nobody listening: transient, and nothing can have been delivered."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(TransientChannelError) as caught:
        channel.send(webhook_envelope(f"http://127.0.0.1:{port}/hooks"))
    assert not caught.value.maybe_delivered


def test_timeout_in_the_engine_records_the_delivery_uncertain(tmp_path, webhook, clock):
    """The dispatcher asks reconcile after a timeout; 'unknown' leaves the delivery uncertain, not re-sent."""
    settings = make_settings(tmp_path, webhook=webhook)
    channels = build_channels(settings, clock=clock, sleep=clock.sleep)
    channels[ChannelKind.WEBHOOK] = WebhookChannel(settings, clock=clock, timeout=0.2)
    services = bootstrap(settings, clock=clock, sleep=clock.sleep, channels=channels)
    plan = load_plan(write_webhook_plan(tmp_path / "plan", [webhook.url_for()]))
    schedule_cutover(services.engine, plan, start=T0, now=clock())
    webhook.fail_next(delay=2.0)
    services.dispatcher.run_until_idle()
    close_channels(channels)
    with Session(services.engine) as session:
        (row,) = session.exec(select(DeliveryRow).where(DeliveryRow.channel == "webhook")).all()
    assert row.state == "uncertain" and row.attempts == 1


def test_engine_delivers_each_url_once(tmp_path, webhook, clock):
    """A scheduled cutover posts the advance notice to each receiver URL once, signed, content from email's parts."""
    settings = make_settings(tmp_path, webhook=webhook)
    services = bootstrap(settings, clock=clock, sleep=clock.sleep)
    urls = [webhook.url_for("/a"), webhook.url_for("/b")]
    plan = load_plan(write_webhook_plan(tmp_path / "plan", urls))
    schedule_cutover(services.engine, plan, start=T0, now=clock())
    services.dispatcher.run_until_idle()
    close_channels(dict(services.channels))
    assert sorted(r.path for r in webhook.requests) == ["/a", "/b"] and not webhook.rejected
    assert {d["subject"] for d in webhook.deliveries} == {"Scheduled maintenance on Sat 5 Dec 2026, 22:00 UTC"}
    assert {d["audience"] for d in webhook.deliveries} == {"integrations"}


# dry run -------------------------------------------------------------------------------------


def test_dry_run_writes_the_request_without_a_signature(tmp_path, clock):
    """Without a secret the outbox holds the POST a receiver would get: URL, key header, body; no signature."""
    outbox = outbox_channel(ChannelKind.WEBHOOK, make_settings(tmp_path), clock=clock)
    envelope = webhook_envelope("https://hooks.example.com/cutover")
    assert outbox.reconcile(envelope).state == "not_sent"
    receipt = outbox.send(envelope)
    request = json.loads(outbox.path_for(envelope).read_text())
    assert request["method"] == "POST" and request["url"] == "https://hooks.example.com/cutover"
    assert request["headers"]["X-Comms-Delivery-Key"] == request["json"]["delivery_key"]
    assert "X-Comms-Signature" not in request["headers"] and outbox.reconcile(envelope).receipt == receipt


# readiness -----------------------------------------------------------------------------------


def _rows(plan: Path, settings, clock) -> dict[str, tuple[str, str]]:
    channels = build_channels(settings, clock=clock, sleep=clock.sleep)
    try:
        report = check_readiness(plan, settings, start=None, now=NOW, channels=channels)
    finally:
        close_channels(channels)
    return {row.name: (row.status, row.detail) for row in report.rows}


def test_readiness_pings_each_receiver_with_a_signed_ping(tmp_path, webhook, clock):
    """`comms check` rows: the secret, and each URL accepting a signed ping (which is not a delivery)."""
    plan = write_webhook_plan(tmp_path / "plan", [webhook.url_for()])
    rows = _rows(plan, make_settings(tmp_path, webhook=webhook), clock)
    assert rows["webhook: secret"][0] == "PASS"
    assert rows[f"webhook: {webhook.url_for()}"] == ("PASS", "accepted a signed ping (204)")
    assert len(webhook.pings) == 1 and not webhook.deliveries


def test_readiness_fails_a_receiver_with_another_secret(tmp_path, webhook, clock):
    """A receiver refusing the ping's signature is a FAIL saying to share COMMS_WEBHOOK_SECRET."""
    plan = write_webhook_plan(tmp_path / "plan", [webhook.url_for()])
    rows = _rows(plan, make_settings(tmp_path, webhook_secret="another-secret-of-enough-length-0123456789"), clock)
    status, detail = rows[f"webhook: {webhook.url_for()}"]
    assert status == "FAIL" and "COMMS_WEBHOOK_SECRET" in detail and webhook.rejected == ["signature mismatch"]


def test_readiness_fails_an_unreachable_receiver_and_warns_a_short_secret(tmp_path, clock):
    """Nobody at the URL is a FAIL; a secret under 32 characters is a WARN."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/hooks"
    rows = _rows(write_webhook_plan(tmp_path / "plan", [url]), make_settings(tmp_path, webhook_secret="short"), clock)
    assert rows[f"webhook: {url}"][0] == "FAIL" and rows["webhook: secret"][0] == "WARN"


def test_cli_check_without_secret_warns_dry_run(tmp_path, monkeypatch):
    """`comms check --json` without COMMS_WEBHOOK_SECRET shows the webhook as a dry-run WARN naming it."""
    plan = write_webhook_plan(tmp_path / "plan", ["https://hooks.example.com/cutover"])
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COMMS_OUTBOX_DIR", str(tmp_path / "outbox"))
    result = CliRunner().invoke(app, ["check", "--plan", str(plan), "--json"])
    rows = {r["name"]: r for r in json.loads(result.stdout)["rows"]}
    assert result.exit_code == 0 and rows["webhook credentials"]["status"] == "WARN"
    assert "COMMS_WEBHOOK_SECRET" in rows["webhook credentials"]["detail"]


def test_cli_check_with_secret_shows_the_probe_rows(tmp_path, monkeypatch, webhook):
    """`comms check --json` with the secret set lists the webhook's secret and receiver rows, all passing."""
    plan = write_webhook_plan(tmp_path / "plan", [webhook.url_for()])
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COMMS_OUTBOX_DIR", str(tmp_path / "outbox"))
    monkeypatch.setenv("COMMS_WEBHOOK_SECRET", WEBHOOK_SECRET)
    webhook.clock = time.time  # the CLI signs with the real clock
    result = CliRunner().invoke(app, ["check", "--plan", str(plan), "--json"])
    rows = {r["name"]: r["status"] for r in json.loads(result.stdout)["rows"]}
    assert rows["webhook: secret"] == "PASS" and rows[f"webhook: {webhook.url_for()}"] == "PASS"
