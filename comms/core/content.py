"""Rendered content types (email, Slack, status page) and their stored JSON form."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class EmailContent:
    """A rendered email: subject plus HTML and text alternatives."""

    subject: str
    html: str
    text: str


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


Content = EmailContent | SlackContent | StatuspageContent



def content_to_json(content: Content) -> str:
    """Serialize rendered content with its kind."""
    kind = {EmailContent: "email", SlackContent: "slack", StatuspageContent: "statuspage"}[type(content)]
    return json.dumps({"kind": kind, **asdict(content)}, sort_keys=True, ensure_ascii=False)


def content_from_json(text: str) -> Content:
    """Rebuild rendered content from ``content_to_json`` output."""
    data = json.loads(text)
    kind = data.pop("kind")
    if kind == "email":
        return EmailContent(**data)
    if kind == "slack":
        return SlackContent(text=data["text"], blocks=tuple(data["blocks"]))
    return StatuspageContent(**data)


def content_hash(body_json: str) -> str:
    """SHA-256 of the exact stored content, for the audit trail."""
    return hashlib.sha256(body_json.encode("utf-8")).hexdigest()
