"""A small working plan to start from (`comms init`): audiences, a schedule and commented templates.

The plan has one audience per chosen channel kind (or the audiences asked for), four core messages
(an announcement at T-24h, go, completion and rollback) and a template per part of every channel
they are sent on; it passes ``comms validate`` and ``comms simulate`` as written. The YAML files
name the JSON Schemas written beside them (``schemas/``) for editor completion.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from comms.errors import InputError
from comms.plan.fields import Channel
from comms.plan.schema import AUDIENCE_SCHEMA_FILE, SCHEDULE_SCHEMA_FILE, plan_schemas

__all__ = ["AudienceChoice", "DEFAULT_CHANNELS", "default_audiences", "parse_audience_choice", "write_plan"]

DEFAULT_CHANNELS: tuple[Channel, ...] = (Channel.EMAIL, Channel.SLACK, Channel.STATUSPAGE)
"""The channel kinds of a plan when ``comms init`` is given none."""

_DEFAULT_AUDIENCE: dict[Channel, tuple[str, str, str, str]] = {
    Channel.EMAIL: ("customers", "Customers", "America/New_York", "The people who use the service, told by email."),
    Channel.SLACK: ("team", "The team", "Europe/London", "The people who run the cutover, told in Slack."),
    Channel.STATUSPAGE: ("public", "Status page readers", "UTC", "Anyone who follows the public status page."),
    Channel.WEBHOOK: ("partners", "Partner systems", "UTC", "Systems that receive signed JSON notifications."),
}
_MESSAGES: tuple[tuple[str, str, str, str, dict[Channel, str]], ...] = (
    # key, title, trigger line, max_lateness, status-page action per message
    (
        "announcement",
        "Planned maintenance",
        "at: T-24h",
        "4h",
        {Channel.STATUSPAGE: "{status: scheduled, impact: maintenance}"},
    ),
    (
        "starting",
        "Maintenance starting",
        "event: go",
        "30m",
        {Channel.STATUSPAGE: "{status: in_progress, component_status: under_maintenance}"},
    ),
    (
        "complete",
        "Maintenance complete",
        "event: complete",
        "1h",
        {Channel.STATUSPAGE: "{status: completed, component_status: operational}"},
    ),
    (
        "rollback",
        "Maintenance rolled back",
        "event: rollback",
        "30m",
        {Channel.STATUSPAGE: "{status: identified, impact: minor}"},
    ),
)
_KEY = re.compile(r"^[a-z0-9][a-z0-9-]*$")


@dataclass(frozen=True)
class AudienceChoice:
    """One audience of the new plan: its file name (key) and the channel kinds that reach it."""

    key: str
    channels: tuple[Channel, ...]


def parse_audience_choice(text: str) -> AudienceChoice:
    """Read ``NAME=CHANNEL[,CHANNEL...]`` (``ops=slack,email``); raise InputError if it is not that."""
    key, sep, kinds = text.partition("=")
    key = key.strip()
    if not sep or not _KEY.match(key):
        raise InputError(f"--audience: {text!r} must be NAME=CHANNEL[,CHANNEL] with NAME lowercase-with-dashes")
    channels: list[Channel] = []
    for kind in (part.strip() for part in kinds.split(",")):
        try:
            channels.append(Channel(kind))
        except ValueError:
            known = ", ".join(c.value for c in Channel)
            raise InputError(f"--audience {key}: unknown channel {kind!r} (known: {known})") from None
    return AudienceChoice(key, tuple(dict.fromkeys(channels)))


def default_audiences(channels: tuple[Channel, ...]) -> list[AudienceChoice]:
    """One audience per channel kind, named after what it is (customers by email, the team in Slack...)."""
    return [AudienceChoice(_DEFAULT_AUDIENCE[kind][0], (kind,)) for kind in dict.fromkeys(channels)]


def write_plan(root: Path, *, audiences: list[AudienceChoice], title: str = "Service maintenance") -> list[Path]:
    """Write a new plan under ``root`` (which must not hold one yet); return the files written."""
    if not audiences:
        raise InputError("a plan needs at least one audience")
    keys = [a.key for a in audiences]
    if len(set(keys)) != len(keys):
        raise InputError(f"--audience: the names must differ (got {', '.join(keys)})")
    taken = [root / folder for folder in ("audiences", "schedules", "templates") if (root / folder).exists()]
    if taken:
        raise InputError(
            f"{root} already holds a plan ({', '.join(p.name + '/' for p in taken)}); choose an empty folder"
        )
    written: list[Path] = []

    def write(relative: str, text: str) -> None:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)

    for name, schema in plan_schemas().items():
        write(f"schemas/{name}", json.dumps(schema, indent=2) + "\n")
    for choice in audiences:
        write(f"audiences/{choice.key}.yaml", _audience_yaml(choice))
    kinds = tuple(dict.fromkeys(kind for choice in audiences for kind in choice.channels))
    write("schedules/cutover.yaml", _schedule_yaml(title, [a.key for a in audiences], kinds))
    source = resources.files("comms.plan") / "scaffold_templates"
    write("templates/README.md", (source / "README.md").read_text(encoding="utf-8"))
    for message, *_ in _MESSAGES:
        for kind in kinds:
            for part_file in _part_files(kind):
                text = (source / message / part_file).read_text(encoding="utf-8")
                write(f"templates/{message}/{part_file}", text)
    return written


def _part_files(kind: Channel) -> tuple[str, ...]:
    return {
        Channel.EMAIL: ("email.subject.j2", "email.text.j2", "email.html.j2"),
        Channel.SLACK: ("slack.j2",),
        Channel.STATUSPAGE: ("statuspage.title.j2", "statuspage.body.j2"),
        Channel.WEBHOOK: ("webhook.subject.j2", "webhook.text.j2"),
    }[kind]


def _audience_yaml(choice: AudienceChoice) -> str:
    default = next((d for d in _DEFAULT_AUDIENCE.values() if d[0] == choice.key), None)
    title = default[1] if default else choice.key.replace("-", " ").capitalize()
    zone = default[2] if default else "UTC"
    description = default[3] if default else f"The {choice.key} audience."
    lines = [
        f"# yaml-language-server: $schema=../schemas/{AUDIENCE_SCHEMA_FILE}",
        f"# The audience '{choice.key}' (the file name is its key). Every key: docs/PLAN.md of comms.",
        f"title: {title}",
        f"description: {description}",
        "# IANA time zone: the templates' `when`, `local_time`... filters write times in it.",
        f"timezone: {zone}",
        "channels:",
    ]
    for kind in choice.channels:
        lines += _CHANNEL_LINES[kind]
    return "\n".join(lines) + "\n"


_CHANNEL_LINES: dict[Channel, list[str]] = {
    Channel.EMAIL: [
        "  email:",
        "    # Inline addresses, or `recipients_csv: people.csv` (column `email`, optional `name`) for many.",
        "    recipients: [alice@example.com, bob@example.com]",
    ],
    Channel.SLACK: ["  slack:", '    channels: ["#maintenance"]  # "#name" or a channel id (C0123ABC)'],
    Channel.STATUSPAGE: ["  statuspage: true  # this audience follows the public status page"],
    Channel.WEBHOOK: ["  webhook:", '    urls: ["https://hooks.example.com/maintenance"]  # signed JSON POSTs'],
}


def _schedule_yaml(title: str, audiences: list[str], kinds: tuple[Channel, ...]) -> str:
    lines = [
        f"# yaml-language-server: $schema=../schemas/{SCHEDULE_SCHEMA_FILE}",
        "# The cutover and its messages. Offsets are relative to T0, the start of the window (`--start`).",
        "cutover:",
        "  name: maintenance  # lowercase-with-dashes; names the cutover in the database",
        f"  title: {title}",
        "  window: 2h  # T0 .. T0 + window; `comms event complete` ends it",
        "  # traffic_stages: [25, 50, 100]  # record each with `comms event stage N`; default [100]",
        "  status_page_url: https://status.example.com",
        "  facts:  # any wording the templates quote as cutover.facts.<name>",
        '    user_impact: "The service may be unavailable for a few minutes."',
        "    support_email: support@example.com",
        "",
        "messages:",
    ]
    for key, message_title, trigger, lateness, actions in _MESSAGES:
        lines += [
            f"  {key}:",
            f'    title: "{message_title}"',
            f"    {trigger}",
            f"    audiences: [{', '.join(audiences)}]",
            f"    channels: [{', '.join(kind.value for kind in kinds)}]",
            f"    max_lateness: {lateness}  # later than this after it was due, it is recorded as missed",
        ]
        if Channel.STATUSPAGE in kinds:
            lines.append(f"    statuspage: {actions[Channel.STATUSPAGE]}")
        lines.append("")
    return "\n".join(lines)
