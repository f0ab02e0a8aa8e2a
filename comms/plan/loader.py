"""Loading a plan folder (audiences/, schedules/, templates/) into a validated, frozen Plan.

Every problem is collected and reported at once, each naming its file and, where YAML gives
one, its line. Template checks live in ``comms.plan.template_check``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from comms.errors import PlanError, Problem
from comms.plan.audiences import Audience
from comms.plan.fields import Channel
from comms.plan.models import EscalationMatrix, Plan, Schedule
from comms.plan.yaml_source import Loc, YamlDocument, read_yaml

__all__ = [
    "ESCALATION_FILE",
    "MAX_LISTED_ADDRESSES",
    "SCHEDULE_FILE",
    "display_path",
    "inspect_plan",
    "load_plan",
    "sent_combinations",
]

SCHEDULE_FILE = "schedules/cutover.yaml"
ESCALATION_FILE = "schedules/escalation.yaml"
_KEY = re.compile(r"^[a-z0-9][a-z0-9-]*$")
MAX_LISTED_ADDRESSES = 20
"""How many invalid CSV addresses a full check lists one by one; the rest are counted."""


def display_path(path: Path) -> str:
    """A path as a person would type it from the current folder."""
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


def load_plan(root: Path, *, check_templates: bool = True, check_recipients: bool = False) -> Plan:
    """Load and validate the plan under ``root``; raise PlanError listing every problem."""
    plan, problems = inspect_plan(root, check_templates=check_templates, check_recipients=check_recipients)
    if problems or plan is None:
        raise PlanError(problems or [Problem(display_path(root), "plan could not be loaded")])
    return plan


def inspect_plan(
    root: Path, *, check_templates: bool = True, check_recipients: bool = False
) -> tuple[Plan | None, list[Problem]]:
    """Load the plan and return it (None if it could not be built) with every problem found.

    Each recipients CSV is read up to its first row; ``check_recipients`` reads all of it and checks
    every address (``comms validate``).
    """
    root = root.resolve()
    problems: list[Problem] = []
    for folder in ("audiences", "schedules", "templates"):
        if not (root / folder).is_dir():
            problems.append(Problem(display_path(root / folder), "folder is missing"))
    if problems:
        return None, problems

    audiences, broken = _load_audiences(root, problems, check_recipients=check_recipients)
    schedule_doc = read_yaml(root / SCHEDULE_FILE, display=display_path(root / SCHEDULE_FILE))
    schedule = _load_schedule(schedule_doc, problems)
    escalation_doc: YamlDocument | Problem | None = None
    escalation = None
    if (root / ESCALATION_FILE).exists():
        escalation_doc = read_yaml(root / ESCALATION_FILE, display=display_path(root / ESCALATION_FILE))
        escalation = _load_model(escalation_doc, EscalationMatrix, problems)
    if schedule is None:
        return None, problems
    assert isinstance(schedule_doc, YamlDocument)
    _check_references(schedule, schedule_doc, audiences, problems, broken=broken)
    if isinstance(escalation_doc, YamlDocument) and escalation is not None:
        _check_escalation(escalation, escalation_doc, audiences, problems, broken=broken)
    plan = Plan(root=root, audiences=audiences, schedule=schedule, escalation=escalation)
    if check_templates and not problems:
        from comms.plan.template_check import check_templates as run_template_checks

        problems.extend(run_template_checks(plan))
    return plan, problems


def _load_audiences(
    root: Path, problems: list[Problem], *, check_recipients: bool
) -> tuple[dict[str, Audience], set[str]]:
    audiences: dict[str, Audience] = {}
    broken: set[str] = set()
    files = sorted(p for p in (root / "audiences").iterdir() if p.suffix in (".yaml", ".yml"))
    if not files:
        problems.append(Problem(display_path(root / "audiences"), "no audience files (*.yaml)"))
    for path in files:
        display = display_path(path)
        key = path.stem
        if not _KEY.match(key):
            problems.append(Problem(display, f"audience file name {key!r} must be lowercase-with-dashes"))
            continue
        doc = read_yaml(path, display=display)
        audience = _load_model(doc, Audience, problems, inject={"key": key, "source": path})
        if audience is None:
            broken.add(key)
            continue
        audiences[key] = audience
        _check_csv(audience, doc, problems, whole=check_recipients)
        _check_suppression_list(audience, problems)
    return audiences, broken


def _check_suppression_list(audience: Audience, problems: list[Problem]) -> None:
    path = audience.suppression_path()
    if path is None:
        return
    from comms.plan.recipients import RecipientsCsvError, read_suppression_list

    if not path.is_file():
        problems.append(Problem(display_path(audience.source), f"suppression list not found: {display_path(path)}"))
        return
    try:
        read_suppression_list(audience)
    except RecipientsCsvError as exc:
        problems.extend(exc.problems)


def _check_csv(audience: Audience, doc: YamlDocument | Problem, problems: list[Problem], *, whole: bool) -> None:
    csv_path = audience.csv_path()
    if csv_path is None or not isinstance(doc, YamlDocument):
        return
    line = doc.line_of(("channels", "email", "recipients_csv"))
    display = display_path(audience.source)
    if not csv_path.is_file():
        problems.append(Problem(display, f"recipients CSV not found: {display_path(csv_path)}", line))
        return
    from comms.plan.recipients import RecipientsCsvError, check_recipients_header, scan_recipients_csv

    try:
        if not whole:
            check_recipients_header(csv_path)
            return
        scan = scan_recipients_csv(csv_path, listed=MAX_LISTED_ADDRESSES)
    except RecipientsCsvError as exc:
        problems.extend(exc.problems)
        return
    shown = display_path(csv_path)
    for row_line, address, reason in scan.invalid:
        problems.append(Problem(shown, f"invalid email address {address!r}: {reason}", row_line))
    unlisted = scan.invalid_count - len(scan.invalid)
    if unlisted:
        problems.append(
            Problem(shown, f"and {unlisted} more invalid email addresses ({scan.invalid_count} of {scan.rows} rows)")
        )


def _load_schedule(doc: YamlDocument | Problem, problems: list[Problem]) -> Schedule | None:
    if isinstance(doc, Problem):
        problems.append(doc)
        return None
    data = doc.data
    messages = data.get("messages") if isinstance(data, dict) else None
    if isinstance(messages, dict):
        keys = list(messages)
        listed = []
        for key, spec in messages.items():
            listed.append({**spec, "key": str(key)} if isinstance(spec, dict) else spec)
            if not _KEY.match(str(key)):
                problems.append(
                    Problem(
                        doc.path.name,
                        f"message key {key!r} must be lowercase-with-dashes",
                        doc.line_of(("messages", key)),
                    )
                )
        data = {**data, "messages": listed}

        def relocate(loc: Loc) -> Loc:
            if len(loc) >= 2 and loc[0] == "messages" and isinstance(loc[1], int) and loc[1] < len(keys):
                return ("messages", str(keys[loc[1]]), *loc[2:])
            return loc

        return _validate(doc, Schedule, data, problems, relocate=relocate)
    if isinstance(data, dict) and "messages" in data:
        problems.append(
            Problem(_display(doc), "'messages' must be a mapping of message key to message", doc.line_of(("messages",)))
        )
        return None
    return _validate(doc, Schedule, data, problems)


def _load_model(
    doc: YamlDocument | Problem, model: type[Any], problems: list[Problem], *, inject: dict[str, Any] | None = None
) -> Any:
    if isinstance(doc, Problem):
        problems.append(doc)
        return None
    data = doc.data
    if inject is not None and isinstance(data, dict):
        data = {**data, **inject}
    return _validate(doc, model, data, problems)


def _validate(
    doc: YamlDocument, model: type[BaseModel], data: Any, problems: list[Problem], relocate: Any = None
) -> Any:
    if not isinstance(data, dict):
        problems.append(
            Problem(_display(doc), "expected a mapping of keys to values at the top level", doc.line_of(()))
        )
        return None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            loc: Loc = tuple(error["loc"])
            if relocate:
                loc = relocate(loc)
            problems.append(Problem(_display(doc), _describe(error, loc), doc.line_of(loc)))
        return None


def _display(doc: YamlDocument) -> str:
    return display_path(doc.path)


def _describe(error: Any, loc: Loc) -> str:
    where = ".".join(str(part) for part in loc)
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"unknown key '{loc[-1]}'" + (f" in {'.'.join(str(p) for p in loc[:-1])}" if len(loc) > 1 else "")
    if kind == "missing":
        return f"missing required key '{where}'"
    message = str(error["msg"]).removeprefix("Value error, ")
    got = _shown(error.get("input"))
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        keys = _keys_of(error.get("ctx", {}).get("class_name"))
        return f"{where}: must be a mapping of keys{f' ({keys})' if keys else ''}, got {got}"
    if kind in ("tuple_type", "list_type", "set_type", "frozen_set_type"):
        return f"{where}: must be a list such as [a, b], got {got}"
    if kind in ("string_type", "string_sub_type"):
        return f"{where}: must be text, got {got}"
    if kind in ("bool_type", "bool_parsing"):
        return f"{where}: must be true or false, got {got}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"{where}: must be a whole number, got {got}"
    if kind == "enum" or kind == "literal_error":
        return f"{where}: {message.replace('Input should be', 'must be')} (got {error.get('input')!r})"
    return f"{where}: {message.replace('Input should be', 'must be')}"


def _shown(value: Any) -> str:
    """A YAML value as the plan wrote it: text quoted, a mapping or list by its kind."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _keys_of(class_name: object) -> str:
    """The keys the plan may write for a model named in a pydantic error (never the class name itself)."""
    from comms.plan import audiences, models

    model = getattr(models, str(class_name), None) or getattr(audiences, str(class_name), None) if class_name else None
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return ""
    names = [field.alias or name for name, field in model.model_fields.items() if name not in ("key", "source")]
    return ", ".join(names)


