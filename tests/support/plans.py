"""The default plan for tests whose worker runs on the wall clock: the same plan without quiet hours.

Quiet hours shift the end users' mail by the time of day; a test that schedules "due a minute ago" on
the real clock would otherwise wait (or not) depending on when it runs.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PLAN_FOLDERS = ("audiences", "schedules", "templates")


def without_quiet_hours(plan: Path) -> Path:
    """Remove every audience's ``quiet_hours`` line in the plan folder ``plan``; return ``plan``."""
    for audience in (plan / "audiences").glob("*.yaml"):
        text = audience.read_text(encoding="utf-8")
        audience.write_text(re.sub(r"(?m)^quiet_hours:.*\n", "", text), encoding="utf-8")
    return plan


@lru_cache(maxsize=1)
def wall_clock_plan() -> Path:
    """A copy of the default plan without quiet hours, made once per test session."""
    root = Path(tempfile.mkdtemp(prefix="comms-wall-clock-plan-")) / "plan"
    for folder in PLAN_FOLDERS:
        shutil.copytree(REPO_ROOT / folder, root / folder)
    return without_quiet_hours(root)
