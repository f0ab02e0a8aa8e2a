"""Replacing a posted Slack message (``chat.update``): an escalation post once someone acknowledged it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from comms.errors import PermanentChannelError, TransientChannelError

if TYPE_CHECKING:
    from comms.settings import Settings

__all__ = ["update_slack_message"]

log = logging.getLogger(__name__)


def update_slack_message(
    settings: Settings, *, channel: str, ts: str, text: str, blocks: Sequence[dict[str, Any]], timeout: int = 10
) -> None:
    """Replace message ``ts`` in ``channel``; ChannelError subclasses when Slack refuses or cannot be reached."""
    if not settings.slack_configured or settings.slack_token is None:
        raise PermanentChannelError(
            "cannot update a Slack message without COMMS_SLACK_TOKEN", remedy="set COMMS_SLACK_TOKEN"
        )
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError, SlackClientError

    client = WebClient(
        token=settings.slack_token.get_secret_value(),
        base_url=settings.slack_base_url,
        timeout=timeout,
        retry_handlers=[],
    )
    try:
        client.chat_update(channel=channel, ts=ts, text=text, blocks=list(blocks))
    except SlackApiError as exc:
        error = exc.response.get("error") if exc.response is not None else None
        raise PermanentChannelError(
            f"slack chat.update of {channel}/{ts} refused: {error}", remedy="check the bot's access to the channel"
        ) from None
    except (SlackClientError, OSError) as exc:
        raise TransientChannelError(f"slack chat.update of {channel}/{ts} failed: {type(exc).__name__}") from None
    log.info("slack message %s/%s updated", channel, ts)
