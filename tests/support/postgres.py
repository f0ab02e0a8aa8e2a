"""A throwaway PostgreSQL server for the test session: ``initdb`` + ``pg_ctl`` into a temp dir, trust auth.

It listens on 127.0.0.1 on a free port (its unix socket in the temp dir) and is stopped, its files removed,
when the session ends. ``initdb`` refuses to run as root, so under root the server runs as ``nobody``.
Each test gets a database of its own (``new_database``), dropped afterwards.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

BIN_DIRS = (Path("/usr/lib/postgresql/15/bin"),)
"""Where Debian puts the PostgreSQL 15 server binaries (``.ci/run`` installs the package if missing)."""


def find_bin_dir() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``, or None when no PostgreSQL server is installed."""
    for folder in BIN_DIRS:
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    found = shutil.which("pg_ctl")
    return Path(found).resolve().parent if found and (Path(found).resolve().parent / "initdb").exists() else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PostgresServer:
    """One running server; ``url(name)`` is the SQLAlchemy URL of one of its databases."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="comms-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self._user = "nobody" if os.geteuid() == 0 else None
        self._names = itertools.count(1)

    def start(self) -> None:
        """initdb, then start the server and wait until it accepts connections."""
        if self._user is not None:
            entry = pwd.getpwnam(self._user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._run(
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            str(self.bin_dir / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.root / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop(self) -> None:
        """Stop the server at once and remove its files."""
        try:
            self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL (psycopg 3 over TCP on 127.0.0.1) of ``database``."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self, *, template: str | None = None) -> str:
        """Create a database (empty, or a copy of ``template``); return its name."""
        name = f"comms_test_{os.getpid()}_{next(self._names)}"
        self._admin(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        return name

    def drop_database(self, name: str) -> None:
        """Drop a database, closing whatever connections are still open to it."""
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _admin(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", autocommit=True
        ) as connection:
            connection.execute(statement.encode())

    def _run(self, *argv: str) -> None:
        command = ["runuser", "-u", self._user, "--", *argv] if self._user else list(argv)
        done = subprocess.run(command, capture_output=True, text=True, cwd=self.root, check=False)
        if done.returncode:
            log = self.root / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(argv[:1])} failed ({done.returncode}): {done.stderr}{done.stdout}{tail}")
