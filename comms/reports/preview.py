"""Previews of rendered messages: one combination for the terminal, or an HTML gallery of all.

The gallery's markup is in ``comms/reports/html/gallery.html.j2`` and ``gallery_item.html.j2``, autoescaped
(``comms.reports.page_templates``): message names and rendered text reach the pages as data. The index
groups the previews by message in timeline order (see ``gallery_groups``), draws Slack messages as Slack
shows Block Kit (``comms.reports.slack_view``) and status-page updates as the page shows them, filters
by audience and channel, and lists template folders the plan never sends.
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
from comms.plan.fields import Channel
from comms.plan.loader import sent_combinations
from comms.plan.models import Plan
from comms.rendering import Renderer
from comms.reports.gallery_order import gallery_groups, unsent_templates
from comms.reports.page_templates import render_page
from comms.reports.slack_view import slack_view

__all__ = [
    "GalleryGroup",
    "Preview",
    "preview_text",
    "render_gallery_index",
    "render_gallery_page",
    "render_preview",
    "write_gallery",
]


@dataclass(frozen=True)
class Preview:
    """One rendered combination (``status``: the status-page status it moves to, for status-page previews)."""

    message: str
    audience: str | None
    channel: Channel
    content: Content
    status: str | None = None


@dataclass(frozen=True)
class GalleryGroup:
    """One message of the gallery: when it goes out and its previews with their page file names."""

    message: str
    title: str
    when: str
    phase: str
    previews: tuple[tuple[Preview, str], ...]


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
        action = plan.message(message).statuspage
        if channel is Channel.STATUSPAGE and action is not None:
            preview = Preview(preview.message, preview.audience, channel, preview.content, status=action.status)
        name = f"{message}--{audience or 'status-page'}--{channel.value}.html"
        (out / name).write_text(render_gallery_page(preview), encoding="utf-8")
        pages.append((preview, name))
    groups = [
        GalleryGroup(message, title, when, phase, tuple(item for item in pages if item[0].message == message))
        for message, title, when, phase in gallery_groups(plan)
    ]
    index = render_gallery_index(plan.cutover.title, pages, groups=groups, unsent=unsent_templates(plan))
    (out / "index.html").write_text(index, encoding="utf-8")
    return [out / "index.html", *(out / name for _, name in pages)]


def render_gallery_page(preview: Preview) -> str:
    """One gallery page: an email's subject, HTML (in an iframe) and text; Slack as Slack draws it; or a status post."""
    return render_page("gallery_item.html.j2", _view(preview))


def _view(preview: Preview) -> dict[str, object]:
    content = preview.content
    blocks, slack = None, None
    if isinstance(content, EmailContent):
        kind = "email"
    elif isinstance(content, WebhookContent):
        kind = "webhook"
    elif isinstance(content, SlackContent):
        kind = "slack"
        blocks = json.dumps(list(content.blocks), indent=2, ensure_ascii=False)
        slack = slack_view(content.blocks)
    else:
        assert isinstance(content, StatuspageContent)
        kind = "statuspage"
    return {"preview": preview, "kind": kind, "blocks": blocks, "slack": slack}


def render_gallery_index(
    title: str,
    pages: Sequence[tuple[Preview, str]],
    *,
    groups: Sequence[GalleryGroup] | None = None,
    unsent: Sequence[str] = (),
) -> str:
    """The gallery's index: previews grouped by message (one group per message when not given), with filters."""
    if groups is None:
        names = list(dict.fromkeys(preview.message for preview, _ in pages))
        groups = [
            GalleryGroup(name, name, "", "", tuple(item for item in pages if item[0].message == name)) for name in names
        ]
    audiences = sorted({preview.audience or "status page" for preview, _ in pages})
    channels = sorted({preview.channel.value for preview, _ in pages})
    views = {name: _view(preview) for preview, name in pages}
    return render_page(
        "gallery.html.j2",
        {
            "title": title,
            "count": len(pages),
            "groups": groups,
            "views": views,
            "audiences": audiences,
            "channels": channels,
            "audience_ids": {name: number for number, name in enumerate(audiences, start=1)},
            "channel_ids": {name: number for number, name in enumerate(channels, start=1)},
            "unsent": list(unsent),
        },
    )
