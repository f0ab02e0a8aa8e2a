"""Slack Block Kit as a Slack user sees it: mrkdwn turned into safe HTML for the preview gallery.

Slack text arrives Slack-escaped (``&amp;``, ``&lt;``, ``&gt;``); it is unescaped once and then
HTML-escaped once, so a ``>`` shows as ``>`` (never ``&gt;``) and typed markup stays text. Links
(``<url|label>``), mentions (``<@U123>``, ``<#C123|name>``, ``<!here>``) and emoji codes are drawn as
Slack draws them; ``*bold*``, ``_italic_``, ``~strike~``, `` `code` `` and ``> quotes`` are formatted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup, escape

__all__ = ["EMOJI", "SlackBlockView", "mrkdwn_html", "slack_view"]

EMOJI: Mapping[str, str] = {
    "tada": "🎉",
    "white_check_mark": "✅",
    "warning": "⚠️",
    "rotating_light": "🚨",
    "rocket": "🚀",
    "calendar": "📆",
    "hourglass_flowing_sand": "⏳",
    "construction": "🚧",
    "rewind": "⏪",
    "arrows_counterclockwise": "🔄",
    "information_source": "ℹ️",
    "x": "❌",
    "large_green_circle": "🟢",
    "red_circle": "🔴",
    "bar_chart": "📊",
    "mega": "📣",
    "eyes": "👀",
    "wave": "👋",
    "pushpin": "📌",
    "no_entry": "⛔",
    "chart_with_upwards_trend": "📈",
    "thumbsup": "👍",
    "memo": "📝",
    "clock3": "🕒",
    "bell": "🔔",
}
"""Emoji codes the shipped templates use, drawn as the character; others show as their ``:code:``."""

_ANGLE = re.compile(r"<([^<>]+)>")
_EMOJI = re.compile(r":([a-z0-9_+-]+):")
_STYLES = (
    (re.compile(r"`([^`\n]+)`"), "code"),
    (re.compile(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])"), "b"),
    (re.compile(r"(?<![\w_])_([^_\n]+)_(?![\w_])"), "i"),
    (re.compile(r"(?<![\w~])~([^~\n]+)~(?![\w~])"), "s"),
)


@dataclass(frozen=True)
class SlackBlockView:
    """One block as drawn: its kind (header, section, context, divider) and its HTML."""

    kind: str
    html: Markup


def slack_view(blocks: Sequence[Mapping[str, Any]]) -> list[SlackBlockView]:
    """Every block of a message drawn as Slack shows it (unknown kinds show their text, if any)."""
    views = []
    for block in blocks:
        kind = str(block.get("type", ""))
        if kind == "header":
            views.append(SlackBlockView("header", _plain(_text_of(block.get("text")))))
        elif kind == "context":
            elements = block.get("elements") or []
            parts = [mrkdwn_html(_text_of(element)) for element in elements if isinstance(element, Mapping)]
            views.append(SlackBlockView("context", Markup(" ").join(parts)))
        elif kind == "divider":
            views.append(SlackBlockView("divider", Markup("")))
        else:
            text = block.get("text")
            is_plain = isinstance(text, Mapping) and text.get("type") == "plain_text"
            body = _text_of(text)
            views.append(SlackBlockView("section", _plain(body) if is_plain else mrkdwn_html(body)))
    return views


def mrkdwn_html(text: str) -> Markup:
    """Slack mrkdwn (Slack-escaped) as HTML: links, mentions, emoji, styles, quotes and line breaks."""
    lines = text.split("\n")
    out: list[Markup] = []
    quote: list[Markup] = []
    for line in lines:
        if line.startswith("&gt;"):
            quote.append(_inline(line[4:].lstrip(" ")))
            continue
        if quote:
            out.append(Markup("<blockquote>{}</blockquote>").format(Markup("<br>").join(quote)))
            quote = []
        out.append(_inline(line))
    if quote:
        out.append(Markup("<blockquote>{}</blockquote>").format(Markup("<br>").join(quote)))
    return Markup("<br>").join(out)


def _inline(line: str) -> Markup:
    pieces: list[Markup] = []
    position = 0
    for match in _ANGLE.finditer(line):
        pieces.append(_styled(line[position : match.start()]))
        pieces.append(_angle(match.group(1)))
        position = match.end()
    pieces.append(_styled(line[position:]))
    return Markup("").join(pieces)


def _angle(inner: str) -> Markup:
    target, _, label = inner.partition("|")
    if target.startswith("@"):
        return Markup('<span class="mention">@{}</span>').format(_unescape(label or target[1:]))
    if target.startswith("#"):
        return Markup('<span class="mention">#{}</span>').format(_unescape(label or target[1:]))
    if target.startswith("!"):
        return Markup('<span class="mention">@{}</span>').format(_unescape(label or target[1:].split("^")[0]))
    url = _unescape(target)
    if not url.startswith(("http://", "https://", "mailto:")):
        return escape(f"<{_unescape(inner)}>")
    return Markup('<a href="{}" rel="noopener noreferrer">{}</a>').format(url, _unescape(label or target))


def _styled(text: str) -> Markup:
    html = escape(_unescape(text))
    for pattern, tag in _STYLES:
        html = Markup(pattern.sub(rf"<{tag}>\1</{tag}>", str(html)))
    return Markup(_EMOJI.sub(lambda m: EMOJI.get(m.group(1), m.group(0)), str(html)))


def _plain(text: str) -> Markup:
    """plain_text with emoji: true: the text as is, emoji codes drawn."""
    return Markup(_EMOJI.sub(lambda m: EMOJI.get(m.group(1), m.group(0)), str(escape(text))))


def _text_of(value: object) -> str:
    if isinstance(value, Mapping):
        return str(value.get("text", ""))
    return ""


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
