"""Slack through the official ``slack_sdk`` WebClient: one chat.postMessage per channel target.

Every post carries message metadata (``event_type: comms_delivery``) with its delivery key, so
after a crash ``reconcile`` can read the channel history and tell whether the post landed.
The SDK's own retries are off (no 429 handler, no connection-error handler): the dispatcher decides.
"""

from __future__ import annotations

import http.client
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from comms.channels.base import (
    ChannelKind,
    CheckRow,
    Envelope,
    EnvelopeExtras,
    EnvelopeFacts,
    Leaving,
    Receipt,
    Reconciliation,
    Target,
    header_value,
    not_watched,
    single_target,
)
from comms.clock import Clock, utc_now
from comms.core.content import SlackContent
from comms.core.times import parse_retry_after
from comms.errors import ChannelError, PermanentChannelError, TransientChannelError, is_read_timeout
from comms.plan.audiences import Audience
from comms.plan.models import Message, Plan

if TYPE_CHECKING:
    from slack_sdk import WebClient
    from slack_sdk.web import SlackResponse

    from comms.settings import Settings

__all__ = [
    "DEFAULT_TIMEOUT",
    "EVENT_TYPE",
    "HISTORY_MAX_PAGES",
    "HISTORY_PAGE",
    "LIST_MAX_PAGES",
    "SlackChannel",
    "build_post_args",
    "plan_slack_channels",
    "slack_extras",
    "slack_targets",
    "slack_thread_scope",
]

log = logging.getLogger(__name__)

EVENT_TYPE = "comms_delivery"
DEFAULT_TIMEOUT = 30
HISTORY_PAGE = 200
HISTORY_MAX_PAGES = 5
LIST_MAX_PAGES = 50

_AUTH = "set COMMS_SLACK_TOKEN to a valid bot token (xoxb-...) of an installed app"
_TRANSIENT_CODES = {
    "ratelimited",
    "rate_limited",
    "fatal_error",
    "service_unavailable",
    "internal_error",
    "request_timeout",
    "message_limit_exceeded",
    "team_added_to_org",
}


def _remedy(code: str, channel: str, needed: str | None) -> str:
    name = channel or "the channel"
    remedies = {
        "channel_not_found": f"check that {name} exists and is spelled as in the audience file; "
        f"for a private channel invite the bot first: /invite @<bot> in {name}",
        "not_in_channel": f"invite the bot to {name}: /invite @<bot> in {name}",
        "is_archived": f"unarchive {name} or point the audience at a live channel",
        "invalid_auth": _AUTH,
        "not_authed": _AUTH,
        "token_revoked": _AUTH,
        "token_expired": _AUTH + " (the old one expired)",
        "account_inactive": _AUTH + " (the token's user or bot is deactivated)",
        "missing_scope": f"add the {needed or 'chat:write'} scope to the Slack app and reinstall it",
        "invalid_blocks": "fix the Slack template: Slack refused its blocks",
        "invalid_blocks_format": "fix the Slack template: the blocks are not valid Block Kit JSON",
        "msg_blocks_too_long": "shorten the Slack template: its blocks are too long",
        "msg_too_long": "shorten the Slack template: the message text is too long",
        "no_text": "fix the Slack template: it rendered no text",
        "too_many_attachments": "send at most 100 attachments",
        "restricted_action": f"ask a workspace admin to let the app post in {name}",
        "ekm_access_denied": f"ask a workspace admin to let the app post in {name}",
        "invalid_metadata_format": "comms sent malformed message metadata: report this as a bug",
        "invalid_metadata_schema": "comms sent message metadata Slack refused: report this as a bug",
        "metadata_too_large": "shorten the delivery key carried in the message metadata",
        "metadata_must_be_sent_from_app": "use a bot token (xoxb-) of the Slack app, not a user token",
        "as_user_not_supported": "use a bot token (xoxb-) of the Slack app",
        "thread_not_found": "the thread root message is gone; send without a thread",
    }
    return remedies.get(code, f"see https://docs.slack.dev/reference/methods/chat.postMessage for '{code}'")


def slack_targets(audience: Audience | None) -> Iterator[Target]:
    """The Slack channels an audience is told in."""
    if audience is not None and audience.channels.slack is not None:
        for name in audience.channels.slack.channels:
            yield name, None, None


def slack_thread_scope(message: Message, incident_id: int | None) -> str:
    """Posts of an incident thread under its first post; the cutover's posts under the first one."""
    return f"incident:{incident_id}" if incident_id else "root"


def slack_extras(facts: EnvelopeFacts) -> EnvelopeExtras:
    """A Slack post replies under the thread root kept so far, if any."""
    return EnvelopeExtras(thread_ref=facts.thread_ref)


