"""The sender's lease: one row naming who may send, renewed while it works, taken over when it expires.

Claims belong to a lease, not to a PID: a claim token starts with its lease owner's id, and whoever holds
the live lease settles the claims of any other owner (their process is gone, or it lost the lease).
A CLI command that causes sends writes its rows and ``wake``s the holder; with no live holder it takes
the lease itself for its own messages and releases it.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine

from comms.store.types import UTCDateTime, sqlite_stamp

__all__ = ["LeaseHolder", "acquire", "holder", "new_owner_id", "release", "renew", "wake", "wake_count"]

SENDER_LEASE = "sender"
_TYPE = UTCDateTime()


@dataclass(frozen=True)
class LeaseHolder:
    """Who holds a lease, since when, and until when it is valid without a heartbeat."""

    owner: str
    role: str
    acquired_at: datetime
    heartbeat_at: datetime
    expires_at: datetime

    def describe(self, now: datetime) -> str:
        """One phrase for an operator: who, and how fresh its heartbeat is."""
        host, _, rest = self.owner.partition(":")
        pid = rest.partition(":")[0]
        age = max((now - self.heartbeat_at).total_seconds(), 0.0)
        return f"{self.role} (pid {pid} on {host}), heartbeat {age:.1f} s ago"


def new_owner_id() -> str:
    """A lease owner id: ``host:pid:nonce`` (the nonce tells two runs of one PID apart across containers)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def _ensure_row(connection: object) -> None:
    connection.exec_driver_sql(  # type: ignore[attr-defined]
        "INSERT OR IGNORE INTO lease (name, owner, role, acquired_at, heartbeat_at, expires_at, wakes) "
        "VALUES (?, '', '', ?, ?, ?, 0)",
        (SENDER_LEASE, _EPOCH, _EPOCH, _EPOCH),
    )


_EPOCH = "1970-01-01 00:00:00.000000"


def acquire(engine: Engine, owner: str, *, role: str, now: datetime, ttl: float) -> LeaseHolder | None:
    """Take the lease if it is free, expired or already ours; return None if another live owner holds it."""
    stamp, until = sqlite_stamp(now), sqlite_stamp(now + timedelta(seconds=ttl))
    with engine.begin() as connection:
        _ensure_row(connection)
        taken = connection.exec_driver_sql(
            "UPDATE lease SET owner = ?, role = ?, acquired_at = CASE WHEN owner = ? THEN acquired_at ELSE ? END, "
            "heartbeat_at = ?, expires_at = ? WHERE name = ? AND (owner = ? OR owner = '' OR expires_at < ?)",
            (owner, role, owner, stamp, stamp, until, SENDER_LEASE, owner, stamp),
        )
        if not taken.rowcount:
            return None
    return LeaseHolder(owner, role, now, now, now + timedelta(seconds=ttl))


def renew(engine: Engine, owner: str, *, now: datetime, ttl: float) -> bool:
    """Extend our lease; False when it is no longer ours (it expired and another owner took it)."""
    until = sqlite_stamp(now + timedelta(seconds=ttl))
    with engine.begin() as connection:
        renewed = connection.exec_driver_sql(
            "UPDATE lease SET heartbeat_at = ?, expires_at = ? WHERE name = ? AND owner = ?",
            (sqlite_stamp(now), until, SENDER_LEASE, owner),
        )
    return bool(renewed.rowcount)


def release(engine: Engine, owner: str) -> None:
    """Give the lease up at once (a clean stop), so a standby takes over without waiting for expiry."""
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "UPDATE lease SET owner = '', role = '', expires_at = ? WHERE name = ? AND owner = ?",
            (_EPOCH, SENDER_LEASE, owner),
        )


def holder(engine: Engine, *, now: datetime) -> LeaseHolder | None:
    """The live holder of the sender lease, or None when nobody holds it (or its lease expired)."""
    with engine.connect() as connection:
        row = connection.exec_driver_sql(
            "SELECT owner, role, acquired_at, heartbeat_at, expires_at FROM lease WHERE name = ?", (SENDER_LEASE,)
        ).first()
    if row is None or not row[0]:
        return None
    found = LeaseHolder(row[0], row[1], *(_read(value) for value in row[2:5]))
    return found if found.expires_at > now else None


def wake(engine: Engine) -> None:
    """Tell the holder that new work was written (it looks at this counter between ticks)."""
    with engine.begin() as connection:
        _ensure_row(connection)
        connection.exec_driver_sql("UPDATE lease SET wakes = wakes + 1 WHERE name = ?", (SENDER_LEASE,))


def wake_count(engine: Engine) -> int:
    """The wake counter; a change since the last look means a command queued work."""
    with engine.connect() as connection:
        row = connection.exec_driver_sql("SELECT wakes FROM lease WHERE name = ?", (SENDER_LEASE,)).first()
    return int(row[0]) if row else 0


def _read(value: object) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    else:
        parsed = datetime.fromisoformat(str(value))
    result = _TYPE.process_result_value(parsed, None)
    assert result is not None
    return result
