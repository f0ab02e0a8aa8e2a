"""Rendering of plan templates into channel content, once per message x audience x channel.

Templates live under ``templates/<message>/`` with one file per channel part; an audience
override sits in ``templates/<message>/<audience>/`` and usually ``{% extends %}`` the default.
Values people type reach templates as data only: autoescaped in HTML, Slack-escaped in Slack
text, and never compiled as Jinja.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template, pass_context
from jinja2.runtime import Context

from comms.channels.registry import SPECS, channel_spec
from comms.channels.slack_blocks import build_slack_content, escape_slack
from comms.core import locale_format
from comms.core.content import Content
from comms.core.locale_format import is_default
from comms.core.times import format_duration, format_local, format_utc, iso_utc, to_local
from comms.plan.fields import Channel
from comms.template_cache import template_bytecode_cache

__all__ = ["PART_FILES", "Renderer", "build_slack_content", "escape_slack"]

PART_FILES: Mapping[Channel, Mapping[str, tuple[str, ...]]] = {kind: spec.parts for kind, spec in SPECS.items()}
"""The template files of every part of every channel's content, preferred first (from the registry)."""


def _finalizer(escape: Callable[[str], str]) -> Callable[[object], object]:
    def finalize(value: object) -> object:
        return escape(value) if isinstance(value, str) else value

    return finalize


def _reader_locale(context: Context) -> str | None:
    """The audience's locale when it is not English (English keeps the house formats below)."""
    locale = context["audience"].get("locale") if "audience" in context else None
    return None if is_default(locale) else str(locale)


@pass_context
def _local(context: Context, instant: datetime) -> str:
    if locale := _reader_locale(context):
        return locale_format.local_datetime(instant, context["audience"]["timezone"], locale)
    return format_local(instant, context["audience"]["timezone"])


@pass_context
def _local_time(context: Context, instant: datetime) -> str:
    if locale := _reader_locale(context):
        return locale_format.local_time(instant, context["audience"]["timezone"], locale)
    local = to_local(instant, context["audience"]["timezone"])
    return f"{local:%H:%M} {local.tzname()}"


@pass_context
def _local_date(context: Context, instant: datetime) -> str:
    if locale := _reader_locale(context):
        return locale_format.local_date(instant, context["audience"]["timezone"], locale)
    local = to_local(instant, context["audience"]["timezone"])
    return f"{local:%A} {local.day} {local:%B %Y}"


@pass_context
def _utc(context: Context, instant: datetime) -> str:
    """The instant in UTC, written for the reader's locale."""
    if locale := _reader_locale(context):
        return locale_format.local_datetime(instant, "UTC", locale)
    return format_utc(instant)


@pass_context
def _number(context: Context, value: float) -> str:
    """A number with the reader's digit grouping (``12,840``; ``12.840`` in German)."""
    return locale_format.number(value, _reader_locale(context) or "en")


@pass_context
def _duration(context: Context, delta: timedelta) -> str:
    if locale := _reader_locale(context):
        return locale_format.duration(delta, locale)
    return _humanize(delta)


@pass_context
def _when(context: Context, instant: datetime) -> str:
    """Local time with the UTC time alongside, unless the audience lives in UTC."""
    zone = context["audience"]["timezone"]
    if locale := _reader_locale(context):
        return locale_format.when(instant, zone, locale)
    if zone == "UTC":
        return format_utc(instant)
    return f"{format_local(instant, zone)} ({instant.astimezone(UTC):%H:%M} UTC)"


@pass_context
def _local_span(context: Context, start: datetime, end: datetime) -> str:
    """``Sat 5 Dec 2026, 17:00 EST to 05:00`` when on one local day, else the end's date too."""
    zone = context["audience"]["timezone"]
    if locale := _reader_locale(context):
        return locale_format.local_span(start, end, zone, locale)
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
        utc=_utc,
        iso=iso_utc,
        duration=_duration,
        number=_number,
    )
    env.bytecode_cache = template_bytecode_cache(env)
    return env


class Renderer:
    """Renders a plan's templates; one instance per templates folder (templates compile once)."""

    def __init__(self, templates_root: Path) -> None:
        self.root = templates_root
        self._html = _environment(templates_root, autoescape=True)
        self._text = _environment(templates_root, autoescape=False)
        self._escaped: dict[Callable[[str], str], Environment] = {}

    def candidates(
        self, message: str, audience: str | None, channel: Channel, part: str, *, locale: str | None = None
    ) -> list[str]:
        """Template names tried for a part, most specific first.

        Each of the part's files in turn (a channel's own file before the one it falls back to),
        the audience's override before the message's default; channels sent once per message
        (the status page) have no audience view. For a reader's ``locale`` (not English) its
        variants come first: ``<message>/<audience>/<locale>/`` then ``<message>/<locale>/``.
        """
        spec = channel_spec(channel)
        per_audience = bool(audience) and audience != "direct" and spec.per_audience
        localized = locale is not None and not is_default(locale)
        names: list[str] = []
        for filename in spec.parts[part]:
            if localized:
                if per_audience:
                    names.append(f"{message}/{audience}/{locale}/{filename}")
                names.append(f"{message}/{locale}/{filename}")
            if per_audience:
                names.append(f"{message}/{audience}/{filename}")
            names.append(f"{message}/{filename}")
        return names

    def localized(self, message: str, audience: str | None, channel: Channel, part: str, locale: str) -> str | None:
        """The locale's own variant of a part, or None when the part falls back to the default wording."""
        default = set(self.candidates(message, audience, channel, part))
        for name in self.candidates(message, audience, channel, part, locale=locale):
            if name not in default and (self.root / name).is_file():
                return name
        return None

    def resolve(self, message: str, audience: str | None, channel: Channel, part: str) -> str | None:
        """The template name that would be used for a part, or None when none exists."""
        for name in self.candidates(message, audience, channel, part):
            if (self.root / name).is_file():
                return name
        return None

    def _environment_for(self, channel: Channel, part: str) -> Environment:
        if part == "html":
            return self._html
        escape = channel_spec(channel).escape
        if escape is None:
            return self._text
        if escape not in self._escaped:
            self._escaped[escape] = _environment(self.root, autoescape=False, finalize=_finalizer(escape))
        return self._escaped[escape]

    def _template(
        self, message: str, audience: str | None, channel: Channel, part: str, locale: str | None = None
    ) -> Template:
        env = self._environment_for(channel, part)
        return env.select_template(self.candidates(message, audience, channel, part, locale=locale))

    def render(self, message: str, audience: str | None, channel: Channel, context: Mapping[str, Any]) -> Content:
        """Render one message for one audience on one channel (the channel's spec assembles the parts).

        The audience's locale (``context["audience"]["locale"]``) picks its template variants.
        """
        view = context.get("audience")
        locale = view.get("locale") if isinstance(view, Mapping) else None

        def part(name: str) -> str:
            return self._template(message, audience, channel, name, locale).render(context).strip()

        return channel_spec(channel).content(part, context)


def render_expression(templates_root: Path, expression: str, context: Mapping[str, Any]) -> str:
    """Render one ``{{ expression }}`` with the plan's filters (for the reference of variables and filters)."""
    return Renderer(templates_root)._text.from_string("{{ " + expression + " }}").render(context)