def plan_slack_channels(plan: Plan) -> list[str]:
    """Every Slack channel the plan may post in: audiences, escalation levels and failure contacts."""
    names: list[str] = []
    for audience in plan.audiences.values():
        if audience.channels.slack:
            names.extend(audience.channels.slack.channels)
    if plan.escalation is not None:
        for policy in plan.escalation.severities.values():
            for level in policy.levels:
                names.extend(level.slack)
        if plan.escalation.delivery_failures:
            names.extend(plan.escalation.delivery_failures.slack)
    return sorted(dict.fromkeys(names))


def build_post_args(envelope: Envelope) -> dict[str, Any]:
    """The chat.postMessage arguments for an envelope (also what the outbox writes in dry runs)."""
    content, recipient = single_target(envelope, SlackContent, channel="slack", target="Slack channel")
    args: dict[str, Any] = {
        "channel": recipient.address,
        "text": content.text,
        "blocks": [dict(block) for block in content.blocks],
        "metadata": {
            "event_type": EVENT_TYPE,
            "event_payload": {
                "delivery_key": recipient.delivery_key,
                "cutover": envelope.cutover,
                "occurrence": envelope.occurrence,
            },
        },
        "unfurl_links": False,
        "unfurl_media": False,
    }
    if envelope.thread_ref:
        args["thread_ts"] = envelope.thread_ref
        args["reply_broadcast"] = envelope.broadcast
    return args


