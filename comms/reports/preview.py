"""Previews of rendered messages: one combination for the terminal, or an HTML gallery of all.

The gallery's markup is in ``comms/reports/html/gallery.html.j2`` and ``gallery_item.html.j2``, autoescaped
(``comms.reports.page_templates``): message names and rendered text reach the pages as data.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from comms.channels.registry import channel_spec
from comms.core.content import Content, EmailContent, SlackContent, StatuspageContent, WebhookContent
from comms.core.context import SAMPLE_START, sample_context
from comms.errors import InputError
from comms.plan.loader import sent_combinations
from comms.plan.models import Channel, Plan
from comms.rendering import Renderer
from comms.reports.page_templates import render_page


@dataclass(frozen=True)
class Preview:
    """One rendered combination."""

    message: str
    audience: str | None
    channel: Channel
    content: Content


def render_preview(
    plan: Plan,
    *,
    message: str,
    audience: str | None,
    channel: Channel,
    start: datetime | None = None,
    variables: dict[str, str] | None = None,
    renderer: Renderer | None = None,
) -> Preview:
    """Render one message for one audience and channel with sample event data and the given vars."""
    try:
        spec = plan.message(message)
    except KeyError:
        known = ", ".join(m.key for m in plan.schedule.messages)
        raise InputError(f"MESSAGE: unknown message {message!r} (known: {known})") from None
    if not channel_spec(channel).per_audience:
        audience_model = None
    elif audience is None:
        raise InputError(f"--audience is required for {channel.value} previews")
    elif audience not in plan.audiences:
        raise InputError(f"--audience: unknown audience {audience!r} (known: {', '.join(plan.audiences)})")
    else:
        audience_model = plan.audiences[audience]
    context = sample_context(plan, spec, audience_model, start=start or SAMPLE_START, variables=variables)
    content = (renderer or Renderer(plan.root / "templates")).render(message, audience, channel, context)
    return Preview(
        message=message, audience=audience_model.key if audience_model else None, channel=channel, content=content
    )


def preview_text(preview: Preview) -> str:
    """A terminal rendering: email and webhook as subject + text, Slack as its blocks, status page as title + body."""
    content = preview.content
    if isinstance(content, EmailContent | WebhookContent):
        return f"Subject: {content.subject}\n\n{content.text}"
    if isinstance(content, SlackContent):
        return json.dumps({"text": content.text, "blocks": list(content.blocks)}, indent=2, ensure_ascii=False)
    assert isinstance(content, StatuspageContent)
    return f"{content.title}\n\n{content.body}"


def write_gallery(plan: Plan, out: Path, *, start: datetime | None = None) -> list[Path]:
    """Write ``index.html`` and one page per message x audience x channel the plan sends."""
    out.mkdir(parents=True, exist_ok=True)
    pages: list[tuple[Preview, str]] = []
    renderer = Renderer(plan.root / "templates")
    for message, audience, channel in sent_combinations(plan):
        preview = render_preview(
            plan, message=message, audience=audience, channel=channel, start=start, renderer=renderer
        )
        name = f"{message}--{audience or 'status-page'}--{channel.value}.html"
        (out / name).write_text(render_gallery_page(preview), encoding="utf-8")
        pages.append((preview, name))
    (out / "index.html").write_text(render_gallery_index(plan.cutover.title, pages), encoding="utf-8")
    return [out / "index.html", *(out / name for _, name in pages)]


def render_gallery_page(preview: Preview) -> str:
    """One gallery page: an email's subject, HTML (in an iframe) and text; Slack text and blocks; or a status post."""
    content = preview.content
    if isinstance(content, EmailContent):
        kind, blocks = "email", None
    elif isinstance(content, WebhookContent):
        kind, blocks = "webhook", None
    elif isinstance(content, SlackContent):
        kind, blocks = "slack", json.dumps(list(content.blocks), indent=2, ensure_ascii=False)
    else:
        assert isinstance(content, StatuspageContent)
        kind, blocks = "statuspage", None
    return render_page("gallery_item.html.j2", {"preview": preview, "kind": kind, "blocks": blocks})


def render_gallery_index(title: str, pages: Sequence[tuple[Preview, str]]) -> str:
    """The gallery's index: one row per preview, linking its page file (a name in the same folder)."""
    return render_page("gallery.html.j2", {"title": title, "pages": pages})
