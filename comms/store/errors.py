"""Translating the database driver's errors into the StoreError family, each one sentence naming the database.

``make_engine`` installs :func:`translate_statement_error` as the engine's ``handle_error`` listener, so
every statement, commit and connect raises a StoreError instead of an OperationalError. The CLI calls
:func:`as_store_error` for an exception nothing translated, so that it need not import SQLAlchemy.
Only errors a person can act on are translated; anything else (a missing table, a constraint) stays
what it is, because it is a bug or is handled by the code that expects it.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from sqlalchemy.engine import URL, ExceptionContext, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from comms.errors import (
    DatabaseFullError,
    DatabaseLockedError,
    DatabaseReadOnlyError,
    DatabaseUnavailableError,
    DatabaseUrlError,
    StoreError,
)

__all__ = [
    "as_store_error",
    "describe_database",
    "folder_error",
    "sqlite_path",
    "translate_statement_error",
    "url_error",
]

_UNKNOWN = "named by COMMS_DATABASE_URL"
_URL_EXAMPLES = "sqlite:///path/to/comms.db or postgresql+psycopg://user:password@host/dbname"

# SQLite's result codes (https://sqlite.org/rescode.html), by message where a driver error carries none.
_BY_MESSAGE = {
    "database is locked": sqlite3.SQLITE_BUSY,
    "database table is locked": sqlite3.SQLITE_LOCKED,
    "attempt to write a readonly database": sqlite3.SQLITE_READONLY,
    "disk i/o error": sqlite3.SQLITE_IOERR,
    "database or disk is full": sqlite3.SQLITE_FULL,
    "unable to open database file": sqlite3.SQLITE_CANTOPEN,
    "file is not a database": sqlite3.SQLITE_NOTADB,
}


def describe_database(url: URL | str) -> str:
    """The database as a person knows it: a SQLite file's absolute path, else the URL without its password."""
    if isinstance(url, str):
        try:
            url = make_url(url)
        except ArgumentError:
            return _redact_unparsed(str(url))
    if url.get_backend_name() != "sqlite":
        return url.render_as_string(hide_password=True)
    path = sqlite_path(url)
    return str(path) if path is not None else "the in-memory SQLite database"


def sqlite_path(url: URL) -> Path | None:
    """The absolute path of a SQLite database file, or None for an in-memory database (or not SQLite)."""
    database = url.database or ""
    if url.get_backend_name() != "sqlite" or database in ("", ":memory:") or database.startswith("file::memory:"):
        return None
    if database.startswith("file:"):  # a SQLite URI filename (?uri=true): the path before its own query
        database = database.removeprefix("file:").split("?", 1)[0]
    return Path(database).resolve()


def translate_statement_error(context: ExceptionContext) -> StoreError | None:
    """The engine's ``handle_error`` listener: the StoreError to raise instead, or None to leave the error alone."""
    url = context.engine.url if context.engine is not None else None
    return as_store_error(context.original_exception, url=url)


def as_store_error(exc: BaseException, *, url: URL | str | None = None) -> StoreError | None:
    """The StoreError a driver error means (``url`` names the database when known), or None for any other error."""
    if isinstance(exc, StoreError):
        return exc
    driver_error = exc.orig if isinstance(exc, DBAPIError) else exc
    if not isinstance(
        driver_error, sqlite3.DatabaseError
    ):  # OperationalError and the rest; IntegrityError keeps code 19
        return None
    code = _sqlite_code(driver_error)
    database = describe_database(url) if url is not None else _UNKNOWN
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return DatabaseLockedError(
            f"the database {database} is locked by another process (a worker writing a big send?); "
            "try again in a moment",
            database=database,
        )
    if code == sqlite3.SQLITE_READONLY:
        return DatabaseReadOnlyError(
            f"the database {database} is read-only for this process (file permissions, a read-only folder or "
            "mount, or mode=ro); make it writable or point COMMS_DATABASE_URL at a writable file",
            database=database,
        )
    if code == sqlite3.SQLITE_FULL:
        return DatabaseFullError(
            f"the database {database} is full (no space left on its disk, or a size limit reached); "
            "free some space and try again",
            database=database,
        )
    if code == sqlite3.SQLITE_CANTOPEN:
        return DatabaseUnavailableError(
            f"cannot open the database {database} ({_why_not_open(url)}); check COMMS_DATABASE_URL and the "
            "permissions of the file and its folder",
            database=database,
        )
    if code in (sqlite3.SQLITE_IOERR, sqlite3.SQLITE_NOTADB):
        what = (
            "a disk error while reading or writing" if code == sqlite3.SQLITE_IOERR else "it is not a SQLite database"
        )
        return DatabaseUnavailableError(
            f"cannot use the database {database} ({what}); check the file and COMMS_DATABASE_URL",
            database=database,
        )
    return None


def folder_error(url: URL, exc: OSError) -> DatabaseUnavailableError:
    """The error for a SQLite file whose folder cannot be created."""
    database = describe_database(url)
    path = sqlite_path(url)
    blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None) if path else None
    reason = f"{blocker} is a file, not a folder" if blocker else (exc.strerror or type(exc).__name__).lower()
    return DatabaseUnavailableError(
        f"cannot create the folder of the database {database} ({reason}); check COMMS_DATABASE_URL and the "
        "permissions of the folders above it",
        database=database,
    )


def url_error(url: str, exc: Exception) -> DatabaseUrlError:
    """The error for a database URL that cannot be parsed or whose dialect or driver cannot be loaded."""
    database = describe_database(url)
    if isinstance(exc, ImportError):
        module = exc.name or "its driver"
        reason = f"its driver, the Python module '{module}', is not installed"
    elif "Can't load plugin" in str(exc):
        reason = f"'{_scheme(url)}' is not a database SQLAlchemy knows"
    else:
        reason = "it is not a database URL"
    return DatabaseUrlError(
        f"COMMS_DATABASE_URL {database!r} cannot be used ({reason}); set it to a URL such as {_URL_EXAMPLES}",
        database=database,
    )


def _why_not_open(url: URL | str | None) -> str:
    """What stands in SQLite's way, as far as the file system shows it."""
    if isinstance(url, str):
        try:
            url = make_url(url)
        except ArgumentError:
            url = None
    path = sqlite_path(url) if url is not None else None
    if path is None:
        return "SQLite could not open it"
    if path.is_dir():
        return "the path is a folder"
    if not path.parent.is_dir():
        return f"its folder {path.parent} does not exist"
    if not path.exists():
        return "the file does not exist, and a read-only open or an unwritable folder keeps SQLite from creating it"
    return "the file or its folder cannot be read or written by this process"


def _sqlite_code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF  # extended codes (SQLITE_BUSY_SNAPSHOT, SQLITE_READONLY_DBMOVED...) keep the primary
    return _BY_MESSAGE.get(str(exc).strip().lower())


def _scheme(url: str) -> str:
    return url.split("://", 1)[0] if "://" in url else url


def _redact_unparsed(url: str) -> str:
    """A URL SQLAlchemy cannot parse, with anything between ``user:`` and ``@`` hidden."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)
