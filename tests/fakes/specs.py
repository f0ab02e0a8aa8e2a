"""The vendor API descriptions in ``tests/fakes/vendor_specs/`` as validators for the fakes.

By default everything comes from the repository (see ``vendor_specs/README.md``): SendGrid's mail
spec and Slack's method files, copied verbatim, and the project's own JSON Schema of the Statuspage
requests and answers comms uses. ``COMMS_SPECS_DIR`` may point at a fuller folder in the same
layout (``sendgrid/tsg_mail_v3.json``, ``slack/methods/``) for a deeper run; when that folder also
has ``statuspage/statuspage_openapi3.subset.json``, Statuspage is validated against that vendor
description (OpenAPI 3.0, as draft 4) instead of the project's schema.

SendGrid's spec is OpenAPI 3.1 (JSON Schema 2020-12); its top-level ``custom_args`` is declared a
string although the API takes an object, so that one property is patched in memory. Slack's method
files list each method's arguments, required arguments, scopes and error codes.
"""

from __future__ import annotations

import copy
import json
import os
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any, TypeAlias

from jsonschema import Draft4Validator, Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4, DRAFT202012

VENDOR_SPECS = Path(__file__).resolve().parent / "vendor_specs"
STATUSPAGE_SCHEMA = VENDOR_SPECS / "statuspage" / "statuspage-requests.schema.json"
STATUSPAGE_OPENAPI = "statuspage/statuspage_openapi3.subset.json"
SENDGRID_MAIL_SCHEMA = "#/components/requestBodies/PostMailSend/content/application~1json/schema"

Validator: TypeAlias = Draft4Validator | Draft202012Validator


def specs_dir() -> Path:
    """``COMMS_SPECS_DIR`` when set, else ``tests/fakes/vendor_specs`` in the repository."""
    override = os.environ.get("COMMS_SPECS_DIR")
    if not override:
        return VENDOR_SPECS
    folder = Path(override)
    if not (folder / "sendgrid" / "tsg_mail_v3.json").is_file():
        raise FileNotFoundError(
            f"COMMS_SPECS_DIR={override} has no sendgrid/tsg_mail_v3.json; unset it to use {VENDOR_SPECS}"
        )
    return folder


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
def _statuspage_openapi() -> dict[str, Any] | None:
    """The vendor's OpenAPI subset when ``COMMS_SPECS_DIR`` has one, else None."""
    path = specs_dir() / STATUSPAGE_OPENAPI
    if not path.is_file():
        return None
    spec = json.loads(path.read_text(encoding="utf-8"))
    incident = spec["components"]["schemas"]["Incident"]["properties"]
    incident["metadata"]["type"] = "object"  # the spec's "Object" is not a JSON Schema type
    return spec


@cache
def _statuspage_own() -> dict[str, Any]:
    """The project's own Statuspage schema (named schemas under ``$defs``)."""
    return json.loads(STATUSPAGE_SCHEMA.read_text(encoding="utf-8"))


@cache
def statuspage_validator(schema: str, *, own: bool = False) -> Validator:
    """Validator of a named Statuspage schema (``postPagesPageIdIncidents``, ``Incident``...).

    From the OpenAPI subset under ``COMMS_SPECS_DIR`` when there is one, else (or with ``own``) from
    the project's schema.
    """
    openapi = None if own else _statuspage_openapi()
    if openapi is not None:
        registry: Registry = Registry().with_resource(
            "urn:statuspage", Resource.from_contents(openapi, default_specification=DRAFT4)
        )
        return Draft4Validator(
            {"$ref": f"urn:statuspage#/components/schemas/{schema}"},
            registry=registry,
            format_checker=_format_checker(),
        )
    document = _statuspage_own()
    if schema not in document["$defs"]:
        raise KeyError(f"{STATUSPAGE_SCHEMA.name} has no $defs/{schema}")
    registry = Registry().with_resource(document["$id"], Resource.from_contents(document))
    return Draft202012Validator(
        {"$ref": f"{document['$id']}#/$defs/{schema}"}, registry=registry, format_checker=_format_checker()
    )


def statuspage_component_statuses() -> list[str]:
    """The component statuses allowed in an incident's ``components`` map."""
    openapi = _statuspage_openapi()
    if openapi is None:
        return list(_statuspage_own()["$defs"]["componentStatus"]["enum"])
    props = openapi["components"]["schemas"]["postPagesPageIdIncidents"]["properties"]
    example = next(iter(props["incident"]["properties"]["components"]["properties"].values()))
    return list(example["enum"])


@cache
def slack_method(method: str) -> dict[str, Any]:
    """A Slack method description (args, required args, scopes, errors) from ``slack/methods``."""
    return _load(f"slack/methods/{method}.json")


def errors_of(validator: Validator, instance: Any) -> list[tuple[str, str]]:
    """Every schema violation as (JSON path, message)."""
    return [(error.json_path, error.message) for error in validator.iter_errors(instance)]
