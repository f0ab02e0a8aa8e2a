"""The reference of template variables and filters: what a message's templates may use, with examples.

Examples come from the same sample context validation renders with, so they are what a template
would print; the filters are the rendering environment's own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from comms.core.context import sample_context
from comms.core.times import format_duration, iso_utc
from comms.errors import InputError
from comms.plan.models import Plan
from comms.rendering import render_expression

__all__ = ["FILTERS", "TemplateFilter", "TemplateVariable", "message_variables", "template_filters"]


@dataclass(frozen=True)
class TemplateVariable:
    """One variable a template can print: its dotted name and a sample value as text."""

    name: str
    example: str


@dataclass(frozen=True)
class TemplateFilter:
    """One filter of the rendering environment: how it is written, what it does, an example."""

    usage: str
    meaning: str
    example: str


FILTERS: tuple[tuple[str, str], ...] = (
    ("cutover.start | when", "an instant in the audience's zone, with UTC beside it"),
    ("cutover.start | local", "an instant in the audience's zone"),
    ("cutover.start | local_time", "the time of day in the audience's zone"),
    ("cutover.start | local_date", "the date in the audience's zone"),
    ("cutover.start | local_span(cutover.end)", "a window in the audience's zone (end date only if it differs)"),
    ("cutover.start | utc", "an instant in UTC"),
    ("cutover.start | iso", "an instant as ISO-8601 UTC"),
    ("cutover.window | duration", "a length of time in words"),
    ("12840 | number", "a number with the reader's digit grouping (12.840 in German)"),
)
"""Every filter the templates may use (beyond Jinja's built-ins such as ``upper``), as used on samples."""


def message_variables(plan: Plan, message_key: str, *, audience: str | None = None) -> list[TemplateVariable]:
    """Every variable the templates of ``message_key`` see, flattened to dotted names with sample values."""
    try:
        message = plan.message(message_key)
    except KeyError:
        known = ", ".join(m.key for m in plan.schedule.messages)
        raise InputError(f"MESSAGE: no message {message_key!r} in the plan (known: {known})") from None
    chosen = plan.audiences[audience or message.audiences[0]] if message.audiences else None
    context = sample_context(plan, message, chosen)
    variables: list[TemplateVariable] = []
    _flatten(context, "", variables)
    return variables


def template_filters(plan: Plan | None = None) -> list[TemplateFilter]:
    """The filters, each with an example rendered for an audience in America/New_York."""
    from comms.core.context import SAMPLE_START

    context = {
        "audience": {"key": "example", "title": "Example", "timezone": "America/New_York"},
        "cutover": {"start": SAMPLE_START, "end": SAMPLE_START + timedelta(hours=12), "window": timedelta(hours=12)},
    }
    root = plan.root / "templates" if plan else Path(".")
    result = []
    for usage, meaning in FILTERS:
        name = usage.split("|", 1)[1].strip()
        result.append(
            TemplateFilter(usage=f"| {name}", meaning=meaning, example=render_expression(root, usage, context))
        )
    return result


def _flatten(value: Any, prefix: str, out: list[TemplateVariable]) -> None:
    if isinstance(value, Mapping) and value:
        for key, item in value.items():
            _flatten(item, f"{prefix}.{key}" if prefix else str(key), out)
        return
    out.append(TemplateVariable(prefix, _example(value)))


def _example(value: Any) -> str:
    if isinstance(value, datetime):
        return f"{iso_utc(value)} (an instant: use a filter such as | when)"
    if isinstance(value, timedelta):
        return f"{format_duration(value)} (a length: | duration writes it in words)"
    if isinstance(value, Mapping):
        return "{} (empty)"
    if value is None:
        return "none (not set for this message)"
    return str(value) if not isinstance(value, list) else ", ".join(str(v) for v in value)
