"""The vendor API descriptions in ``shared/specs/`` as validators for the fakes.

SendGrid's spec is OpenAPI 3.1 (JSON Schema 2020-12); its top-level ``custom_args`` is declared a
string although the API takes an object, so that one property is patched in memory (as
shared/specs/README.md documents). Statuspage's is OpenAPI 3.0 (validated as draft 4). Slack's
method files list each method's arguments, required arguments, scopes and error codes.
"""

from __future__ import annotations

import copy
import json
import os
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft4Validator, Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4, DRAFT202012

SENDGRID_MAIL_SCHEMA = "#/components/requestBodies/PostMailSend/content/application~1json/schema"


def specs_dir() -> Path:
    """``shared/specs`` beside the repository (or ``COMMS_SPECS_DIR``)."""
    override = os.environ.get("COMMS_SPECS_DIR")
    repo = Path(__file__).resolve().parents[2]
    for candidate in ([Path(override)] if override else []) + [
        repo.parent / "shared" / "specs",
        repo / "shared" / "specs",
    ]:
        if (candidate / "sendgrid" / "tsg_mail_v3.json").is_file():
            return candidate
    raise FileNotFoundError(f"shared/specs not found beside {repo}; set COMMS_SPECS_DIR")


def _load(relative: str) -> dict[str, Any]:
    return json.loads((specs_dir() / relative).read_text(encoding="utf-8"))


def _format_checker() -> FormatChecker:
    checker = FormatChecker(["email", "date"])

    @checker.checks("date-time", raises=ValueError)
    def _date_time(value: object) -> bool:
        if not isinstance(value, str):
            return True
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed.tzinfo is not None

    return checker


@cache
def sendgrid_mail_validator() -> Draft202012Validator:
    """Validator of the POST /v3/mail/send body, with the documented ``custom_args`` patch applied."""
    spec = copy.deepcopy(_load("sendgrid/tsg_mail_v3.json"))
    schema = spec["components"]["requestBodies"]["PostMailSend"]["content"]["application/json"]["schema"]
    schema["properties"]["custom_args"] = {"type": "object", "additionalProperties": {"type": "string"}}
    registry: Registry = Registry().with_resource(
        "urn:sendgrid-mail", Resource.from_contents(spec, default_specification=DRAFT202012)
    )
    return Draft202012Validator(
        {"$ref": f"urn:sendgrid-mail{SENDGRID_MAIL_SCHEMA}"}, registry=registry, format_checker=_format_checker()
    )


@cache
def _statuspage_spec() -> dict[str, Any]:
    spec = copy.deepcopy(_load("statuspage/statuspage_openapi3.subset.json"))
    incident = spec["components"]["schemas"]["Incident"]["properties"]
    incident["metadata"]["type"] = "object"  # the spec's "Object" is not a JSON Schema type
    return spec


@cache
def statuspage_validator(schema: str) -> Draft4Validator:
    """Validator of a named Statuspage schema (``postPagesPageIdIncidents``, ``Incident``...)."""
    spec = _statuspage_spec()
    registry: Registry = Registry().with_resource(
        "urn:statuspage", Resource.from_contents(spec, default_specification=DRAFT4)
    )
    return Draft4Validator(
        {"$ref": f"urn:statuspage#/components/schemas/{schema}"}, registry=registry, format_checker=_format_checker()
    )


def statuspage_component_statuses() -> list[str]:
    """The component statuses the spec allows in an incident's ``components`` map."""
    props = _statuspage_spec()["components"]["schemas"]["postPagesPageIdIncidents"]["properties"]
    example = next(iter(props["incident"]["properties"]["components"]["properties"].values()))
    return list(example["enum"])


@cache
def slack_method(method: str) -> dict[str, Any]:
    """A Slack method description (args, required args, scopes, errors) from ``slack/methods``."""
    return _load(f"slack/methods/{method}.json")


def errors_of(validator: Draft4Validator | Draft202012Validator, instance: Any) -> list[tuple[str, str]]:
    """Every schema violation as (JSON path, message)."""
    return [(error.json_path, error.message) for error in validator.iter_errors(instance)]
