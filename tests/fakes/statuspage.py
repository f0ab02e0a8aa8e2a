"""A loopback Statuspage REST API v1: incidents (create, update, read, lists) and components.

Request bodies are validated against the project's schema in ``vendor_specs/statuspage/`` (or the
vendor's OpenAPI subset under ``COMMS_SPECS_DIR``) plus what the docs only say in words (component
statuses, metadata values that are objects, maintenance windows). Incidents are kept, so a
maintenance can be created, moved through its statuses and read back. Errors use
``{"message": ...}`` by default, or ``{"error": ...}`` with ``error_shape="error"``.
"""

from __future__ import annotations

import itertools
import re
import threading
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from fakes.server import FakeServer, RecordedRequest, Reply
from fakes.specs import errors_of, statuspage_component_statuses, statuspage_validator

API_KEY = "fake-statuspage-key"
PAGE_ID = "fakepage0001"
MAINTENANCE = ("scheduled", "in_progress", "verifying", "completed")
REALTIME = ("investigating", "identified", "monitoring", "resolved")
_INCIDENT = re.compile(r"^/v1/pages/(?P<page>[^/]+)/incidents/(?P<id>[^/]+)$")
_LISTS = {
    "unresolved": lambda i: i["status"] in ("investigating", "identified", "monitoring"),
    "upcoming": lambda i: i["status"] == "scheduled",
    "scheduled": lambda i: i["status"] == "scheduled",
    "active_maintenance": lambda i: i["status"] in ("in_progress", "verifying"),
}


