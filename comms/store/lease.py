"""The sender's lease: one row naming who may send, renewed while it works, taken over when it expires.

Claims belong to a lease, not to a PID: a claim token starts with its lease owner's id, and whoever holds
a live lease settles the claims of any owner without one (their process is gone, or it lost the lease).
On SQLite there is one ``sender`` row and so one holder; on PostgreSQL every worker holds a row of its
own (``sender/<owner>``) and the workers share the due work (claims skip rows another worker locked).
A CLI command that causes sends writes its rows and ``wake``s the holder; with no live holder it takes
the lease itself for its own messages and releases it.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, String, column, text
from sqlmodel import Session

from comms.store.dialect import is_postgresql, stamped
from comms.store.types import UTCDateTime

__all__ = [
    "LeaseHolder",
    "acquire",
    "holder",
    "live_holders",
    "live_owners",
    "new_owner_id",
    "release",
    "holds_fill",
    "release_fill",
    "renew",
    "take_fill",
    "wake",
    "wake_count",
]

SENDER_LEASE = "sender"
WAKE_CHANNEL = "comms_wake"
"""The PostgreSQL notification channel a wake is sent on (``comms.store.wake_channel`` listens)."""
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


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_ENSURE = {
    "sqlite": "INSERT OR IGNORE INTO lease (name, owner, role, acquired_at, heartbeat_at, expires_at, wakes) "
    "VALUES (:name, '', '', :epoch, :epoch, :epoch, 0)",
    "postgresql": "INSERT INTO lease (name, owner, role, acquired_at, heartbeat_at, expires_at, wakes) "
    "VALUES (:name, '', '', :epoch, :epoch, :epoch, 0) ON CONFLICT (name) DO NOTHING",
}
_ENSURE_STATEMENTS = {dialect: stamped(sql, "epoch") for dialect, sql in _ENSURE.items()}

_TAKE = stamped(
    "UPDATE lease SET owner = :owner, role = :role, "
    "acquired_at = CASE WHEN owner = :owner THEN acquired_at ELSE :now END, heartbeat_at = :now, expires_at = :until "
    "WHERE name = :name AND (owner = :owner OR owner = '' OR expires_at < :now)",
    "now",
    "until",
)
_RENEW = {
    "sqlite": stamped(
        "UPDATE lease SET heartbeat_at = :now, expires_at = :until WHERE name = :name AND owner = :owner",
        "now",
        "until",
    ),
    # Another worker settles the claims of an expired lease: a holder that stalled past expiry has lost it.
    "postgresql": stamped(
        "UPDATE lease SET heartbeat_at = :now, expires_at = :until "
        "WHERE name = :name AND owner = :owner AND expires_at >= :now",
        "now",
        "until",
    ),
}
_RELEASE = stamped(
    "UPDATE lease SET owner = '', role = '', expires_at = :epoch WHERE name = :name AND owner = :owner", "epoch"
)
_HOLDERS = stamped(
    "SELECT owner, role, acquired_at, heartbeat_at, expires_at FROM lease "
    "WHERE (name = :name OR name LIKE :prefix) AND owner <> '' AND expires_at > :now ORDER BY heartbeat_at DESC",
    "now",
).columns(
    column("owner", String),
    column("role", String),
    column("acquired_at", _TYPE),
    column("heartbeat_at", _TYPE),
    column("expires_at", _TYPE),
)


COMMAND_ROLE = "command"
"""The role of a command that sends its own rows when no worker is there (``delivery.sender.send_queued``)."""

_LIVE_WORKER = stamped(
    "SELECT 1 FROM lease WHERE name LIKE :prefix AND owner <> :owner AND owner <> '' AND role <> :command "
    "AND expires_at > :now LIMIT 1",
    "now",
)


def _live_worker(connection: Connection, owner: str, now: datetime) -> bool:
    found = connection.execute(
        _LIVE_WORKER, {"prefix": f"{SENDER_LEASE}/%", "owner": owner, "command": COMMAND_ROLE, "now": now}
    ).first()
    return found is not None


def _row_name(connection: Connection, owner: str) -> str:
    """The lease row of ``owner``: the one ``sender`` row on SQLite, a row of its own per worker on PostgreSQL."""
    return f"{SENDER_LEASE}/{owner}" if is_postgresql(connection) else SENDER_LEASE


def _ensure_row(connection: Connection, name: str = SENDER_LEASE) -> None:
    connection.execute(_ENSURE_STATEMENTS[connection.dialect.name], {"name": name, "epoch": _EPOCH})


def acquire(engine: Engine, owner: str, *, role: str, now: datetime, ttl: float) -> LeaseHolder | None:
    """Take the lease if it is free, expired or already ours; return None if another live owner holds it.

    On PostgreSQL every worker holds a lease row of its own, so a worker's acquire always succeeds there; a
    command's (``role="command"``) fails while a live worker holds one, so the command wakes the workers
    instead of sending beside them.
    """
    until = now + timedelta(seconds=ttl)
    with engine.begin() as connection:
        name = _row_name(connection, owner)
        if is_postgresql(connection) and role == COMMAND_ROLE and _live_worker(connection, owner, now):
            return None
        _ensure_row(connection, name)
        taken = connection.execute(_TAKE, {"owner": owner, "role": role, "now": now, "until": until, "name": name})
        if not taken.rowcount:
            return None
    return LeaseHolder(owner, role, now, now, until)


def renew(engine: Engine, owner: str, *, now: datetime, ttl: float) -> bool:
    """Extend our lease; False when it is no longer ours (it expired and another owner took it)."""
    until = now + timedelta(seconds=ttl)
    with engine.begin() as connection:
        name = _row_name(connection, owner)
        renewed = connection.execute(
            _RENEW[connection.dialect.name], {"now": now, "until": until, "name": name, "owner": owner}
        )
    return bool(renewed.rowcount)


def release(engine: Engine, owner: str) -> None:
    """Give the lease up at once (a clean stop), so a standby takes over without waiting for expiry."""
    with engine.begin() as connection:
        connection.execute(_RELEASE, {"epoch": _EPOCH, "name": _row_name(connection, owner), "owner": owner})


FILL_LEASE = "fill"
"""Lease rows ``fill/<occurrence id>``: which worker writes an occurrence's delivery rows (PostgreSQL)."""
FILL_ROLE = "filler"
_DROP = text("DELETE FROM lease WHERE name = :name AND owner = :owner")