def _check_references(
    schedule: Schedule, doc: YamlDocument, audiences: dict[str, Audience], problems: list[Problem], *, broken: set[str]
) -> None:
    display = _display(doc)
    for message in schedule.never_firing():
        problems.append(
            Problem(
                display,
                f"message '{message.key}' never fires: its recurrence starts ('from') at or after its 'until'",
                doc.line_of(("messages", message.key, "from")),
            )
        )
    for message in schedule.messages:
        for position, name in enumerate(message.audiences):
            if name not in audiences and name not in broken:
                known = ", ".join(sorted(audiences)) or "none"
                line = doc.line_of(("messages", message.key, "audiences", position))
                problems.append(
                    Problem(display, f"message '{message.key}' names unknown audience '{name}' (known: {known})", line)
                )
        known_audiences = [audiences[a] for a in message.audiences if a in audiences]
        if len(known_audiences) != len(message.audiences):
            continue
        for position, channel in enumerate(message.channels):
            if not any(channel in a.channels.kinds() for a in known_audiences):
                line = doc.line_of(("messages", message.key, "channels", position))
                problems.append(
                    Problem(
                        display,
                        f"message '{message.key}' goes to channel '{channel}' but none of its audiences has it",
                        line,
                    )
                )
    for message in schedule.messages:
        unknown = sorted(set(message.stages or ()) - set(schedule.cutover.traffic_stages))
        if unknown:
            line = doc.line_of(("messages", message.key, "stages"))
            problems.append(
                Problem(display, f"message '{message.key}' names stages {unknown} not in traffic_stages", line)
            )
    keys = [m.key for m in schedule.messages]
    for key in {k for k in keys if keys.count(k) > 1}:
        problems.append(Problem(display, f"message '{key}' is defined twice"))


