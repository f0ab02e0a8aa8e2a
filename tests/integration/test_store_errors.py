"""Database trouble from a real SQLite file becomes a StoreError naming the database and what to do."""

from __future__ import annotations

import importlib.util
import os
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer
from sqlalchemy import Engine, event, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session

from comms.bootstrap import OPERATOR_BUSY_TIMEOUT_S, WORKER_BUSY_TIMEOUT_S
from comms.cli.app import handles_errors
from comms.errors import (
    DatabaseFullError,
    DatabaseLockedError,
    DatabaseReadOnlyError,
    DatabaseUnavailableError,
    DatabaseUrlError,
    InputError,
    StoreError,
)
from comms.store.engine import make_engine
from comms.store.errors import as_store_error
from comms.store.tables import CutoverRow

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A comms database file with its tables, no connection left open."""
    path = tmp_path / "comms.db"
    make_engine(f"sqlite:///{path}").dispose()
    return path


@pytest.fixture
def write_lock(db: Path) -> Iterator[sqlite3.Connection]:
    """Another connection holding the database's write lock (BEGIN IMMEDIATE) for the whole test."""
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    yield holder
    holder.execute("ROLLBACK")
    holder.close()


def _add_cutover(engine: Engine, name: str = "c1") -> None:
    with Session(engine) as session:
        session.add(CutoverRow(name=name, plan_dir=".", start=NOW, created_at=NOW, updated_at=NOW))
        session.commit()


def _busy_timeout_ms(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("PRAGMA busy_timeout")).scalar_one())


def test_operator_and_worker_busy_timeouts_reach_the_connection(db: Path) -> None:
    """make_engine waits about a second for a lock by default; the worker's timeout is set when asked."""
    assert _busy_timeout_ms(make_engine(f"sqlite:///{db}")) == int(OPERATOR_BUSY_TIMEOUT_S * 1000) == 1000
    assert _busy_timeout_ms(make_engine(f"sqlite:///{db}", busy_timeout=WORKER_BUSY_TIMEOUT_S)) == 30_000


def test_locked_database_says_so_after_about_a_second(db: Path, write_lock: sqlite3.Connection) -> None:
    """A write blocked by another process's lock raises DatabaseLockedError after ~1 s, naming the file."""
    engine = make_engine(f"sqlite:///{db}")  # opening needs no write lock
    started = time.monotonic()
    with pytest.raises(DatabaseLockedError) as caught:
        _add_cutover(engine)
    waited = time.monotonic() - started
    assert 0.9 <= waited < 3.0
    assert str(caught.value) == (
        f"the database {db} is locked by another process (a worker writing a big send?); try again in a moment"
    )
    assert caught.value.exit_code == 1 and caught.value.database == str(db)


def test_reads_go_on_while_another_process_writes(db: Path, write_lock: sqlite3.Connection) -> None:
    """WAL mode: a read does not wait for the writer's lock."""
    engine = make_engine(f"sqlite:///{db}")
    started = time.monotonic()
    with Session(engine) as session:
        assert session.get(CutoverRow, 1) is None
    assert time.monotonic() - started < OPERATOR_BUSY_TIMEOUT_S


def test_read_only_open_refuses_writes_with_a_remedy(db: Path) -> None:
    """A database opened read-only (mode=ro) raises DatabaseReadOnlyError on a write, naming the file."""
    engine = make_engine(f"sqlite:///file:{db}?mode=ro&uri=true")
    with pytest.raises(DatabaseReadOnlyError) as caught:
        _add_cutover(engine)
    assert str(caught.value).startswith(f"the database {db} is read-only for this process")
    assert "make it writable or point COMMS_DATABASE_URL at a writable file" in str(caught.value)


def test_read_only_file_refuses_writes(db: Path) -> None:
    """A database file with mode 0444 raises DatabaseReadOnlyError on a write."""
    for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        if path.exists():
            path.chmod(0o444)
    if os.access(db, os.W_OK):
        pytest.skip("this process writes read-only files anyway (root); mode=ro covers the error above")
    with pytest.raises(DatabaseReadOnlyError):
        _add_cutover(make_engine(f"sqlite:///{db}"))


