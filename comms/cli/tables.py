"""Tables that read whole at 80 columns: short cells kept on one line, prose wrapped between words.

A column is either ``fixed`` (keys, states, times, counts: never wrapped, so a timestamp or a key is
never cut) or ``text`` (prose and lists: wrapped at spaces). Cells are plain text, never rich markup,
because they can hold user text. Times are short (``12-05 22:00``, the year in the title or header).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, TextIO

from rich import box
from rich.table import Table
from rich.text import Text

from comms.errors import InputError

__all__ = [
    "Column",
    "ColumnKind",
    "LONGEST_UNBROKEN",
    "PROSE_HEADERS",
    "breakable_key",
    "fitted_table",
    "fixed",
    "plain_table",
    "short_local",
    "short_utc",
    "text",
    "write_atomically",
]

ColumnKind = Literal["fixed", "text"]
Column = tuple[str, ColumnKind]
LONGEST_UNBROKEN = 30
"""A word longer than this (a path, a URL) may fold inside a prose column; shorter ones never break."""


def fixed(header: str) -> Column:
    """A column of short values kept on one line (keys, states, times, counts)."""
    return (header, "fixed")


def text(header: str) -> Column:
    """A column of prose or lists, wrapped between words."""
    return (header, "text")


def fitted_table(title: str | None, columns: Sequence[Column], rows: Iterable[Sequence[object]]) -> Table:
    """A light-ruled table (no vertical rules, so more room for cells); None shows '-'.

    Values are shown as plain text (``str``), never as markup; a ``Text`` is kept as given (a styled cell).
    """
    cells = [
        [value if isinstance(value, Text) else Text("-" if value is None else str(value)) for value in row]
        for row in rows
    ]
    table = Table(
        title=f"\n{title}" if title else None,  # a blank line above: the tables have no outer edge
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )
    for position, (header, kind) in enumerate(columns):
        if kind == "fixed":
            table.add_column(header, no_wrap=True, overflow="ignore")
        else:
            words = [word for row in cells for word in row[position].plain.split()] + header.split()
            longest = min(max(map(len, words), default=1), LONGEST_UNBROKEN)
            table.add_column(header, overflow="fold", min_width=longest, ratio=1)
    for row in cells:
        table.add_row(*row)
    return table


def short_utc(instant: datetime | None) -> str:
    """``12-05 22:00`` in UTC (month-day hour:minute), or '-'."""
    if instant is None:
        return "-"
    return f"{instant.astimezone(UTC):%m-%d %H:%M}"


def short_local(instant: datetime | None, zone: str) -> str:
    """``12-05 17:00 EST`` in ``zone``, or ''."""
    if instant is None:
        return ""
    from comms.core.times import to_local

    local = to_local(instant, zone)
    return f"{local:%m-%d %H:%M} {local.tzname()}"


def breakable_key(key: str, *, longest: int = 20) -> str:
    """An occurrence key that may wrap after each ':' and '/' when it is long (``escalation: x/ 1``)."""
    return key if len(key) <= longest else key.replace(":", ": ").replace("/", "/ ")


PROSE_HEADERS = frozenset(
    {"occurrence", "summary", "detail", "reason", "error", "recipient", "deliveries", "acked by", "value"}
)
"""Columns wrapped between words; every other column (keys, states, times, counts) stays on one line."""


def plain_table(title: str | None, headers: Sequence[str], rows: Iterable[Sequence[object]]) -> Table:
    """A table of plain-text cells (never rich markup: values can hold user text) that reads whole at 80 columns."""
    columns = [text(h) if h in PROSE_HEADERS else fixed(h) for h in headers]
    return fitted_table(title, columns, rows)


def write_atomically(path: Path, write: Callable[[TextIO], object]) -> object:
    """Write through ``path``.partial and rename, so an interrupted run never leaves a file that looks complete."""
    partial = path.with_name(path.name + ".partial")
    try:
        with partial.open("w", encoding="utf-8", newline="") as handle:
            result = write(handle)
        os.replace(partial, path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
    return result
