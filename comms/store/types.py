"""Column types: aware UTC datetimes in, aware UTC datetimes out."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.types import DateTime, TypeDecorator

__all__ = ["UTCDateTime", "sqlite_stamp"]


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC as naive in SQLite, attaches UTC on read, and rejects naive values on write."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else _naive_utc(value)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def sqlite_stamp(value: datetime) -> str:
    """An aware datetime as ``UTCDateTime`` stores it, for statements that bypass the column type."""
    return _naive_utc(value).strftime("%Y-%m-%d %H:%M:%S.%f")


def _naive_utc(value: datetime) -> datetime:
    """UTC without its tzinfo, as SQLite keeps it; a naive value is refused (comms never guesses a zone)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r} refused: comms stores aware UTC only")
    return value.astimezone(UTC).replace(tzinfo=None)
