"""Rendering of plan templates into channel content, once per message x audience x channel.

Templates live under ``templates/<message>/`` with one file per channel part; an audience
override sits in ``templates/<message>/<audience>/`` and usually ``{% extends %}`` the default.
Values people type reach templates as data only: autoescaped in HTML, Slack-escaped in Slack
text, and never compiled as Jinja.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template, pass_context
from jinja2.runtime import Context

from comms.core.content import Content, EmailContent, SlackContent, StatuspageContent
from comms.core.times import format_duration, format_local, format_utc, iso_utc, to_local
from comms.plan.models import Channel

PART_FILES: dict[Channel, dict[str, str]] = {
    Channel.EMAIL: {"subject": "email.subject.j2", "html": "email.html.j2", "text": "email.text.j2"},
    Channel.SLACK: {"body": "slack.j2"},
    Channel.STATUSPAGE: {"title": "statuspage.title.j2", "body": "statuspage.body.j2"},
}
"""The template file of every part of every channel's content."""

SLACK_SECTION_LIMIT = 3000
SLACK_HEADER_LIMIT = 150
SLACK_MAX_BLOCKS = 50
STATUSPAGE_TITLE_LIMIT = 255
STATUSPAGE_BODY_LIMIT = 25000


def escape_slack(value: str) -> str:
    """Escape Slack's control characters so typed text cannot form links or mentions."""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_finalize(value: object) -> object:
    return escape_slack(value) if isinstance(value, str) else value


@pass_context
def _local(context: Context, instant: datetime) -> str:
    return format_local(instant, context["audience"]["timezone"])


@pass_context
def _local_time(context: Context, instant: datetime) -> str:
    local = to_local(instant, context["audience"]["timezone"])
    return f"{local:%H:%M} {local.tzname()}"


@pass_context
def _local_date(context: Context, instant: datetime) -> str:
    local = to_local(instant, context["audience"]["timezone"])
    return f"{local:%A} {local.day} {local:%B %Y}"


@pass_context
def _when(context: Context, instant: datetime) -> str:
    """Local time with the UTC time alongside, unless the audience lives in UTC."""
    zone = context["audience"]["timezone"]
    if zone == "UTC":
        return format_utc(instant)
    return f"{format_local(instant, zone)} ({instant.astimezone(UTC):%H:%M} UTC)"


@pass_context
def _local_span(context: Context, start: datetime, end: datetime) -> str:
    """``Sat 5 Dec 2026, 17:00 EST to 05:00`` when on one local day, else the end's date too."""
    zone = context["audience"]["timezone"]
    local_start, local_end = to_local(start, zone), to_local(end, zone)
    if local_start.date() == local_end.date():
        tail = f"{local_end:%H:%M} {local_end.tzname()}"
    else:
        tail = format_local(end, zone)
    return f"{format_local(start, zone)} to {tail}"


def _humanize(delta: timedelta) -> str:
    """Whole weeks, whole hours, or under an hour in words (``2 weeks``, ``48 hours``, ``30 minutes``); else ``1h30m``."""
    minutes = int(delta.total_seconds() // 60)
    if minutes % (60 * 24 * 7) == 0 and minutes >= 60 * 24 * 7:
        return format_duration(delta, style="prose", smallest="w")
    if minutes % 60 == 0:
        return format_duration(delta, style="prose", largest="h", smallest="h")
    if minutes < 60:
        return format_duration(delta, style="prose", largest="m", smallest="m")
    return format_duration(delta)


def _environment(root: Path, *, autoescape: bool, finalize: Any = None) -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(root)),
        undefined=StrictUndefined,
        autoescape=autoescape,
        finalize=finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        auto_reload=False,
    )
    env.filters.update(
        local=_local,
        when=_when,
        local_span=_local_span,
        local_time=_local_time,
        local_date=_local_date,
        utc=format_utc,
        iso=iso_utc,
        duration=_humanize,
    )
    return env


class Renderer:
    """Renders a plan's templates; one instance per templates folder (templates compile once)."""

    def __init__(self, templates_root: Path) -> None:
        self.root = templates_root
        self._html = _environment(templates_root, autoescape=True)
        self._text = _environment(templates_root, autoescape=False)
        self._slack = _environment(templates_root, autoescape=False, finalize=_slack_finalize)

    def candidates(self, message: str, audience: str | None, channel: Channel, part: str) -> list[str]:
        """Template names tried for a part, most specific first (the status page has no audience view)."""
        filename = PART_FILES[channel][part]
        names = [f"{message}/{filename}"]
        if audience and audience != "direct" and channel is not Channel.STATUSPAGE:
            names.insert(0, f"{message}/{audience}/{filename}")
        return names

    def resolve(self, message: str, audience: str | None, channel: Channel, part: str) -> str | None:
        """The template name that would be used for a part, or None when none exists."""
        for name in self.candidates(message, audience, channel, part):
            if (self.root / name).is_file():
                return name
        return None

    def _template(self, message: str, audience: str | None, channel: Channel, part: str) -> Template:
        env = {"html": self._html}.get(part, self._slack if channel is Channel.SLACK else self._text)
        return env.select_template(self.candidates(message, audience, channel, part))

    def render(self, message: str, audience: str | None, channel: Channel, context: Mapping[str, Any]) -> Content:
        """Render one message for one audience on one channel."""

        def part(name: str) -> str:
            return self._template(message, audience, channel, name).render(context).strip()

        if channel is Channel.EMAIL:
            return EmailContent(subject=_one_line(part("subject")), html=part("html"), text=part("text") + "\n")
        if channel is Channel.SLACK:
            return build_slack_content(context["message"]["title"], part("body"), context)
        return StatuspageContent(
            title=_one_line(part("title"))[:STATUSPAGE_TITLE_LIMIT], body=part("body")[:STATUSPAGE_BODY_LIMIT]
        )


def _one_line(text: str) -> str:
    return " ".join(text.split())


def build_slack_content(title: str, body: str, context: Mapping[str, Any]) -> SlackContent:
    """Turn a rendered mrkdwn body into Block Kit: a header, one section per paragraph, a context line."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:SLACK_HEADER_LIMIT], "emoji": True}}
    ]
    for paragraph in _paragraphs(body):
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": paragraph}})
    cutover = context["cutover"]
    footer = f"{escape_slack(cutover['title'])} · T0 {format_utc(cutover['start'])}"
    blocks = blocks[: SLACK_MAX_BLOCKS - 1]
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": footer}]})
    fallback = f"{title}\n{body}"
    return SlackContent(text=fallback, blocks=tuple(blocks))


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
