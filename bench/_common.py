"""Helpers shared by the bench scripts: a temp plan copy with a generated audience, env, machine facts.

The scripts run as ``python bench/<name>.py`` from the repository root; this module puts ``tests/`` on
``sys.path`` so they can use the loopback fakes (``fakes.sendgrid``) the test suite uses.
"""

from __future__ import annotations

import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = REPO_ROOT / "bench"
if str(REPO_ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(REPO_ROOT / "tests"))

PLAN_FOLDERS = ("audiences", "schedules", "templates")
MEASURED_MESSAGE = "advance-notice"
EMAIL_FROM = "cutover@example.com"


def address(n: int) -> str:
    """The n-th generated end-user address (the CSV and the floor's payloads use the same ones)."""
    return f"user{n:07d}@example.com"


def write_audience_csv(path: Path, recipients: int, *, shuffled: bool = False) -> None:
    """An end-users CSV of ``recipients`` unique rows (email,name), written in big chunks: in address order, or
    ``shuffled`` (a fixed permutation), as an export ordered by anything but the address is."""
    order = list(range(recipients))
    if shuffled:
        random.Random(13).shuffle(order)
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write("email,name\n")
        chunk = 50_000
        for start in range(0, recipients, chunk):
            handle.write("".join(f"{address(n)},User {n}\n" for n in order[start : start + chunk]))


def make_plan(root: Path, recipients: int, *, email_only: bool = True, shuffled: bool = False) -> Path:
    """Copy the default plan to ``root/plan`` with a generated end-users CSV.

    With ``email_only`` the measured message (advance-notice, T-48h) goes to the end-users audience by
    email only, so one run measures exactly ``recipients`` email deliveries in ``recipients/1000``
    requests (no Slack or status-page outbox writes, no small audiences mixed in).
    """
    plan = root / "plan"
    if plan.exists():
        shutil.rmtree(plan)
    for folder in PLAN_FOLDERS:
        shutil.copytree(REPO_ROOT / folder, plan / folder)
    write_audience_csv(plan / "audiences" / "end-users.csv", recipients, shuffled=shuffled)
    # The drills run on the wall clock: quiet hours would hold the end users' mail at some times of day.
    audience = plan / "audiences" / "end-users.yaml"
    audience.write_text(re.sub(r"(?m)^quiet_hours:.*\n", "", audience.read_text(encoding="utf-8")), encoding="utf-8")
    if email_only:
        schedule = plan / "schedules" / "cutover.yaml"
        text = schedule.read_text(encoding="utf-8")
        head, marker, tail = text.partition(f"  {MEASURED_MESSAGE}:\n")
        assert marker, f"{MEASURED_MESSAGE} not found in {schedule}"
        block, sep, rest = tail.partition("\n\n")
        block = re.sub(r"(?m)^    audiences: \[.*\]$", "    audiences: [end-users]", block, count=1)
        block = re.sub(r"(?m)^    channels: \[.*\]$", "    channels: [email]", block, count=1)
        block = re.sub(r"(?m)^    statuspage: \{.*\}\n?", "", block, count=1)
        schedule.write_text(head + marker + block + sep + rest, encoding="utf-8")
    return plan


def due_now_start(now: datetime | None = None) -> datetime:
    """A T0 that makes the T-48h advance notice due one minute ago (well inside its 6 h lateness bound)."""
    now = now or datetime.now(UTC)
    return (now + timedelta(hours=48) - timedelta(minutes=1)).replace(microsecond=0)


def comms_env(db: Path, outbox: Path, sendgrid_url: str, api_key: str, **extra: str) -> dict[str, str]:
    """The environment of a ``python -m comms`` process talking to the loopback SendGrid."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("COMMS_")}
    env.update(
        {
            "COMMS_DATABASE_URL": f"sqlite:///{db}",
            "COMMS_OUTBOX_DIR": str(outbox),
            "COMMS_SENDGRID_API_KEY": api_key,
            "COMMS_SENDGRID_HOST": sendgrid_url,
            "COMMS_EMAIL_FROM": EMAIL_FROM,
            "COMMS_CACHE_DIR": str(db.parent / "template-cache"),  # beside the database, not in ~/.cache
        }
    )
    env.update(extra)
    return env


# -- the fast fake in its own process ----------------------------------------------------------------


@dataclass
class FakeProcess:
    """``bench/_fake_server.py`` serving the fast SendGrid fake from a separate process."""

    process: subprocess.Popen[str]
    url: str

    @classmethod
    def start(cls, mode: str = "fast", extra_args: Sequence[str] = ()) -> FakeProcess:
        """Start the fake; ``extra_args`` go to ``_fake_server.py`` (its ``--latency`` options)."""
        process = subprocess.Popen(
            [sys.executable, str(BENCH_DIR / "_fake_server.py"), "--mode", mode, *extra_args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        if not line.startswith("URL "):
            process.kill()
            raise RuntimeError(f"the fake did not start: {line!r}")
        return cls(process, line.removeprefix("URL "))

    def stats(self) -> dict[str, Any]:
        return fake_stats(self.url)

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.url}/_bench/reset", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def stop(self) -> int:
        """Stop the fake; return its peak RSS in KiB (from wait4)."""
        assert self.process.stdin is not None
        self.process.stdin.close()  # the server exits when its stdin closes
        _, _, usage = os.wait4(self.process.pid, 0)
        self.process.returncode = 0
        return int(usage.ru_maxrss)


def fake_stats(url: str) -> dict[str, Any]:
    """Counters of a bench fake (requests, recipients, first and last accepted request times)."""
    with urllib.request.urlopen(f"{url}/_bench/stats", timeout=10) as response:
        return dict(json.loads(response.read()))


def run_child(
    argv: list[str], *, env: dict[str, str] | None = None, timeout: float = 3600
) -> tuple[int, str, int, float]:
    """Run a child to completion; return (exit status, stdout, peak RSS KiB from wait4, wall seconds)."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, env=env, text=True)
    assert process.stdout is not None
    out = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, out, int(usage.ru_maxrss), time.perf_counter() - started


def last_json_line(text: str) -> dict[str, Any]:
    """The last line of a child's stdout that is a JSON object."""
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return dict(json.loads(line))
    raise ValueError(f"no JSON result in child output:\n{text[-2000:]}")


# -- the machine -------------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    """nproc, CPU model, memory and Python version, for the report."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "memory": memory,
        "python": platform.python_version(),
        "sqlite": __import__("sqlite3").sqlite_version,
    }


def print_machine() -> None:
    info = machine()
    print(
        f"machine: {info['nproc']} cores, {info['cpu']}, {info['memory']} RAM, "
        f"Python {info['python']}, SQLite {info['sqlite']}"
    )


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]
