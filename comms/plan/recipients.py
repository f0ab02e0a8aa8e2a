"""Streaming an audience's email recipients: the inline list, then the CSV row by row."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass

from comms.plan.loader import display_path
from comms.plan.models import Audience

_ADDRESS = re.compile(r"^[^@\s,;<>\"]+@[^@\s,;<>\"]+\.[^@\s,;<>\"]+$")


@dataclass(frozen=True)
class RecipientRow:
    """One email recipient; ``problem`` is set when the row cannot be sent to."""

    address: str
    name: str | None
    source: str
    problem: str | None = None


def iter_email_recipients(audience: Audience) -> Iterator[RecipientRow]:
    """Yield every email recipient of the audience without loading a CSV into memory.

    Repeats among the inline recipients are skipped here; repeats in a CSV are not (remembering every address
    would cost memory in proportion to the audience): the delivery's idempotency key, which lower-cases the
    address, drops them on insert.
    """
    email = audience.channels.email
    if email is None:
        return
    seen: set[str] = set()
    for position, address in enumerate(email.recipients, start=1):
        lowered = str(address).lower()
        if lowered not in seen:
            seen.add(lowered)
            yield RecipientRow(str(address), None, f"{display_path(audience.source)}:recipients[{position}]")
    csv_path = audience.csv_path()
    if csv_path is None:
        return
    display = display_path(csv_path)
    with csv_path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = [column.strip().lower() for column in next(reader, [])]
        email_at = header.index("email")
        name_at = header.index("name") if "name" in header else None
        for line, row in enumerate(reader, start=2):
            if not row or not any(cell.strip() for cell in row):
                continue
            address = row[email_at].strip() if email_at < len(row) else ""
            name = row[name_at].strip() or None if name_at is not None and name_at < len(row) else None
            problem = None if _ADDRESS.match(address) else f"invalid email address {address!r}"
            if name and (";" in name or "," in name):
                name = name.replace(";", " ").replace(",", " ")
            yield RecipientRow(address, name, f"{display}:{line}", problem)