def test_full_disk_is_reported_as_full(db: Path) -> None:
    """A write past the database's size limit (max_page_count, as on a full disk) raises DatabaseFullError."""
    engine = make_engine(f"sqlite:///{db}")

    def cap_at_current_size(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        pages = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
        dbapi_connection.execute(f"PRAGMA max_page_count={pages}")

    event.listen(engine, "connect", cap_at_current_size)
    engine.dispose()  # new connections get the cap
    with pytest.raises(DatabaseFullError) as caught, engine.begin() as connection:
        connection.execute(text("CREATE TABLE filler (b BLOB)"))
        connection.execute(text("INSERT INTO filler VALUES (randomblob(200000))"))
    assert str(caught.value) == (
        f"the database {db} is full (no space left on its disk, or a size limit reached); free some space and try again"
    )


def test_folder_that_cannot_be_created(tmp_path: Path) -> None:
    """A database whose folder would sit under a regular file raises DatabaseUnavailableError naming that file."""
    (tmp_path / "notes.txt").write_text("not a folder")
    with pytest.raises(DatabaseUnavailableError) as caught:
        make_engine(f"sqlite:///{tmp_path}/notes.txt/comms.db")
    assert f"{tmp_path}/notes.txt is a file, not a folder" in str(caught.value)
    assert caught.value.exit_code == 1


def test_missing_folder_of_a_read_only_open(tmp_path: Path) -> None:
    """A read-only open of a file in a folder that does not exist names the missing folder."""
    with pytest.raises(DatabaseUnavailableError) as caught:
        make_engine(f"sqlite:///file:{tmp_path}/gone/comms.db?mode=ro&uri=true")
    assert str(caught.value).startswith(f"cannot open the database {tmp_path}/gone/comms.db")
    assert f"its folder {tmp_path}/gone does not exist" in str(caught.value)


def test_unwritable_folder(tmp_path: Path) -> None:
    """A new database in a folder this process cannot write raises DatabaseUnavailableError."""
    folder = tmp_path / "locked-up"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("this process writes into read-only folders anyway (root); the cases above cover opening")
        with pytest.raises(DatabaseUnavailableError) as caught:
            make_engine(f"sqlite:///{folder}/comms.db")
        assert f"cannot open the database {folder}/comms.db" in str(caught.value)
    finally:
        folder.chmod(0o755)


def test_path_that_is_a_folder(tmp_path: Path) -> None:
    """A database URL naming a folder raises DatabaseUnavailableError saying so."""
    with pytest.raises(DatabaseUnavailableError) as caught:
        make_engine(f"sqlite:///{tmp_path}")
    assert str(caught.value).startswith(f"cannot open the database {tmp_path} (the path is a folder)")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("nonsense://", "'nonsense' is not a database SQLAlchemy knows"),
        ("not a url", "it is not a database URL"),
    ],
    ids=["unknown-dialect", "unparsable"],
)
def test_bad_database_url_is_a_settings_error(url: str, reason: str) -> None:
    """An unusable COMMS_DATABASE_URL raises DatabaseUrlError (exit 2) naming it and the reason."""
    with pytest.raises(DatabaseUrlError) as caught:
        make_engine(url)
    assert str(caught.value).startswith(f"COMMS_DATABASE_URL {url!r} cannot be used ({reason}); set it to")
    assert isinstance(caught.value, InputError) and isinstance(caught.value, StoreError)
    assert caught.value.exit_code == 2


@pytest.mark.skipif(importlib.util.find_spec("MySQLdb") is not None, reason="the MySQL driver is installed here")
def test_missing_driver_names_the_module_and_hides_the_password() -> None:
    """A URL whose driver is not installed names the module; its password never appears."""
    with pytest.raises(DatabaseUrlError) as caught:
        make_engine("mysql+mysqldb://comms:hunter2@db.example.com/comms")
    message = str(caught.value)
    assert "'mysql+mysqldb://comms:***@db.example.com/comms'" in message and "'MySQLdb'" in message
    assert "hunter2" not in message and "hunter2" not in caught.value.database


def test_constraint_and_schema_errors_are_not_translated(db: Path) -> None:
    """A UNIQUE violation stays an IntegrityError (callers retry on it); a missing table stays a bug."""
    engine = make_engine(f"sqlite:///{db}")
    _add_cutover(engine, "same")
    with pytest.raises(IntegrityError):
        _add_cutover(engine, "same")
    with pytest.raises(OperationalError, match="no such table"), engine.connect() as connection:
        connection.execute(text("SELECT * FROM no_such_table"))


def test_untranslated_driver_error_is_recognised_later(db: Path, write_lock: sqlite3.Connection) -> None:
    """as_store_error turns a raw driver error (from an engine comms did not build) into its StoreError."""
    other = sqlite3.connect(db, timeout=0)
    try:
        with pytest.raises(sqlite3.OperationalError) as raw:
            other.execute("INSERT INTO cutover (name) VALUES ('x')")
    finally:
        other.close()
    translated = as_store_error(raw.value)
    assert isinstance(translated, DatabaseLockedError)
    assert str(translated).startswith("the database named by COMMS_DATABASE_URL is locked by another process")
    assert as_store_error(ValueError("not a database error")) is None


def test_cli_handler_answers_a_driver_error_and_lets_a_bug_through(
    db: Path, write_lock: sqlite3.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    """handles_errors prints one line and exits 1 for a raw locked error; any other exception propagates."""

    @handles_errors
    def write_beside_the_lock() -> None:
        other = sqlite3.connect(db, timeout=0)
        try:
            other.execute("INSERT INTO cutover (name) VALUES ('x')")
        finally:
            other.close()

    @handles_errors
    def buggy() -> None:
        raise ZeroDivisionError

    with pytest.raises(typer.Exit) as exited:
        write_beside_the_lock()
    assert exited.value.exit_code == 1
    assert capsys.readouterr().err.startswith("error: the database named by COMMS_DATABASE_URL is locked")
    with pytest.raises(ZeroDivisionError):
        buggy()
