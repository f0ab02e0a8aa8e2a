"""Dates, times, lengths and numbers written for a reader's locale, with Babel. Pure: no I/O.

English (``en``, the default) keeps the house format of ``comms.core.times``; another locale gets
Babel's names of days and months, its word order and its digits. Time zones are the audience's own.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_time, format_timedelta
from babel.numbers import format_decimal

from comms.core.times import to_local

__all__ = [
    "DEFAULT_LOCALE",
    "check_locale",
    "duration",
    "is_default",
    "local_date",
    "local_datetime",
    "local_span",
    "local_time",
    "number",
    "when",
]

DEFAULT_LOCALE = "en"
_DATE_PATTERNS = {"de": "EEE d. MMM y", "fr": "EEE d MMM y"}


def is_default(locale: str | None) -> bool:
    """Whether ``locale`` is English, written in the house format."""
    return not locale or locale.split("_")[0].split("-")[0].lower() == DEFAULT_LOCALE


def check_locale(value: str) -> str:
    """``value`` if Babel knows it (``de``, ``fr``, ``de_CH``); ValueError otherwise."""
    try:
        Locale.parse(value.replace("-", "_"))
    except (UnknownLocaleError, ValueError) as exc:
        raise ValueError(f"unknown locale {value!r}: use a language code such as 'de' or 'fr'") from exc
    return value


def local_datetime(instant: datetime, zone: str, locale: str) -> str:
    """``Sa. 5. Dez. 2026, 17:00 EST`` for de; Babel's medium date elsewhere; the zone's short name as in English."""
    local = to_local(instant, zone)
    pattern = _DATE_PATTERNS.get(_language(locale), "medium")
    return f"{format_date(local, pattern, locale=_babel(locale))}, {local_time(instant, zone, locale)}"


def local_time(instant: datetime, zone: str, locale: str) -> str:
    """``17:00 EST``: the wall time and the zone's short name (the one the English text and the status page use)."""
    local = to_local(instant, zone)
    return f"{format_time(local, 'HH:mm', tzinfo=local.tzinfo, locale=_babel(locale))} {local.tzname()}"


def local_date(instant: datetime, zone: str, locale: str) -> str:
    """``Samstag, 5. Dezember 2026``: the full local date."""
    return format_date(to_local(instant, zone), "full", locale=_babel(locale))


def when(instant: datetime, zone: str, locale: str) -> str:
    """The local date and time with the UTC time beside it (unless the reader lives in UTC)."""
    if zone == "UTC":
        return local_datetime(instant, zone, locale)
    return f"{local_datetime(instant, zone, locale)} ({instant.astimezone(UTC):%H:%M} UTC)"


def local_span(start: datetime, end: datetime, zone: str, locale: str) -> str:
    """From start to end, the end's date repeated only when it is another local day."""
    same_day = to_local(start, zone).date() == to_local(end, zone).date()
    tail = local_time(end, zone, locale) if same_day else local_datetime(end, zone, locale)
    begins = local_datetime(start, zone, locale)
    language = _language(locale)
    if language == "de":
        return f"{begins} bis {tail}"
    if language == "fr":
        return f"{begins} – {tail}" if same_day else f"du {begins} au {tail}"
    return f"{begins} – {tail}"


def duration(delta: timedelta, locale: str) -> str:
    """``12 Stunden``, ``48 heures``: a length in the locale's words (hours kept up to three days)."""
    return format_timedelta(delta, threshold=3, locale=_babel(locale))


def number(value: float, locale: str) -> str:
    """``12.840`` in German, ``12 840`` in French."""
    return format_decimal(value, locale=_babel(locale))


def _language(locale: str) -> str:
    return locale.replace("-", "_").split("_")[0].lower()


def _babel(locale: str) -> str:
    return locale.replace("-", "_")
