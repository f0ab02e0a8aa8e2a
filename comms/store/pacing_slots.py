"""Rate limits shared by several workers: a slot per key reserved in the database (PostgreSQL).

Slack takes about one post per second per channel however many workers post; each worker reserves the
next slot of the channel's row in one statement (the row lock orders concurrent reservations) and waits
until it. With SQLite there is one sender, and its in-process pacer is enough (``is_shared`` False).
A provider's 429 is a row too (``hold:<channel>``): every worker waits it out before its next request.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, column, text
from sqlmodel import Session

from comms.store.dialect import is_postgresql, stamped
from comms.store.types import UTCDateTime

__all__ = ["hold_provider", "is_shared", "provider_held_until", "reserve_slot"]

_RESERVE = stamped(
    "INSERT INTO pacing (key, next_at) VALUES (:key, :after) "
    "ON CONFLICT (key) DO UPDATE SET next_at = GREATEST(pacing.next_at, :now) + (:after - :now) "
    "RETURNING next_at",
    "now",
    "after",
).columns(column("next_at", UTCDateTime()))


def is_shared(engine: Engine) -> bool:
    """Whether several workers may send on this database, so pacing must be reserved in it."""
    return is_postgresql(engine)


def reserve_slot(engine: Engine, key: str, *, interval: float, now: datetime) -> datetime:
    """Reserve the next slot of ``key`` (``now`` at the earliest, ``interval`` after the previous one); its time."""
    step = timedelta(seconds=interval)
    with engine.begin() as connection:
        next_at = connection.execute(_RESERVE, {"key": key, "now": now, "after": now + step}).scalar_one()
    slot: datetime = next_at - step
    return slot


_HOLD = stamped(
    "INSERT INTO pacing (key, next_at) VALUES (:key, :until) "
    "ON CONFLICT (key) DO UPDATE SET next_at = GREATEST(pacing.next_at, :until)",
    "until",
)
_HELD = text("SELECT next_at FROM pacing WHERE key = :key").columns(column("next_at", UTCDateTime()))


def _hold_key(channel: str) -> str:
    return f"hold:{channel}"


def hold_provider(connection: Connection | Session, channel: str, *, until: datetime) -> None:
    """A provider asked the account to wait (429): every worker's next request on ``channel`` waits ``until``."""
    connection.execute(_HOLD, {"key": _hold_key(channel), "until": until})


def provider_held_until(engine: Engine, channel: str) -> datetime | None:
    """Until when the provider of ``channel`` asked every worker to wait, if it did."""
    with engine.connect() as connection:
        until: datetime | None = connection.execute(_HELD, {"key": _hold_key(channel)}).scalar()
    return until
