"""`comms check`: is everything in place for the cutover? Rows of PASS / WARN / FAIL and a score.

It loads and renders the plan, asks each channel the plan uses for its rows (``Channel.probe``:
SendGrid key scopes, Slack auth and channel membership, Statuspage components, webhook receivers
accepting a signed ping), streams the recipient CSVs, and checks that T0 leaves time for the
earliest message. Channels without credentials are a WARN: they will write to the outbox instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from comms.channels.base import Channel, ChannelKind, CheckRow
from comms.channels.base import CheckStatus as Status
from comms.clock import ensure_utc
from comms.core.times import format_duration, format_offset, iso_utc
from comms.errors import Problem
from comms.plan.loader import display_path, inspect_plan
from comms.plan.models import Plan
from comms.plan.recipients import RecipientsCsvError, scan_recipients_csv
from comms.settings import Settings

__all__ = ["CheckRow", "ReadinessReport", "Status", "check_readiness", "check_recipients_csv"]

MAX_LISTED = 5


@dataclass(frozen=True)
class ReadinessReport:
    """All rows of a readiness check; ready when none failed."""

    rows: tuple[CheckRow, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> int:
        """How many rows passed."""
        return sum(1 for row in self.rows if row.status == "PASS")

    @property
    def score(self) -> float:
        """Passed rows as a percentage of all rows (warnings count as not passed)."""
        return round(100.0 * self.passed / len(self.rows), 1) if self.rows else 0.0

    @property
    def dry_run_channels(self) -> tuple[str, ...]:
        """The channels that write to the outbox instead of sending (their rows are WARN, counted apart)."""
        return tuple(row.name.removesuffix(" credentials") for row in self.rows if row.dry_run)

    @property
    def warnings(self) -> int:
        """WARN rows other than the dry-run channels."""
        return sum(1 for row in self.rows if row.status == "WARN" and not row.dry_run)

    @property
    def failed(self) -> int:
        """How many rows failed."""
        return sum(1 for row in self.rows if row.status == "FAIL")

    @property
    def ready(self) -> bool:
        """No row failed."""
        return all(row.status != "FAIL" for row in self.rows)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {
            "ready": self.ready,
            "score": self.score,
            "passed": self.passed,
            "total": len(self.rows),
            "failed": self.failed,
            "warnings": self.warnings,
            "dry_run_channels": list(self.dry_run_channels),
            "rows": [{"name": r.name, "status": r.status, "detail": r.detail} for r in self.rows],
        }


def check_readiness(
    plan_dir: Path,
    settings: Settings,
    *,
    start: datetime | None,
    now: datetime,
    channels: Mapping[ChannelKind, Channel],
) -> ReadinessReport:
    """Run every readiness check and return the rows (providers are asked over the network).

    ``settings`` is what the channels were built from; each channel reports its own rows.
    """
    rows: list[CheckRow] = []
    plan, problems = inspect_plan(plan_dir, check_templates=False)
    if plan is None or problems:
        rows.append(CheckRow("plan validates", "FAIL", _problems(problems) or "the plan could not be loaded"))
        rows.append(CheckRow("templates render", "FAIL", "not checked: the plan does not validate"))
    else:
        rows.append(
            CheckRow(
                "plan validates",
                "PASS",
                f"{len(plan.audiences)} audiences, {len(plan.schedule.messages)} messages ({display_path(plan.root)})",
            )
        )
        rows.append(_templates_row(plan))
    used = _used_channels(plan) if plan is not None and not problems else set(ChannelKind)
    for kind in ChannelKind:
        if kind not in used:
            continue
        channel = channels.get(kind)
        if channel is None:
            rows.append(CheckRow(f"{kind.value} channel", "FAIL", "no channel was built for it"))
        else:
            rows.extend(channel.probe(plan if not problems else None))
    if plan is not None:
        rows.extend(_recipient_rows(plan))
    if start is not None:
        rows.extend(_timing_rows(plan if not problems else None, ensure_utc(start), ensure_utc(now)))
    return ReadinessReport(tuple(rows))


def _problems(problems: list[Problem]) -> str:
    listed = "; ".join(str(p) for p in problems[:MAX_LISTED])
    more = f" (and {len(problems) - MAX_LISTED} more)" if len(problems) > MAX_LISTED else ""
    return f"{len(problems)} problem(s): {listed}{more}" if problems else ""


def _templates_row(plan: Plan) -> CheckRow:
    from comms.plan.loader import sent_combinations
    from comms.plan.template_check import check_templates

    problems = check_templates(plan)
    if problems:
        return CheckRow("templates render", "FAIL", _problems(problems))
    return CheckRow("templates render", "PASS", f"{len(sent_combinations(plan))} message x audience x channel renders")


def _used_channels(plan: Plan) -> set[ChannelKind]:
    used = {channel for message in plan.schedule.messages for channel in message.channels}
    if plan.escalation is not None:
        for policy in plan.escalation.severities.values():
            used.update(policy.channels)
    return used


def _recipient_rows(plan: Plan) -> list[CheckRow]:
    rows = []
    for audience in plan.audiences.values():
        path = audience.csv_path()
        if path is not None:
            rows.append(check_recipients_csv(path, name=f"recipients: {audience.key}"))
    return rows


def check_recipients_csv(path: Path, *, name: str) -> CheckRow:
    """Stream a recipients CSV: count rows, and report invalid addresses (with line numbers) and duplicates."""
    shown = display_path(path)
    if not path.is_file():
        return CheckRow(name, "FAIL", f"{shown} not found")
    try:
        scan = scan_recipients_csv(path, listed=MAX_LISTED, count_duplicates=True)
    except RecipientsCsvError as exc:
        return CheckRow(name, "FAIL", str(exc))
    count = scan.rows
    if scan.invalid_count:
        invalid = [f"line {line}: {address!r}" for line, address, _ in scan.invalid]
        more = f" (and {scan.invalid_count - len(invalid)} more)" if scan.invalid_count > len(invalid) else ""
        return CheckRow(name, "FAIL", f"{shown}: {scan.invalid_count} invalid of {count}: {'; '.join(invalid)}{more}")
    if scan.duplicates:
        return CheckRow(name, "WARN", f"{shown}: {count} rows, {scan.duplicates} duplicate address(es) sent once")
    return CheckRow(name, "PASS", f"{shown}: {count} recipients")


def _timing_rows(plan: Plan | None, start: datetime, now: datetime) -> list[CheckRow]:
    if start <= now:
        return [CheckRow("T0 in the future", "FAIL", f"T0 {iso_utc(start)} is not after now ({iso_utc(now)})")]
    rows = [CheckRow("T0 in the future", "PASS", f"T0 {iso_utc(start)} is in {_span(start - now)}")]
    if plan is None:
        return rows
    earliest = _earliest_message(plan)
    if earliest is None:
        return rows
    key, offset, lateness = earliest
    due = start + offset
    name = "earliest message on time"
    if due >= now:
        rows.append(
            CheckRow(name, "PASS", f"{key} ({format_offset(offset)}) is due {iso_utc(due)}, in {_span(due - now)}")
        )
    elif now - due <= lateness:
        rows.append(
            CheckRow(
                name,
                "WARN",
                f"{key} ({format_offset(offset)}) was due {iso_utc(due)}; it would go out {_span(now - due)} late",
            )
        )
    else:
        rows.append(
            CheckRow(
                name,
                "FAIL",
                f"{key} ({format_offset(offset)}) would be due {iso_utc(due)}, already past its "
                f"{_span(lateness)} lateness: move T0 to {iso_utc(now - offset)} or later",
            )
        )
    return rows


def _earliest_message(plan: Plan) -> tuple[str, timedelta, timedelta] | None:
    found: tuple[str, timedelta, timedelta] | None = None
    for message in plan.schedule.messages:
        offset = message.at if message.at is not None else message.start
        if offset is None or message.event is not None:
            continue
        if found is None or offset < found[1]:
            found = (message.key, offset, message.max_lateness)
    return found


def _span(delta: timedelta) -> str:
    return format_duration(delta, largest="d", smallest="m")
