"""JSON Schemas of the plan files, generated from the pydantic models (editor completion, `comms schema`).

An audience file holds an Audience without ``key`` (the file name) and ``source``; the schedule holds
its messages as a mapping of message key to Message without ``key``.
"""

from __future__ import annotations

from typing import Any

from comms.plan.audiences import Audience
from comms.plan.models import EscalationMatrix, Schedule

__all__ = [
    "AUDIENCE_SCHEMA_FILE",
    "ESCALATION_SCHEMA_FILE",
    "SCHEDULE_SCHEMA_FILE",
    "audience_schema",
    "escalation_schema",
    "plan_schemas",
    "schedule_schema",
]

AUDIENCE_SCHEMA_FILE = "audience.schema.json"
SCHEDULE_SCHEMA_FILE = "schedule.schema.json"
ESCALATION_SCHEMA_FILE = "escalation.schema.json"
_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def audience_schema() -> dict[str, Any]:
    """The schema of ``audiences/<key>.yaml``."""
    schema = Audience.model_json_schema(mode="validation")
    _drop(schema, ("key", "source"))
    return _finish(schema, "An audience of a comms plan (audiences/<key>.yaml; the file name is the key).")


def schedule_schema() -> dict[str, Any]:
    """The schema of ``schedules/cutover.yaml`` (messages keyed by message key)."""
    schema = Schedule.model_json_schema(mode="validation")
    message = schema["$defs"]["Message"]
    _drop(message, ("key",))
    schema["properties"]["messages"] = {
        "type": "object",
        "title": "Messages",
        "description": "Every message of the plan, by key (lowercase-with-dashes).",
        "propertyNames": {"pattern": "^[a-z0-9][a-z0-9-]*$"},
        "additionalProperties": {"$ref": "#/$defs/Message"},
    }
    return _finish(schema, "The cutover and its messages of a comms plan (schedules/cutover.yaml).")


def escalation_schema() -> dict[str, Any]:
    """The schema of ``schedules/escalation.yaml``."""
    return _finish(EscalationMatrix.model_json_schema(mode="validation"), "The escalation matrix of a comms plan.")


def plan_schemas() -> dict[str, dict[str, Any]]:
    """Every plan file's schema by the file name it is written under."""
    return {
        AUDIENCE_SCHEMA_FILE: audience_schema(),
        SCHEDULE_SCHEMA_FILE: schedule_schema(),
        ESCALATION_SCHEMA_FILE: escalation_schema(),
    }


def _drop(schema: dict[str, Any], names: tuple[str, ...]) -> None:
    for name in names:
        schema.get("properties", {}).pop(name, None)
    schema["required"] = [r for r in schema.get("required", []) if r not in names]


def _finish(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"$schema": _DIALECT, **schema, "description": description}
