"""Storing rendered content as JSON and reading it back into the rendering dataclasses."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict

from comms.rendering import Content, EmailContent, SlackContent, StatuspageContent


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