class SlackChannel:
    """Slack via chat.postMessage; one envelope per channel, threaded under ``thread_ref`` when given."""

    kind = ChannelKind.SLACK
    max_batch = 1
    dry_run = False

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock = utc_now,
        timeout: int = DEFAULT_TIMEOUT,
        history_lookback: timedelta = timedelta(days=8),
    ) -> None:
        if not settings.slack_configured or settings.slack_token is None:
            raise ValueError("SlackChannel needs COMMS_SLACK_TOKEN; use the outbox without it")
        from slack_sdk import WebClient

        self._client: WebClient = WebClient(
            token=settings.slack_token.get_secret_value(),
            base_url=settings.slack_base_url,
            timeout=timeout,
            retry_handlers=[],
        )
        self._base_url = settings.slack_base_url
        self._clock = clock
        self._lookback = history_lookback
        self._ids: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"SlackChannel(base_url={self._base_url!r})"

    def send(self, envelope: Envelope, leaving: Leaving = not_watched) -> Receipt:
        """Post the message; the receipt's thread_ref is the thread root later posts reply under."""
        args = build_post_args(envelope)
        channel = args["channel"]
        leaving()
        response = self._call("chat_postMessage", channel, **args)
        ts = str(response.get("ts"))
        log.info("slack posted %s/%s to %s (ts %s)", envelope.occurrence, envelope.audience, channel, ts)
        return Receipt(provider_id=ts, thread_ref=envelope.thread_ref or ts)

    def reconcile(self, envelope: Envelope) -> Reconciliation:
        """Look for a post carrying this envelope's delivery key in the channel (or its thread)."""
        if len(envelope.recipients) != 1:
            return Reconciliation("unknown")
        recipient = envelope.recipients[0]
        try:
            channel_id = self.resolve_channel(recipient.address)
            if channel_id is None:
                return Reconciliation("unknown")
            found = self._find_key(channel_id, recipient.delivery_key, envelope.thread_ref)
        except ChannelError as exc:
            log.warning("slack reconcile of %s in %s not possible: %s", envelope.occurrence, recipient.address, exc)
            return Reconciliation("unknown")
        if found is None:
            return Reconciliation("not_sent")
        return Reconciliation("sent", Receipt(provider_id=found, thread_ref=envelope.thread_ref or found))

    def probe(self, plan: Plan | None) -> list[CheckRow]:
        """The token authenticates, and the bot is a member of every channel the plan posts in."""
        try:
            identity = self.auth_test()
        except ChannelError as exc:
            return [CheckRow("slack: token", "FAIL", str(exc))]
        bot = str(identity.get("user") or "the bot")
        team = identity.get("team") or "the workspace"
        rows = [CheckRow("slack: token", "PASS", f"authenticated as @{bot} in {team}")]
        for target in plan_slack_channels(plan) if plan is not None else []:
            rows.append(self._channel_row(target, bot))
        return rows

    def _channel_row(self, target: str, bot: str) -> CheckRow:
        name = f"slack: {target}"
        try:
            info = self.channel_info(target)
        except ChannelError as exc:
            return CheckRow(name, "FAIL", str(exc))
        if info.get("is_archived"):
            return CheckRow(name, "FAIL", f"{target} is archived: unarchive it or use another channel")
        if not info.get("is_member"):
            return CheckRow(name, "FAIL", f"@{bot} is not a member of {target}: /invite @{bot} in {target}")
        return CheckRow(name, "PASS", f"{target} ({info.get('id')}) exists and @{bot} is a member")

    def auth_test(self) -> dict[str, Any]:
        """``auth.test``: who the token belongs to (raises a ChannelError when it is not valid)."""
        return dict(self._call("auth_test", "").data or {})  # type: ignore[arg-type]

    def channel_info(self, address: str) -> dict[str, Any]:
        """``conversations.info`` of a channel given as ``#name`` or id; raises when it cannot be read."""
        channel_id = self.resolve_channel(address)
        if channel_id is None:
            raise PermanentChannelError(
                f"slack channel {address} not found", remedy=_remedy("channel_not_found", address, None)
            )
        response = self._call("conversations_info", address, channel=channel_id)
        info = response.get("channel")
        return dict(info) if isinstance(info, dict) else {}

    def resolve_channel(self, address: str) -> str | None:
        """A channel id for ``#name`` (through conversations.list, cached) or the id itself."""
        if not address.startswith("#"):
            return address
        name = address[1:]
        if name in self._ids:
            return self._ids[name]
        cursor: str | None = None
        for _ in range(LIST_MAX_PAGES):
            response = self._call(
                "conversations_list",
                address,
                types="public_channel,private_channel",
                exclude_archived=False,
                limit=200,
                cursor=cursor,
            )
            for channel in response.get("channels") or []:
                self._ids[str(channel.get("name"))] = str(channel.get("id"))
            if name in self._ids:
                return self._ids[name]
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                break
        return None

    def _find_key(self, channel_id: str, key: str, thread_ts: str | None) -> str | None:
        oldest = f"{(self._clock() - self._lookback).timestamp():.6f}"
        cursor: str | None = None
        for _ in range(HISTORY_MAX_PAGES):
            if thread_ts:
                response = self._call(
                    "conversations_replies",
                    channel_id,
                    channel=channel_id,
                    ts=thread_ts,
                    include_all_metadata=True,
                    limit=HISTORY_PAGE,
                    cursor=cursor,
                )
            else:
                response = self._call(
                    "conversations_history",
                    channel_id,
                    channel=channel_id,
                    include_all_metadata=True,
                    limit=HISTORY_PAGE,
                    oldest=oldest,
                    cursor=cursor,
                )
            for message in response.get("messages") or []:
                metadata = message.get("metadata") or {}
                payload = metadata.get("event_payload") or {}
                if metadata.get("event_type") == EVENT_TYPE and payload.get("delivery_key") == key:
                    return str(message.get("ts"))
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor or not response.get("has_more", True):
                break
        return None

    def _call(self, method: str, target: str, **kwargs: Any) -> SlackResponse:
        from slack_sdk.errors import SlackApiError, SlackClientError

        try:
            response: SlackResponse = getattr(self._client, method)(**kwargs)
        except SlackApiError as exc:
            raise _map_api_error(exc, method, target, now=self._clock()) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise TransientChannelError(
                f"slack {method}: connection failed ({type(exc).__name__}: {exc})", maybe_delivered=is_read_timeout(exc)
            ) from exc
        except SlackClientError as exc:
            raise PermanentChannelError(f"slack {method}: {exc}", remedy="check COMMS_SLACK_BASE_URL") from exc
        return response


def _map_api_error(exc: Any, method: str, channel: str, *, now: datetime) -> ChannelError:
    response = exc.response
    status = int(getattr(response, "status_code", 0) or 0)
    data = response.data if isinstance(getattr(response, "data", None), dict) else {}
    code = str(data.get("error") or "")
    where = f"slack {method}" + (f" to {channel}" if channel else "")
    if status == 429 or code in ("ratelimited", "rate_limited"):
        return TransientChannelError(
            f"{where}: rate limited ({code or status})",
            retry_after=parse_retry_after(header_value(response.headers, "Retry-After"), now=now),
            status=status,
        )
    if status >= 500 or code.startswith("Received a response in a non-JSON format") or code in _TRANSIENT_CODES:
        return TransientChannelError(f"{where}: Slack answered {status} {code}".rstrip(), status=status)
    if not code:
        return TransientChannelError(f"{where}: Slack answered {status} without an error code", status=status)
    needed = data.get("needed")
    return PermanentChannelError(
        f"{where}: {code}", remedy=_remedy(code, channel, needed), status=status, channel_wide=code in _TOKEN_CODES
    )


_TOKEN_CODES = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "missing_scope",
        "no_permission",
        "ekm_access_denied",
        "team_access_not_granted",
    }
)
"""Slack errors about the token itself: no post on any channel can succeed until it is fixed."""
