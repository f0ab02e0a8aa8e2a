"""Secrets never show (repr, logs, errors, outbox files), and the factory picks adapter or outbox."""

from __future__ import annotations

import logging

import pytest

from comms.channels.base import ChannelKind
from comms.channels.factory import build_channels, close_channels
from comms.channels.outbox import OutboxChannel
from comms.channels.sendgrid import SendGridChannel
from comms.channels.slack import SlackChannel
from comms.channels.statuspage import StatuspageChannel
from comms.channels.webhook import WebhookChannel
from comms.errors import ChannelError

from .builders import (
    SECRETS,
    WINDOW,
    email_envelope,
    make_settings,
    slack_envelope,
    statuspage_envelope,
    webhook_envelope,
)


@pytest.fixture
def channels(tmp_path, sendgrid, slack, statuspage, webhook, clock):
    settings = make_settings(tmp_path, sendgrid=sendgrid, slack=slack, statuspage=statuspage, webhook=webhook)
    built = build_channels(settings, clock=clock, sleep=clock.sleep)
    yield built
    close_channels(built)


def _exercise(channels, sendgrid, slack, statuspage, webhook) -> list[str]:
    """Send on every channel, once fine and once failing; return the error messages."""
    errors: list[str] = []
    channels[ChannelKind.EMAIL].send(email_envelope(2))
    channels[ChannelKind.SLACK].send(slack_envelope())
    channels[ChannelKind.STATUSPAGE].send(statuspage_envelope("scheduled", window=WINDOW))
    channels[ChannelKind.WEBHOOK].send(webhook_envelope(webhook.url_for()))
    sendgrid.fail_next(status=401, body={"errors": [{"field": None, "message": "bad key"}]})
    slack.error_next("invalid_auth")
    statuspage.fail_with(401, "Could not authenticate")
    webhook.fail_next(status=401, body={"error": "signature mismatch"})
    for kind, envelope in (
        (ChannelKind.EMAIL, email_envelope(1)),
        (ChannelKind.SLACK, slack_envelope()),
        (ChannelKind.STATUSPAGE, statuspage_envelope("scheduled", window=WINDOW)),
        (ChannelKind.WEBHOOK, webhook_envelope(webhook.url_for("/hooks/other"))),
    ):
        with pytest.raises(ChannelError) as caught:
            channels[kind].send(envelope)
        errors.append(str(caught.value))
    channels[ChannelKind.SLACK].reconcile(slack_envelope())
    return errors


def test_adapter_reprs_hide_the_secrets(channels):
    """repr() of every adapter names its endpoint but no key or token."""
    text = " ".join(repr(c) for c in channels.values())
    assert "127.0.0.1" in text and not any(secret in text for secret in SECRETS)


def test_settings_repr_hides_the_secrets(tmp_path, sendgrid, slack, statuspage, webhook):
    """Settings show SecretStr placeholders, not the values."""
    text = repr(make_settings(tmp_path, sendgrid=sendgrid, slack=slack, statuspage=statuspage, webhook=webhook))
    assert not any(secret in text for secret in SECRETS)


def test_debug_logs_never_contain_a_secret(channels, sendgrid, slack, statuspage, webhook, caplog):
    """Even at DEBUG (SDK and HTTP client logs included), no key, token or signing secret is logged."""
    caplog.set_level(logging.DEBUG)
    _exercise(channels, sendgrid, slack, statuspage, webhook)
    assert caplog.records and not any(secret in caplog.text for secret in SECRETS)


def test_sendgrid_sdk_header_log_is_redacted(channels, sendgrid, caplog):
    """python_http_client's DEBUG header dump shows the Authorization header redacted."""
    caplog.set_level(logging.DEBUG, logger="python_http_client")
    channels[ChannelKind.EMAIL].send(email_envelope(1))
    headers = [r.getMessage() for r in caplog.records if r.getMessage().startswith("HEADERS")]
    assert headers and all("[redacted]" in line for line in headers)


def test_errors_never_contain_a_secret(channels, sendgrid, slack, statuspage, webhook):
    """Error messages raised by the adapters carry no key, token or signing secret."""
    errors = _exercise(channels, sendgrid, slack, statuspage, webhook)
    assert len(errors) == 4 and not any(secret in e for e in errors for secret in SECRETS)


def test_outbox_files_never_contain_a_secret(tmp_path, clock):
    """Dry-run files hold no credential, even with other channels configured."""
    settings = make_settings(tmp_path, slack_token="xoxb-secret-slack-token-0123456789abcdef")
    channels = build_channels(settings, clock=clock, sleep=clock.sleep)
    channels[ChannelKind.EMAIL].send(email_envelope(2))
    channels[ChannelKind.STATUSPAGE].send(statuspage_envelope("scheduled", window=WINDOW))
    close_channels(channels)
    texts = [p.read_bytes().decode() for p in (tmp_path / "outbox").rglob("*") if p.is_file()]
    # the email batch's .eml, one .eml per each of its 2 recipients, and the status-page request
    assert len(texts) == 4 and not any(secret in t for t in texts for secret in SECRETS)


def test_unconfigured_channels_fall_back_to_the_outbox(tmp_path):
    """Without credentials every channel is an OutboxChannel in dry-run mode."""
    channels = build_channels(make_settings(tmp_path))
    assert all(isinstance(c, OutboxChannel) and c.dry_run for c in channels.values())
    assert {c.kind for c in channels.values()} == set(ChannelKind)


def test_configured_channels_are_the_real_adapters(channels):
    """With credentials the factory builds SendGrid, Slack, Statuspage and webhook adapters."""
    assert isinstance(channels[ChannelKind.EMAIL], SendGridChannel)
    assert isinstance(channels[ChannelKind.SLACK], SlackChannel)
    assert isinstance(channels[ChannelKind.STATUSPAGE], StatuspageChannel)
    assert isinstance(channels[ChannelKind.WEBHOOK], WebhookChannel)
    assert not any(c.dry_run for c in channels.values())


def test_statuspage_without_page_id_falls_back_to_the_outbox(tmp_path):
    """A Statuspage key without a page id is not enough: the status page stays a dry run."""
    channels = build_channels(make_settings(tmp_path, statuspage_api_key="sp-key"))
    assert isinstance(channels[ChannelKind.STATUSPAGE], OutboxChannel)


def test_factory_paces_the_status_page_on_the_injected_clock(channels, statuspage, clock):
    """The factory's status-page pacer sleeps through the injected sleep, 1 s apart."""
    adapter = channels[ChannelKind.STATUSPAGE]
    created = adapter.send(statuspage_envelope("scheduled", window=WINDOW))
    adapter.send(statuspage_envelope("in_progress", incident_id=created.provider_id))
    assert clock.sleeps == [1.0]
