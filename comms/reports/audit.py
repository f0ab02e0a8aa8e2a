"""The audit trail: one row per delivery, exported as CSV or JSON, and the exact content a delivery sent.

Streaming: the export is ONE SELECT read with ``yield_per`` (``comms.store.audit``) and written row
by row, so memory stays flat whatever the size of the audience, and the rows are one consistent
snapshot of the store (SQLite gives a single statement a stable view in WAL mode, while the worker
keeps writing).

Each row carries the SHA-256 of the stored rendered content (``ContentRow.sha256``, computed over
``ContentRow.body_json``); ``comms audit show DELIVERY_ID`` prints that content and checks the hash.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any, TextIO

from comms.core.content import Content, content_from_json, content_hash
from comms.core.times import iso_utc
from comms.errors import InputError, NotFoundError
from comms.store import repository as repo
from comms.store.audit import AuditRecord, iter_audit_records, stored_content
from comms.store.engine import Engine

__all__ = [
    "AUDIT_COLUMNS",
    "AuditRow",
    "DeliveryContent",
    "FORMATS",
    "YIELD_PER",
    "delivery_content",
    "export_audit",
    "iter_audit_rows",
    "write_csv",
    "write_json",
]

AUDIT_COLUMNS = (
    "delivery_id",
    "when",
    "occurrence",
    "message",
    "audience",
    "channel",
    "recipient",
    "state",
    "attempts",
    "provider_id",
    "last_error",
    "content_sha256",
    "provider_event",
    "provider_event_at",
    "provider_outcome",
)
FORMATS = ("csv", "json")
YIELD_PER = 1000


@dataclass(frozen=True)
class AuditRow:
    """One delivery as audited: ``when`` is its send time, or its last change when it was not sent."""

    delivery_id: int
    when: str | None
    occurrence: str
    message: str
    audience: str
    channel: str
    recipient: str
    state: str
    attempts: int
    provider_id: str | None
    last_error: str | None
    content_sha256: str
    provider_event: str | None = None
    """The provider's last event for the delivery (SendGrid's Event Webhook), and its outcome so far."""
    provider_event_at: str | None = None
    provider_outcome: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The row as a dict in ``AUDIT_COLUMNS`` order."""
        return asdict(self)


def _row(record: AuditRecord) -> AuditRow:
    """The record as the audit shows it: one ``when`` (sent, else last changed) and times as ISO UTC."""
    values = record._asdict()
    sent_at, updated_at = values.pop("sent_at"), values.pop("updated_at")
    when = sent_at or updated_at
    event_at = values.pop("provider_event_at")
    return AuditRow(
        when=iso_utc(when) if when is not None else None,
        provider_event_at=iso_utc(event_at) if event_at else None,
        **values,
    )


def iter_audit_rows(engine: Engine, *, cutover_name: str | None, yield_per: int = YIELD_PER) -> Iterator[AuditRow]:
    """Every delivery of the cutover in id order, streamed ``yield_per`` rows at a time."""
    for record in iter_audit_records(engine, cutover_name=cutover_name, yield_per=yield_per):
        yield _row(record)


def write_csv(rows: Iterable[AuditRow], out: TextIO) -> int:
    """Write a header and one line per row as they come; return the number of rows. None is written empty."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(AUDIT_COLUMNS)
    count = 0
    for row in rows:
        writer.writerow(["" if value is None else value for value in row.to_json().values()])
        count += 1
    return count


def write_json(rows: Iterable[AuditRow], out: TextIO) -> int:
    """Write a JSON array, one row object per line, as rows come; return the number of rows."""
    out.write("[")
    count = 0
    for row in rows:
        out.write(",\n" if count else "\n")
        out.write(json.dumps(row.to_json(), ensure_ascii=False))
        count += 1
    out.write("\n]\n" if count else "]\n")
    return count


def export_audit(engine: Engine, out: TextIO, *, cutover_name: str | None, fmt: str) -> int:
    """Stream the cutover's audit trail to ``out`` as ``csv`` or ``json``; return the number of rows."""
    if fmt not in FORMATS:
        raise InputError(f"--format: {fmt!r} is not an audit format (choose {' or '.join(FORMATS)})")
    repo.load_cutover(engine, cutover_name)  # a clear NotFoundError before anything is written
    rows = iter_audit_rows(engine, cutover_name=cutover_name)
    return write_csv(rows, out) if fmt == "csv" else write_json(rows, out)


@dataclass(frozen=True)
class DeliveryContent:
    """A delivery and the exact content it sent (as rendered once for its audience and channel)."""

    cutover: str
    row: AuditRow
    content: Content
    body_json: str
    stored_sha256: str

    @property
    def intact(self) -> bool:
        """Whether the stored content still hashes to the recorded SHA-256."""
        return content_hash(self.body_json) == self.stored_sha256

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: the audit row, the hash check and the content itself."""
        return {
            "cutover": self.cutover,
            **self.row.to_json(),
            "content_intact": self.intact,
            "content": json.loads(self.body_json),
        }


def delivery_content(engine: Engine, delivery_id: int) -> DeliveryContent:
    """The audit row and stored content of one delivery; NotFoundError when there is no such delivery."""
    stored = stored_content(engine, delivery_id)
    if stored is None:
        raise NotFoundError(f"no delivery #{delivery_id}; the delivery_id column of 'comms audit export' lists them")
    row = _row(stored.record)
    return DeliveryContent(
        stored.cutover, row, content_from_json(stored.body_json), stored.body_json, row.content_sha256
    )
