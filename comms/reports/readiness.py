"""`comms check`: is everything in place for the cutover? Rows of PASS / WARN / FAIL and a score.

It loads and renders the plan, asks each configured provider whether the credentials work and the
targets exist (SendGrid key scopes, Slack auth and channel membership, Statuspage components),
streams the recipient CSVs, and checks that T0 leaves time for the earliest message.
Channels without credentials are a WARN: they will write to the outbox instead of sending.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from comms.channels.base import Channel, ChannelKind
from comms.clock import ensure_utc
from comms.core.times import format_duration, format_offset, iso_utc
from comms.errors import ChannelError, Problem
from comms.plan.loader import display_path, inspect_plan
from comms.plan.models import Plan
from comms.plan.recipients import RecipientsCsvError, scan_recipients_csv
from comms.settings import Settings

Status = Literal["PASS", "WARN", "FAIL"]

MAX_LISTED = 5
_CREDENTIALS = {
    ChannelKind.EMAIL: "COMMS_SENDGRID_API_KEY",
    ChannelKind.SLACK: "COMMS_SLACK_TOKEN",
    ChannelKind.STATUSPAGE: "COMMS_STATUSPAGE_API_KEY and COMMS_STATUSPAGE_PAGE_ID",
}


@dataclass(frozen=True)
class CheckRow:
    """One readiness check: what was checked, how it went, and the detail a person acts on."""

    name: str
    status: Status
    detail: str


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
    """Run every readiness check and return the rows (providers are asked over the network)."""
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
        elif channel.dry_run:
            rows.append(
                CheckRow(
                    f"{kind.value} credentials",
                    "WARN",
                    f"dry run: no credentials; messages go to the outbox {settings.outbox_dir}/ "
                    f"(set {_CREDENTIALS[kind]} to send)",
                )
            )
        else:
            rows.extend(_provider_rows(kind, channel, plan if not problems else None))
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


def _provider_rows(kind: ChannelKind, channel: Channel, plan: Plan | None) -> list[CheckRow]:
    from comms.channels.sendgrid import SendGridChannel
    from comms.channels.slack import SlackChannel
    from comms.channels.statuspage import StatuspageChannel

    if isinstance(channel, SendGridChannel):
        return [_sendgrid_row(channel)]
    if isinstance(channel, SlackChannel):
        return _slack_rows(channel, _slack_targets(plan) if plan else [])
    if isinstance(channel, StatuspageChannel):
        return _statuspage_rows(channel, plan.schedule.statuspage.components if plan else ())
    return [CheckRow(f"{kind.value} provider", "WARN", f"{type(channel).__name__} cannot be checked")]


def _sendgrid_row(channel: Any) -> CheckRow:
    name = "email: SendGrid key"
    try:
        scopes = channel.scopes()
    except ChannelError as exc:
        return CheckRow(name, "FAIL", str(exc))
    if "mail.send" not in scopes:
        return CheckRow(name, "FAIL", "the API key lacks the mail.send scope: give it Mail Send access in SendGrid")
    return CheckRow(name, "PASS", f"key valid with mail.send ({len(scopes)} scopes)")


def _slack_targets(plan: Plan) -> list[str]:
    names: list[str] = []
    for audience in plan.audiences.values():
        if audience.channels.slack:
            names.extend(audience.channels.slack.channels)
    if plan.escalation is not None:
        for policy in plan.escalation.severities.values():
            for level in policy.levels:
                names.extend(level.slack)
        if plan.escalation.delivery_failures:
            names.extend(plan.escalation.delivery_failures.slack)
    return sorted(dict.fromkeys(names))


def _slack_rows(channel: Any, targets: list[str]) -> list[CheckRow]:
    try:
        identity = channel.auth_test()
    except ChannelError as exc:
        return [CheckRow("slack: token", "FAIL", str(exc))]
    bot = str(identity.get("user") or "the bot")
    rows = [CheckRow("slack: token", "PASS", f"authenticated as @{bot} in {identity.get('team') or 'the workspace'}")]
    for target in targets:
        name = f"slack: {target}"
        try:
            info = channel.channel_info(target)
        except ChannelError as exc:
            rows.append(CheckRow(name, "FAIL", str(exc)))
            continue
        if info.get("is_archived"):
            rows.append(CheckRow(name, "FAIL", f"{target} is archived: unarchive it or use another channel"))
        elif not info.get("is_member"):
            rows.append(CheckRow(name, "FAIL", f"@{bot} is not a member of {target}: /invite @{bot} in {target}"))
        else:
            rows.append(CheckRow(name, "PASS", f"{target} ({info.get('id')}) exists and @{bot} is a member"))
    return rows


def _statuspage_rows(channel: Any, wanted: tuple[str, ...]) -> list[CheckRow]:
    try:
        components = channel.components()
    except ChannelError as exc:
        return [CheckRow("statuspage: page", "FAIL", str(exc))]
    rows = [CheckRow("statuspage: page", "PASS", f"page {channel.page_id} answers with {len(components)} components")]
    known = {str(c.get("id")): str(c.get("name")) for c in components}
    if not wanted:
        rows.append(
            CheckRow(
                "statuspage: components",
                "WARN",
                "no components listed under statuspage.components in schedules/cutover.yaml: "
                "the maintenance will name none",
            )
        )
        return rows
    missing = [cid for cid in wanted if cid not in known]
    if missing:
        rows.append(
            CheckRow(
                "statuspage: components",
                "FAIL",
                f"not on page {channel.page_id}: {', '.join(missing)} (known: {', '.join(sorted(known)) or 'none'})",
            )
        )
    else:
        rows.append(CheckRow("statuspage: components", "PASS", ", ".join(f"{known[c]} ({c})" for c in wanted)))
    return rows


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
