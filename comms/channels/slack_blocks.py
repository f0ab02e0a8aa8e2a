"""Slack content: a rendered mrkdwn body becomes Block Kit (header, sections, context footer).

Values people type reach Slack text escaped (``escape_slack``, applied by rendering to every
value a Slack template prints), so typed text cannot form links or mentions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from comms.channels.base import PartRenderer
from comms.core.content import SlackContent
from comms.core.times import format_utc

__all__ = [
    "ACK_ACTION_ID",
    "SLACK_HEADER_LIMIT",
    "SLACK_MAX_BLOCKS",
    "SLACK_PARTS",
    "SLACK_SECTION_LIMIT",
    "ack_button",
    "build_slack_content",
    "escape_slack",
    "slack_content",
]

SLACK_SECTION_LIMIT = 3000
SLACK_HEADER_LIMIT = 150
SLACK_MAX_BLOCKS = 50

ACK_ACTION_ID = "comms_ack"
"""The action id of the "Acknowledge" button on escalation posts (``POST /slack/interactions`` looks for it)."""

SLACK_PARTS: Mapping[str, tuple[str, ...]] = {"body": ("slack.j2",)}
"""The template file of a Slack message: one mrkdwn body."""


def escape_slack(value: str) -> str:
    """Escape Slack's control characters so typed text cannot form links or mentions."""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_content(part: PartRenderer, context: Mapping[str, Any]) -> SlackContent:
    """A Slack message from its rendered body, titled by the message."""
    return build_slack_content(context["message"]["title"], part("body"), context)


def build_slack_content(title: str, body: str, context: Mapping[str, Any]) -> SlackContent:
    """Turn a rendered mrkdwn body into Block Kit: a header, one section per paragraph, a context line."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:SLACK_HEADER_LIMIT], "emoji": True}}
    ]
    for paragraph in _paragraphs(body):
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": paragraph}})
    cutover = context["cutover"]
    footer = f"{escape_slack(cutover['title'])} · T0 {format_utc(cutover['start'])}"
    button = ack_button(context)
    blocks = blocks[: SLACK_MAX_BLOCKS - (2 if button else 1)]
    if button:
        blocks.append(button)
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": footer}]})
    fallback = f"{title}\n{body}"
    return SlackContent(text=fallback, blocks=tuple(blocks))


def ack_button(context: Mapping[str, Any]) -> dict[str, Any] | None:
    """The actions block with an "Acknowledge" button, on an incident's escalation notice; None otherwise."""
    escalation = context.get("escalation")
    if not isinstance(escalation, Mapping) or not escalation.get("ack"):
        return None
    incident = escalation.get("incident") or {}
    value = f"{incident.get('id')}:{escalation.get('level')}"
    return {
        "type": "actions",
        "block_id": ACK_ACTION_ID,
        "elements": [
            {
                "type": "button",
                "action_id": ACK_ACTION_ID,
                "style": "danger",
                "text": {"type": "plain_text", "text": "Acknowledge", "emoji": False},
                "value": value,
            }
        ],
    }


def _paragraphs(body: str) -> list[str]:
    chunks: list[str] = []
    for paragraph in re.split(r"\n\s*\n", body.strip()):
        paragraph = paragraph.strip()
        while len(paragraph) > SLACK_SECTION_LIMIT:
            cut = paragraph.rfind("\n", 0, SLACK_SECTION_LIMIT)
            cut = cut if cut > 0 else SLACK_SECTION_LIMIT
            chunks.append(paragraph[:cut])
            paragraph = paragraph[cut:].lstrip("\n")
        if paragraph:
            chunks.append(paragraph)
    return chunks