def take_fill(engine: Engine, occurrence_id: int, owner: str, *, now: datetime, ttl: float) -> bool:
    """Become (or stay) the one writer of the occurrence's rows; False while another live worker writes them.

    Only PostgreSQL has several workers: on SQLite the sender is alone and always writes. Called again
    before each chunk it renews the fill lease; a writer that died loses it ``ttl`` seconds after its last
    chunk, and the next worker carries on where it stopped (skipping the rows written, ``holds_fill``).
    """
    if not is_postgresql(engine):
        return True
    name = f"{FILL_LEASE}/{occurrence_id}"
    until = now + timedelta(seconds=ttl)
    with engine.begin() as connection:
        _ensure_row(connection, name)
        taken = connection.execute(_TAKE, {"owner": owner, "role": FILL_ROLE, "now": now, "until": until, "name": name})
    return bool(taken.rowcount)


_FILL_OWNER = text("SELECT owner FROM lease WHERE name = :name FOR UPDATE")


def holds_fill(session: Session, occurrence_id: int, owner: str) -> bool:
    """Inside a chunk's transaction, just before it commits: whether ``owner`` still writes the occurrence's rows.

    On PostgreSQL the lease row is locked until the commit, so no worker takes the lease over between this
    check and the chunk landing; two writers never both write one lane's rows (nothing in the table would
    refuse the second copy). On SQLite the sender is alone, and this is always True.
    """
    if not is_postgresql(session.get_bind()):
        return True
    row = session.connection().execute(_FILL_OWNER, {"name": f"{FILL_LEASE}/{occurrence_id}"}).first()
    return row is not None and str(row[0]) == owner


def release_fill(engine: Engine, occurrence_id: int, owner: str) -> None:
    """Give up writing the occurrence's rows (written, or this worker stops): another may carry on at once."""
    if is_postgresql(engine):
        with engine.begin() as connection:
            connection.execute(_DROP, {"name": f"{FILL_LEASE}/{occurrence_id}", "owner": owner})


def live_holders(engine: Engine, *, now: datetime) -> list[LeaseHolder]:
    """Every live holder of a sender lease, freshest heartbeat first (at most one on SQLite)."""
    with engine.connect() as connection:
        rows = connection.execute(_HOLDERS, {"name": SENDER_LEASE, "prefix": f"{SENDER_LEASE}/%", "now": now}).all()
    return [LeaseHolder(*row) for row in rows]


def holder(engine: Engine, *, now: datetime) -> LeaseHolder | None:
    """A live holder of the sender lease (the freshest), or None when nobody holds it (or its lease expired)."""
    holders = live_holders(engine, now=now)
    return holders[0] if holders else None


def live_owners(engine: Engine, *, now: datetime) -> set[str]:
    """The owners holding a live sender lease: their claims may still have requests out."""
    return {found.owner for found in live_holders(engine, now=now)}


def wake(engine: Engine) -> None:
    """Tell the holder that new work was written (it looks at this counter between ticks)."""
    with engine.begin() as connection:
        _ensure_row(connection)
        connection.execute(text("UPDATE lease SET wakes = wakes + 1 WHERE name = :name"), {"name": SENDER_LEASE})
        if is_postgresql(connection):  # listening workers wake when this commits (comms.store.wake_channel)
            connection.execute(text("SELECT pg_notify(:channel, '')"), {"channel": WAKE_CHANNEL})


def wake_count(engine: Engine) -> int:
    """The wake counter; a change since the last look means a command queued work."""
    with engine.connect() as connection:
        row = connection.execute(text("SELECT wakes FROM lease WHERE name = :name"), {"name": SENDER_LEASE}).first()
    return int(row[0]) if row else 0
