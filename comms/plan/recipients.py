"""The one reader of recipients CSVs, and streaming an audience's email recipients.

A recipients CSV is UTF-8 text (a byte-order mark is allowed), with ``,`` or ``;`` between fields
(whichever the header line uses more), LF or CRLF line ends, an ``email`` column and an optional
``name`` column and an optional ``locale`` column (the reader's language, ``de``). It is read line by line, never whole: a million rows cost no more memory than ten.
A file that is not UTF-8 text, has no ``email`` column or has no rows is refused with a
``RecipientsCsvError`` naming the file and, where there is one, the line.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Generator, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import NamedTuple

from comms.errors import PlanError, Problem
from comms.plan.addresses import address_problem
from comms.plan.audiences import Audience
from comms.plan.loader import display_path

__all__ = [
    "CsvRecipient",
    "RecipientRow",
    "RecipientsCsvError",
    "RecipientsScan",
    "check_recipients_header",
    "iter_email_recipients",
    "read_recipients_csv",
    "read_suppression_list",
    "scan_recipients_csv",
]

_NUL = "\x00"


class RecipientsCsvError(PlanError):
    """A recipients CSV that cannot be read as one: ``path`` and ``line`` (None for the whole file) say where."""

    def __init__(self, path: Path, reason: str, *, line: int | None = None) -> None:
        self.path = path
        self.line = line
        self.reason = reason
        super().__init__([Problem(display_path(path), reason, line)])


class CsvRecipient(NamedTuple):
    """One data row of a recipients CSV: its line (where the row starts), the address, the name, the locale."""

    line: int
    address: str
    name: str | None
    locale: str | None = None


class RecipientRow(NamedTuple):
    """One email recipient; ``problem`` is set when the row cannot be sent to (a tuple: one per CSV row)."""

    address: str
    name: str | None
    source: str
    problem: str | None = None
    locale: str | None = None


def read_recipients_csv(path: Path, *, allow_empty: bool = False) -> Generator[CsvRecipient, None, None]:
    """Stream the data rows of a recipients CSV (blank rows skipped); raise RecipientsCsvError on a bad file.

    The header is checked on the first ``next()``; a file with a header and no rows raises at its end
    (unless ``allow_empty``: a suppression list may be empty).
    """
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise RecipientsCsvError(path, f"cannot be read ({exc.strerror or exc})") from exc
    start = 1
    try:
        with handle:
            header = handle.readline()
            if not header:
                raise RecipientsCsvError(path, "the file is empty: it needs a header line with an 'email' column")
            if _NUL in header:
                raise _not_text(path, 1)
            delimiter = ";" if header.count(";") > header.count(",") else ","
            reader = csv.reader(chain([header], handle), delimiter=delimiter)
            columns = [column.strip().lower() for column in next(reader, [])]
            if "email" not in columns:
                found = ", ".join(repr(c) for c in columns if c) or "none"
                raise RecipientsCsvError(path, f"CSV header has no 'email' column (columns found: {found})", line=1)
            email_at = columns.index("email")
            name_at = columns.index("name") if "name" in columns else len(columns)
            locale_at = columns.index("locale") if "locale" in columns else len(columns)
            rows = 0
            start = reader.line_num + 1
            for row in reader:
                joined = "".join(row)
                if _NUL in joined:
                    raise _not_text(path, start)
                if joined.strip():  # a blank line, or only empty cells, is not a recipient
                    rows += 1
                    address = row[email_at].strip() if email_at < len(row) else ""
                    name = (row[name_at].strip() or None) if name_at < len(row) else None
                    locale = (row[locale_at].strip() or None) if locale_at < len(row) else None
                    yield CsvRecipient(start, address, name, locale)
                start = reader.line_num + 1
    except UnicodeDecodeError as exc:  # the text layer decodes ahead of the rows: find the line in the bytes
        line, byte = _first_undecodable(path)
        raise RecipientsCsvError(
            path, f"not valid UTF-8 (byte 0x{byte:02x}): save it as a CSV in UTF-8", line=line
        ) from exc
    except csv.Error as exc:
        raise RecipientsCsvError(path, f"not a readable CSV ({exc})", line=start) from exc
    if rows == 0 and not allow_empty:
        raise RecipientsCsvError(path, "CSV has a header but no recipients")


@dataclass
class RecipientsScan:
    """What a pass over a whole recipients CSV found: rows, invalid addresses (the first few listed), repeats."""

    rows: int = 0
    invalid: list[tuple[int, str, str]] = field(default_factory=list)
    """(line, address, why) of the first invalid addresses, up to the ``listed`` asked for."""
    invalid_count: int = 0
    duplicates: int = 0
    """Rows whose address (any case) an earlier row had; counted only when asked for."""


def scan_recipients_csv(path: Path, *, listed: int, count_duplicates: bool = False) -> RecipientsScan:
    """Read the whole CSV, checking every address; raise RecipientsCsvError when it is not a recipients CSV."""
    scan = RecipientsScan()
    seen: set[int] = set()
    for row in read_recipients_csv(path):
        scan.rows += 1
        reason = address_problem(row.address)
        if reason is not None:
            scan.invalid_count += 1
            if len(scan.invalid) < listed:
                scan.invalid.append((row.line, row.address, reason))
        elif count_duplicates:
            folded = hash(row.address.lower())
            if folded in seen:
                scan.duplicates += 1
            else:
                seen.add(folded)
    return scan


def check_recipients_header(path: Path) -> None:
    """Read a recipients CSV up to its first row: the cheap check every plan load makes."""
    with closing(read_recipients_csv(path)) as rows:
        next(rows)


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
    for row in read_recipients_csv(csv_path):
        reason = address_problem(row.address)
        problem = None if reason is None else f"invalid email address {row.address!r}: {reason}"
        name = row.name
        if name and (";" in name or "," in name):
            name = name.replace(";", " ").replace(",", " ")
        yield RecipientRow(row.address, name, f"{display}:{row.line}", problem, row.locale)


def read_suppression_list(audience: Audience) -> frozenset[str]:
    """The unsubscribed addresses of an audience (lower case), from its suppression list; empty without one."""
    path = audience.suppression_path()
    if path is None:
        return frozenset()
    return frozenset(row.address.strip().lower() for row in read_recipients_csv(path, allow_empty=True) if row.address)


def _not_text(path: Path, line: int) -> RecipientsCsvError:
    return RecipientsCsvError(path, "not a text file (NUL byte): save it as a CSV in UTF-8", line=line)


def _first_undecodable(path: Path) -> tuple[int, int]:
    """The line number and value of the first byte that is not UTF-8 (read line by line, in bytes)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    number = 1
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                decoder.decode(raw)
            except UnicodeDecodeError as exc:
                return number, raw[exc.start] if exc.start < len(raw) else raw[-1]
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return number, 0
    return 1, 0
