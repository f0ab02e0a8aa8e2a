"""Previews of rendered messages: one combination for the terminal, or an HTML gallery of all."""

from __future__ import annotations

import html
import json
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
        (out / name).write_text(_page(preview), encoding="utf-8")
        pages.append((preview, name))
    (out / "index.html").write_text(_index(plan, pages), encoding="utf-8")
    return [out / "index.html", *(out / name for _, name in pages)]


def _page(preview: Preview) -> str:
    title = f"{preview.message} · {preview.audience or 'status page'} · {preview.channel.value}"
    content = preview.content
    if isinstance(content, EmailContent):
        body = (
            f"<p><b>Subject:</b> {html.escape(content.subject)}</p>"
            f"<h2>HTML</h2><iframe style='width:100%;height:640px;border:1px solid #ccc' "
            f'srcdoc="{html.escape(content.html, quote=True)}"></iframe>'
            f"<h2>Text</h2><pre>{html.escape(content.text)}</pre>"
        )
    elif isinstance(content, WebhookContent):
        body = (
            f"<p><b>Subject:</b> {html.escape(content.subject)}</p><h2>Text</h2><pre>{html.escape(content.text)}</pre>"
        )
    elif isinstance(content, SlackContent):
        blocks = json.dumps(list(content.blocks), indent=2, ensure_ascii=False)
        body = f"<h2>Fallback text</h2><pre>{html.escape(content.text)}</pre><h2>Blocks</h2><pre>{html.escape(blocks)}</pre>"
    else:
        assert isinstance(content, StatuspageContent)
        body = (
            f"<h2>{html.escape(content.title)}</h2><pre style='white-space:pre-wrap'>{html.escape(content.body)}</pre>"
        )
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
        f"<body style='font-family:sans-serif;max-width:900px;margin:2em auto'>"
        f"<p><a href='index.html'>&larr; all messages</a></p><h1>{html.escape(title)}</h1>{body}</body></html>"
    )


def _index(plan: Plan, pages: list[tuple[Preview, str]]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(p.message)}</td><td>{html.escape(p.audience or 'status page')}</td>"
        f"<td>{p.channel.value}</td><td><a href='{html.escape(name)}'>open</a></td></tr>"
        for p, name in pages
    )
    title = html.escape(plan.cutover.title)
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{title}: message gallery</title></head>"
        f"<body style='font-family:sans-serif;max-width:900px;margin:2em auto'><h1>{title}: every message</h1>"
        f"<p>{len(pages)} renderings.</p><table border='1' cellpadding='6' style='border-collapse:collapse'>"
        f"<tr><th>Message</th><th>Audience</th><th>Channel</th><th></th></tr>{rows}</table></body></html>"
    )
