"""Rendered content types (email, Slack, status page, webhook) and their stored JSON form."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "ACK_MARK",
    "Content",
    "EmailContent",
    "SlackContent",
    "StatuspageContent",
    "WebhookContent",
    "ack_marks",
    "content_from_json",
    "content_hash",
    "content_to_json",
    "one_line",
]

ACK_MARK = re.compile(r"%comms-ack-(html|text)-(\d+)-(\d+)%")
"""Where an escalation email's ack link goes, per recipient (``%comms-ack-<part>-<incident>-<level>%``)."""


def ack_marks(incident_id: int, level: int) -> dict[str, str]:
    """The marks an escalation notice's templates print where each recipient's ack link belongs."""
    return {part: f"%comms-ack-{part}-{incident_id}-{level}%" for part in ("html", "text")}


@dataclass(frozen=True)
class EmailContent:
    """A rendered email: subject plus HTML and text alternatives."""

    subject: str
    html: str
    text: str

    def substituted(self, values: Mapping[str, str]) -> EmailContent:
        """The email with each mark in ``values`` replaced (one recipient's own links)."""
        if not values:
            return self
        pattern = re.compile("|".join(re.escape(mark) for mark in values))

        def fill(text: str) -> str:
            return pattern.sub(lambda m: values[m.group(0)], text)

        return EmailContent(subject=fill(self.subject), html=fill(self.html), text=fill(self.text))


@dataclass(frozen=True)
class SlackContent:
    """A rendered Slack message: Block Kit blocks and the notification text fallback."""

    text: str
    blocks: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class StatuspageContent:
    """A rendered status-page update: incident name and update body."""

    title: str
    body: str


@dataclass(frozen=True)
class WebhookContent:
    """A rendered webhook delivery: a one-line subject and a plain-text body."""

    subject: str
    text: str


Content = EmailContent | SlackContent | StatuspageContent | WebhookContent

_KINDS: dict[type[Content], str] = {
    EmailContent: "email",
    SlackContent: "slack",
    StatuspageContent: "statuspage",
    WebhookContent: "webhook",
}


def one_line(text: str) -> str:
    """Collapse whitespace (newlines included) to single spaces: for subjects and titles."""
    return " ".join(text.split())


def content_to_json(content: Content) -> str:
    """Serialize rendered content with its kind."""
    return json.dumps({"kind": _KINDS[type(content)], **asdict(content)}, sort_keys=True, ensure_ascii=False)


def content_from_json(text: str) -> Content:
    """Rebuild rendered content from ``content_to_json`` output."""
    data = json.loads(text)
    kind = data.pop("kind")
    if kind == "email":
        return EmailContent(**data)
    if kind == "slack":
        return SlackContent(text=data["text"], blocks=tuple(data["blocks"]))
    if kind == "webhook":
        return WebhookContent(**data)
    return StatuspageContent(**data)


def content_hash(body_json: str) -> str:
    """SHA-256 of the exact stored content, for the audit trail."""
    return hashlib.sha256(body_json.encode("utf-8")).hexdigest()
