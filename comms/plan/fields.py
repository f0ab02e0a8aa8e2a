"""What every plan model is built from: the channel kinds, the frozen base, and durations, offsets and quiet
hours as a plan file writes them (``2h``, ``T-48h``, ``22:00-07:00``), each with its JSON Schema for editors."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, WithJsonSchema

from comms.core.quiet_hours import QuietHours, parse_quiet_hours
from comms.core.times import parse_duration, parse_offset

__all__ = ["Channel", "Duration", "Frozen", "Offset", "QuietHoursText"]


class Channel(StrEnum):
    """The delivery channels a message can go out on."""

    EMAIL = "email"
    SLACK = "slack"
    STATUSPAGE = "statuspage"
    WEBHOOK = "webhook"


class Frozen(BaseModel):
    """A plan model: immutable, unknown keys refused, each field documented by its docstring."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


def _duration(value: object) -> timedelta:
    if isinstance(value, timedelta):
        return value
    return parse_duration(str(value))


def _offset(value: object) -> timedelta:
    if isinstance(value, timedelta):
        return value
    return parse_offset(str(value))


def _quiet_hours(value: object) -> object:
    return parse_quiet_hours(value) if isinstance(value, str) else value


_DURATION_TEXT = r"^\s*(?=\S*\d)(\d+w)?\s*(\d+d)?\s*(\d+h)?\s*(\d+m)?\s*(\d+s)?\s*$"
_OFFSET_TEXT = r"^\s*T(0?|\s*[+-]\s*(?=\S*\d)(\d+w)?\s*(\d+d)?\s*(\d+h)?\s*(\d+m)?\s*(\d+s)?)\s*$"
"""What parse_duration and parse_offset accept, as JSON Schema patterns (for editors)."""

Duration = Annotated[
    timedelta,
    BeforeValidator(_duration),
    WithJsonSchema({"type": "string", "pattern": _DURATION_TEXT, "examples": ["2h", "30m", "1w"]}),
]
"""A length of time written as ``2h``, ``30m``, ``1w``."""

Offset = Annotated[
    timedelta,
    BeforeValidator(_offset),
    WithJsonSchema({"type": "string", "pattern": _OFFSET_TEXT, "examples": ["T-48h", "T0", "T+1w"]}),
]
"""An instant relative to T0 written as ``T-48h``, ``T0``, ``T+1w``."""

_QUIET_HOURS_TEXT = r"^\s*([01]\d|2[0-3]):([0-5]\d)\s*-\s*([01]\d|2[0-3]):([0-5]\d)\s*$"
QuietHoursText = Annotated[
    QuietHours,
    BeforeValidator(_quiet_hours),
    WithJsonSchema({"type": "string", "pattern": _QUIET_HOURS_TEXT, "examples": ["22:00-07:00"]}),
]
"""A local span of the day written as ``22:00-07:00`` (it may cross midnight)."""