class FakeStatuspage(FakeServer):
    """A recording, validating status page with components and stateful incidents."""

    name = "statuspage"

    def __init__(
        self,
        *,
        api_key: str = API_KEY,
        page_id: str = PAGE_ID,
        components: dict[str, str] | None = None,
        error_shape: str = "message",
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.page_id = page_id
        self.error_shape = error_shape
        self.components: dict[str, dict[str, Any]] = {}
        for cid, name in (
            components if components is not None else {"cmpapi000001": "API", "cmpdb0000001": "Database"}
        ).items():
            self.add_component(cid, name)
        self.incidents: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self._state = threading.Lock()

    @property
    def api_url(self) -> str:
        """The base URL for settings.statuspage_base_url."""
        return f"{self.url}/v1"

    def add_component(self, cid: str, name: str) -> None:
        """Add a component to the page."""
        now = _now()
        self.components[cid] = {
            "id": cid, "page_id": self.page_id, "group_id": None, "created_at": now, "updated_at": now,
            "group": False, "name": name, "description": None, "position": len(self.components) + 1,
            "status": "operational", "showcase": True, "only_show_if_degraded": False,
        }  # fmt: skip

    def error_body(self, message: str, *, field: str | None = None) -> dict[str, Any]:
        """An error body in the configured shape."""
        if self.error_shape == "error":
            return {"error": {field: [message]} if field else message}
        return {"message": f"{field} {message}" if field else message}

    def fail_with(self, status: int, message: str, *, count: int = 1, field: str | None = None) -> None:
        """Script the next requests to fail with ``status`` and an error body in the configured shape."""
        self.fail_next(count, status=status, body=self.error_body(message, field=field))

    # serving ---------------------------------------------------------------------------------

    def parse(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> RecordedRequest:
        request = super().parse(method, target, headers, raw)
        if request.form and isinstance(request.body, dict):
            request.body = _unbracket(raw.decode("utf-8"))
        return request

    def handle(self, request: RecordedRequest) -> Reply:
        self.record(request)
        auth = request.header("authorization") or ""
        key = (
            auth.removeprefix("OAuth ").strip()
            if auth.startswith("OAuth ")
            else (request.query.get("api_key") or [""])[-1]
        )
        if key != self.api_key:
            return Reply(401, self.error_body("Could not authenticate"))
        path = request.path
        prefix = f"/v1/pages/{self.page_id}"
        if not path.startswith(prefix + "/"):
            return Reply(404, self.error_body("The page could not be found"))
        rest = path[len(prefix) :]
        with self._state:
            return self._route(request, rest)

    def _route(self, request: RecordedRequest, rest: str) -> Reply:
        method = request.method
        if rest == "/components" and method == "GET":
            return Reply(200, [_present(c) for c in _paged(list(self.components.values()), request)])
        if rest == "/incidents" and method == "POST":
            return self._create(request)
        if rest == "/incidents" and method == "GET":
            return Reply(200, [_present(i) for i in _paged(self._newest_first(lambda i: True), request)])
        listing = rest.removeprefix("/incidents/")
        if method == "GET" and listing in _LISTS:
            return Reply(200, [_present(i) for i in _paged(self._newest_first(_LISTS[listing]), request)])
        match = _INCIDENT.match(f"/v1/pages/{self.page_id}{rest}")
        if match:
            incident = self.incidents.get(match["id"])
            if incident is None:
                return Reply(404, self.error_body("The incident could not be found"))
            if method == "GET":
                return Reply(200, _present(incident))
            if method in ("PATCH", "PUT"):
                return self._update(request, incident)
        return Reply(404, self.error_body(f"{method} {rest} is not a route"))

    def _newest_first(self, keep: Any) -> list[dict[str, Any]]:
        return [i for i in reversed(list(self.incidents.values())) if keep(i)]

    def _validate(self, request: RecordedRequest, schema: str) -> tuple[dict[str, Any] | None, Reply | None]:
        body = request.body
        if not isinstance(body, dict):
            self.violation(f"{request.method} {request.path}: body is not JSON or form data")
            return None, Reply(400, self.error_body("The request body could not be parsed"))
        problems = errors_of(statuspage_validator(schema), body)
        incident = body.get("incident")
        if not problems and not isinstance(incident, dict):
            problems = [("$.incident", "is required")]
        if not problems and isinstance(incident, dict):
            problems = self._semantic_problems(incident, creating=schema.startswith("post"))
        if problems:
            for where, message in problems:
                self.violation(f"{request.method} {request.path} {where}: {message}")
            where, message = problems[0]
            return None, Reply(422, self.error_body(message, field=where.removeprefix("$.incident.")))
        assert isinstance(incident, dict)
        return incident, None

    def _semantic_problems(self, incident: dict[str, Any], *, creating: bool) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        allowed = statuspage_component_statuses()
        if creating and not str(incident.get("name", "")).strip():
            problems.append(("$.incident.name", "can't be blank"))
        if len(str(incident.get("name", ""))) > 255:
            problems.append(("$.incident.name", "is too long (maximum is 255 characters)"))
        if len(str(incident.get("body", ""))) > 25000:
            problems.append(("$.incident.body", "is too long (maximum is 25000 characters)"))
        for cid, status in (incident.get("components") or {}).items():
            if status not in allowed:
                problems.append((f"$.incident.components.{cid}", f"{status!r} is not one of {allowed}"))
            if cid not in self.components:
                problems.append((f"$.incident.components.{cid}", "is not a component of this page"))
        for cid in incident.get("component_ids") or []:
            if cid not in self.components:
                problems.append(("$.incident.component_ids", f"{cid} is not a component of this page"))
        for key, value in (incident.get("metadata") or {}).items():
            if not isinstance(value, dict):
                problems.append((f"$.incident.metadata.{key}", "every top-level metadata value must be an object"))
        if creating and incident.get("status") == "scheduled":
            if not incident.get("scheduled_for") or not incident.get("scheduled_until"):
                problems.append(
                    ("$.incident.scheduled_for", "a scheduled maintenance needs scheduled_for and scheduled_until")
                )
        if incident.get("scheduled_for") and incident.get("scheduled_until"):
            if _parse(incident["scheduled_until"]) <= _parse(incident["scheduled_for"]):
                problems.append(("$.incident.scheduled_until", "must be after scheduled_for"))
        return problems

    def _create(self, request: RecordedRequest) -> Reply:
        fields, error = self._validate(request, "postPagesPageIdIncidents")
        if error is not None or fields is None:
            return error or Reply(400)
        number = next(self._ids)
        incident_id = f"inc{number:09d}"
        now = _now()
        status = fields.get("status") or ("scheduled" if fields.get("scheduled_for") else "investigating")
        incident: dict[str, Any] = {
            "id": incident_id, "page_id": self.page_id, "name": fields["name"], "status": status,
            "impact": fields.get("impact_override") or ("maintenance" if status in MAINTENANCE else "none"),
            "impact_override": fields.get("impact_override"), "created_at": now, "updated_at": now,
            "monitoring_at": None, "resolved_at": None, "shortlink": f"https://stspg.io/{incident_id}",
            "scheduled_for": fields.get("scheduled_for"), "scheduled_until": fields.get("scheduled_until"),
            "scheduled_remind_prior": bool(fields.get("scheduled_remind_prior", False)),
            "scheduled_auto_in_progress": bool(fields.get("scheduled_auto_in_progress", False)),
            "scheduled_auto_completed": bool(fields.get("scheduled_auto_completed", False)),
            "metadata": fields.get("metadata") or {}, "components": [], "incident_updates": [],
        }  # fmt: skip
        affected = list(fields.get("component_ids") or []) + [c for c in fields.get("components") or {}]
        self._apply_components(incident, fields, dict.fromkeys(affected))
        self._add_update(incident, status, str(fields.get("body") or ""))
        self.incidents[incident_id] = incident
        return Reply(201, _present(incident))

    def _update(self, request: RecordedRequest, incident: dict[str, Any]) -> Reply:
        fields, error = self._validate(request, "patchPagesPageIdIncidents")
        if error is not None or fields is None:
            return error or Reply(400)
        for key in ("name", "impact_override", "scheduled_for", "scheduled_until"):
            if key in fields:
                incident[key] = fields[key]
        if "impact_override" in fields:
            incident["impact"] = fields["impact_override"]
        if "metadata" in fields:
            incident["metadata"] = {**incident.get("metadata", {}), **fields["metadata"]}
        self._apply_components(incident, fields, dict.fromkeys([c["id"] for c in incident["components"]]))
        if "status" in fields or "body" in fields:
            status = fields.get("status", incident["status"])
            incident["status"] = status
            if status in ("resolved", "completed"):
                incident["resolved_at"] = _now()
            self._add_update(incident, status, str(fields.get("body") or ""))
        incident["updated_at"] = _now()
        return Reply(200, _present(incident))

    def _apply_components(self, incident: dict[str, Any], fields: dict[str, Any], affected: dict[str, None]) -> None:
        for cid, status in (fields.get("components") or {}).items():
            if status:
                self.components[cid]["status"] = status
            affected.setdefault(cid, None)
        incident["components"] = [dict(self.components[cid]) for cid in affected if cid in self.components]

    def _add_update(self, incident: dict[str, Any], status: str, body: str) -> None:
        now = _now()
        update = {
            "id": f"upd{len(incident['incident_updates']) + 1:03d}{incident['id']}", "incident_id": incident["id"],
            "status": status, "body": body, "created_at": now, "updated_at": now, "display_at": now,
            "deliver_notifications": True, "affected_components": [],
        }  # fmt: skip
        incident["incident_updates"].insert(0, update)


def _present(data: Any) -> Any:
    """The answer as the spec describes it: keys without a value are left out (the spec has no nulls)."""
    if isinstance(data, dict):
        return {k: _present(v) for k, v in data.items() if v is not None}
    if isinstance(data, list):
        return [_present(v) for v in data]
    return data


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _paged(items: list[dict[str, Any]], request: RecordedRequest) -> list[dict[str, Any]]:
    per_page = int((request.query.get("per_page") or ["100"])[-1])
    page = int((request.query.get("page") or ["1"])[-1])
    return items[(page - 1) * per_page : page * per_page]


def _unbracket(raw: str) -> dict[str, Any]:
    """Form bodies like ``incident[name]=x&incident[component_ids][]=a`` as nested data."""
    result: dict[str, Any] = {}
    for key, values in parse_qs(raw, keep_blank_values=True).items():
        parts = re.findall(r"[^\[\]]+|\[\]", key)
        node = result
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            if last:
                node[part] = values if parts[-1] == "[]" else values[-1]
            elif parts[index + 1] == "[]":
                node[part] = values
                break
            else:
                node = node.setdefault(part, {})
    return result
