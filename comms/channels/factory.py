"""Building the channels from settings: the real adapter where credentials are set, else the outbox."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from comms.channels.base import Channel, ChannelKind
from comms.channels.outbox import OutboxChannel
from comms.channels.pacing import Pacer
from comms.clock import Clock, utc_now
from comms.settings import Settings

log = logging.getLogger(__name__)


def build_channels(
    settings: Settings, *, clock: Clock = utc_now, sleep: Callable[[float], None] = time.sleep
) -> dict[ChannelKind, Channel]:
    """One channel per kind: SendGrid, Slack and Statuspage when configured, else a dry-run outbox.

    ``sleep`` paces the status page (one request per second); with an injected clock the pacer
    reads that clock too, so tests that advance time in ``sleep`` never wait for real.
    """
    channels: dict[ChannelKind, Channel] = {}
    if settings.sendgrid_configured:
        from comms.channels.sendgrid import SendGridChannel

        channels[ChannelKind.EMAIL] = SendGridChannel(settings, clock=clock)
    else:
        channels[ChannelKind.EMAIL] = _outbox(ChannelKind.EMAIL, settings, clock)
    if settings.slack_configured:
        from comms.channels.slack import SlackChannel

        channels[ChannelKind.SLACK] = SlackChannel(settings, clock=clock)
    else:
        channels[ChannelKind.SLACK] = _outbox(ChannelKind.SLACK, settings, clock)
    if settings.statuspage_configured:
        from comms.channels.statuspage import StatuspageChannel

        monotonic = time.monotonic if clock is utc_now else (lambda: clock().timestamp())
        pacer = Pacer(1.0, monotonic=monotonic, sleep=sleep)
        channels[ChannelKind.STATUSPAGE] = StatuspageChannel(settings, pacer=pacer)
    else:
        channels[ChannelKind.STATUSPAGE] = _outbox(ChannelKind.STATUSPAGE, settings, clock)
    for kind, channel in channels.items():
        if channel.dry_run:
            log.info("%s has no credentials: dry run into %s", kind.value, settings.outbox_dir)
    return channels


def close_channels(channels: dict[ChannelKind, Channel]) -> None:
    """Release the connections of channels that hold some (the status page's HTTP pool)."""
    for channel in channels.values():
        close = getattr(channel, "close", None)
        if callable(close):
            close()


def _outbox(kind: ChannelKind, settings: Settings, clock: Clock) -> OutboxChannel:
    return OutboxChannel(
        kind,
        settings.outbox_dir,
        sender=settings.email_from,
        sender_name=settings.email_from_name,
        reply_to=settings.email_reply_to,
        page_id=settings.statuspage_page_id,
        statuspage_base_url=settings.statuspage_base_url,
        clock=clock,
    )