def _check_escalation(
    matrix: EscalationMatrix,
    doc: YamlDocument,
    audiences: dict[str, Audience],
    problems: list[Problem],
    *,
    broken: set[str],
) -> None:
    for severity, policy in matrix.severities.items():
        for position, name in enumerate(policy.audiences):
            if name not in audiences and name not in broken:
                line = doc.line_of(("severities", severity, "audiences", position))
                problems.append(Problem(_display(doc), f"{severity} names unknown audience '{name}'", line))
        for level_no, level in enumerate(policy.levels):
            for position, name in enumerate(level.notify):
                if name not in audiences and name not in broken:
                    line = doc.line_of(("severities", severity, "levels", level_no, "notify", position))
                    problems.append(
                        Problem(
                            _display(doc), f"{severity} level {level_no + 1} notifies unknown audience '{name}'", line
                        )
                    )
    if matrix.delivery_failures:
        for position, name in enumerate(matrix.delivery_failures.notify):
            if name not in audiences and name not in broken:
                line = doc.line_of(("delivery_failures", "notify", position))
                problems.append(Problem(_display(doc), f"delivery_failures notifies unknown audience '{name}'", line))


def sent_combinations(plan: Plan) -> list[tuple[str, str | None, Channel]]:
    """Every (message, audience, channel) the plan sends; the status page once per message (audience None)."""
    combos: list[tuple[str, str | None, Channel]] = []
    for message in plan.schedule.messages:
        for channel in message.channels:
            if channel is Channel.STATUSPAGE:
                combos.append((message.key, None, channel))
                continue
            for name in message.audiences:
                if channel in plan.audiences[name].channels.kinds():
                    combos.append((message.key, name, channel))
    return combos
