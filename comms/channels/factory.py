"""Building the channels from settings: the real adapter where credentials are set, else the outbox."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from comms.channels.base import Channel, ChannelKind
from comms.channels.outbox import OutboxChannel
from comms.channels.registry import SPECS, channel_spec
from comms.clock import Clock, utc_now
from comms.settings import Settings

__all__ = ["build_channels", "close_channels", "outbox_channel"]

log = logging.getLogger(__name__)


def build_channels(
    settings: Settings, *, clock: Clock = utc_now, sleep: Callable[[float], None] = time.sleep
) -> dict[ChannelKind, Channel]:
    """One channel per kind of the registry: its adapter when configured, else a dry-run outbox.

    ``sleep`` paces the status page (one request per second); with an injected clock the pacer
    reads that clock too, so tests that advance time in ``sleep`` never wait for real.
    """
    channels: dict[ChannelKind, Channel] = {}
    for kind, spec in SPECS.items():
        if spec.configured(settings):
            channels[kind] = spec.adapter(settings, clock, sleep)
        else:
            channels[kind] = outbox_channel(kind, settings, clock=clock)
            log.info("%s has no credentials: dry run into %s", kind.value, settings.outbox_dir)
    return channels


def outbox_channel(kind: ChannelKind, settings: Settings, *, clock: Clock = utc_now) -> OutboxChannel:
    """The dry-run channel of a kind, writing its files under ``settings.outbox_dir``."""
    spec = channel_spec(kind)
    return OutboxChannel(kind, settings.outbox_dir, spec.outbox(settings, clock), credentials=spec.env_names)


def close_channels(channels: dict[ChannelKind, Channel]) -> None:
    """Release the connections of channels that hold some (the status page's and webhook's HTTP pools)."""
    for channel in channels.values():
        close = getattr(channel, "close", None)
        if callable(close):
            close()
