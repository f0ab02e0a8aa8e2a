"""The Atlassian Statuspage REST API (v1) through httpx: the scheduled maintenance and incidents.

The first status-page message of a cutover creates the scheduled maintenance (or, for a rollback
or incident, a realtime incident); every later one updates that incident by id, so the page shows
one maintenance moving scheduled -> in_progress -> verifying -> completed. Requests are paced to one
per second per client (Statuspage's limit per API token).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from comms.channels.base import (
    ChannelKind,
    CheckRow,
    Envelope,
    EnvelopeExtras,
    EnvelopeFacts,
    Leaving,
    PartRenderer,
    Receipt,
    Reconciliation,
    StatuspageIntent,
    Target,
    not_watched,
)
from comms.channels.pacing import Pacer
from comms.clock import Clock, ensure_utc, utc_now
from comms.core.content import StatuspageContent, one_line
from comms.core.times import parse_retry_after
from comms.errors import ChannelError, PermanentChannelError, TransientChannelError
from comms.plan.audiences import Audience
from comms.plan.models import Message, Plan

if TYPE_CHECKING:
    import httpx

    from comms.settings import Settings

__all__ = [
    "BODY_LIMIT",
    "DEFAULT_RETRY_AFTER",
    "DEFAULT_TIMEOUT",
    "MAINTENANCE_STATUSES",
    "PAGE_TARGET",
    "REALTIME_STATUSES",
    "REQUESTS_PER_SECOND",
    "STATUSPAGE_PARTS",
    "StatuspageChannel",
    "TITLE_LIMIT",
    "build_incident_request",
    "statuspage_content",
    "statuspage_extras",
    "statuspage_targets",
    "statuspage_thread_scope",
]

log = logging.getLogger(__name__)

MAINTENANCE_STATUSES = frozenset({"scheduled", "in_progress", "verifying", "completed"})
REALTIME_STATUSES = frozenset({"investigating", "identified", "monitoring", "resolved"})
DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRY_AFTER = 1.0
REQUESTS_PER_SECOND = 1.0
TITLE_LIMIT = 255
BODY_LIMIT = 25000
PAGE_TARGET = "status-page"
"""The one target of every status-page delivery: the page (its id comes from the settings)."""

STATUSPAGE_PARTS: Mapping[str, tuple[str, ...]] = {
    "title": ("statuspage.title.j2",),
    "body": ("statuspage.body.j2",),
}
"""The template files of a status-page update: the incident name and the update body."""


def statuspage_content(part: PartRenderer, context: Mapping[str, Any]) -> StatuspageContent:
    """A status-page update from its rendered parts, cut to Statuspage's limits."""
    return StatuspageContent(title=one_line(part("title"))[:TITLE_LIMIT], body=part("body")[:BODY_LIMIT])


def statuspage_targets(audience: Audience | None) -> Iterator[Target]:
    """The status page is one target, whichever audiences it serves."""
    yield PAGE_TARGET, None, None


def statuspage_thread_scope(message: Message, incident_id: int | None) -> str:
    """Which incident a status-page send updates: an incident's, a realtime message's, or the maintenance."""
    if incident_id is not None:
        return f"incident:{incident_id}"
    if message.statuspage is not None and message.statuspage.is_realtime:
        return f"realtime:{message.key}"
    return "maintenance"


def statuspage_extras(facts: EnvelopeFacts) -> EnvelopeExtras:
    """The status-page intent: create (no incident kept yet) or update, with any event's override."""
    action = facts.message.statuspage
    assert action is not None, "a message sent to the status page has a statuspage action (plan validation)"
    settings = facts.plan.schedule.statuspage
    override = facts.context.get("statuspage_override") or {}
    intent = StatuspageIntent(
        status=override.get("status", action.status),
        incident_id=facts.thread_ref,
        impact=override.get("impact", action.impact),
        component_status=override.get("component_status", action.component_status),
        component_ids=settings.components,
        window=facts.window if action.status == "scheduled" else None,
        remind_prior=settings.remind_prior,
        auto_in_progress=settings.auto_in_progress,
        auto_completed=settings.auto_completed,
    )
    return EnvelopeExtras(statuspage=intent)


def _iso(value: datetime) -> str:
    return ensure_utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_incident_request(envelope: Envelope, page_id: str) -> tuple[str, str, dict[str, Any]]:
    """The (method, path, JSON body) a status-page envelope becomes (also what the outbox writes)."""
    content = envelope.content
    intent = envelope.statuspage
    if not isinstance(content, StatuspageContent) or intent is None:
        raise PermanentChannelError(
            f"status-page send of {envelope.occurrence} lacks status-page content or intent",
            remedy="route only rendered status-page content with a StatuspageIntent to the statuspage channel",
        )
    if intent.status not in MAINTENANCE_STATUSES | REALTIME_STATUSES:
        raise PermanentChannelError(
            f"unknown status-page status {intent.status!r}",
            remedy=f"use one of {', '.join(sorted(MAINTENANCE_STATUSES | REALTIME_STATUSES))}",
        )
    incident: dict[str, Any] = {"status": intent.status, "body": content.body}
    if intent.impact:
        incident["impact_override"] = intent.impact
    if intent.window is not None:
        incident["scheduled_for"] = _iso(intent.window.start)
        incident["scheduled_until"] = _iso(intent.window.end)
    if intent.component_ids:
        if intent.component_status:
            incident["components"] = {cid: intent.component_status for cid in intent.component_ids}
    metadata = {"comms": _comms_metadata(envelope)}
    if intent.incident_id is None:
        incident["name"] = content.title
        incident["metadata"] = metadata
        if intent.component_ids:
            incident["component_ids"] = list(intent.component_ids)
        if intent.status in MAINTENANCE_STATUSES:
            if intent.window is None and intent.status == "scheduled":
                raise PermanentChannelError(
                    f"creating the scheduled maintenance for {envelope.occurrence} needs its window",
                    remedy="give the StatuspageIntent a MaintenanceWindow (T0 and the plan's window)",
                )
            incident["scheduled_remind_prior"] = intent.remind_prior
            incident["scheduled_auto_in_progress"] = intent.auto_in_progress
            incident["scheduled_auto_completed"] = intent.auto_completed
        return "POST", f"/pages/{page_id}/incidents", {"incident": incident}
    incident["metadata"] = metadata
    return "PATCH", f"/pages/{page_id}/incidents/{intent.incident_id}", {"incident": incident}


def _comms_metadata(envelope: Envelope) -> dict[str, str]:
    key = envelope.recipients[0].delivery_key if envelope.recipients else ""
    return {"delivery_key": key, "cutover": envelope.cutover, "occurrence": envelope.occurrence}


class StatuspageChannel:
    """The status page via Statuspage's REST API; one envelope creates or updates one incident."""

    kind = ChannelKind.STATUSPAGE
    max_batch = 1
    dry_run = False

    def __init__(
        self,
        settings: Settings,
        *,
        pacer: Pacer | None = None,
        clock: Clock = utc_now,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not settings.statuspage_configured or settings.statuspage_api_key is None:
            raise ValueError("StatuspageChannel needs COMMS_STATUSPAGE_API_KEY and _PAGE_ID; use the outbox without")
        import httpx

        self.page_id = str(settings.statuspage_page_id)
        self._base_url = settings.statuspage_base_url
        self._http = httpx.Client(
            base_url=settings.statuspage_base_url,
            headers={
                "Authorization": f"OAuth {settings.statuspage_api_key.get_secret_value()}",
                "Accept": "application/json",
            },
            timeout=timeout,
            transport=transport,
        )
        self._pacer = pacer or Pacer(1.0 / REQUESTS_PER_SECOND)
        self._clock = clock

    def __repr__(self) -> str:
        return f"StatuspageChannel(base_url={self._base_url!r}, page_id={self.page_id!r})"

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()

    def send(self, envelope: Envelope, leaving: Leaving = not_watched) -> Receipt:
        """Create the incident (no incident_id yet) or post an update to it; return the incident id."""
        method, path, body = build_incident_request(envelope, self.page_id)
        leaving()
        data = self._request(method, path, body, what=f"status-page {envelope.occurrence}")
        incident_id = str(data.get("id")) if isinstance(data, dict) and data.get("id") else None
        if incident_id is None:
            raise TransientChannelError(f"status-page {envelope.occurrence}: answer carried no incident id")
        log.info(
            "statuspage %s incident %s: %s",
            "created" if method == "POST" else "updated",
            incident_id,
            envelope.occurrence,
        )
        return Receipt(provider_id=incident_id, thread_ref=incident_id)

    def reconcile(self, envelope: Envelope) -> Reconciliation:
        """Find out from the page whether this create or update landed (unknown when it cannot tell)."""
        intent = envelope.statuspage
        content = envelope.content
        if intent is None or not isinstance(content, StatuspageContent) or not envelope.recipients:
            return Reconciliation("unknown")
        key = envelope.recipients[0].delivery_key
        try:
            if intent.incident_id is not None:
                return self._reconcile_update(intent, content, key)
            return self._reconcile_create(intent, content, key)
        except ChannelError as exc:
            log.warning("statuspage reconcile of %s not possible: %s", envelope.occurrence, exc)
            return Reconciliation("unknown")

    def probe(self, plan: Plan | None) -> list[CheckRow]:
        """The page answers, and carries every component the plan's maintenance names."""
        try:
            components = self.components()
        except ChannelError as exc:
            return [CheckRow("statuspage: page", "FAIL", str(exc))]
        rows = [CheckRow("statuspage: page", "PASS", f"page {self.page_id} answers with {len(components)} components")]
        wanted = plan.schedule.statuspage.components if plan is not None else ()
        known = {str(c.get("id")): str(c.get("name")) for c in components}
        name = "statuspage: components"
        if not wanted:
            detail = (
                "no components listed under statuspage.components in schedules/cutover.yaml: "
                "the maintenance will name none"
            )
            rows.append(CheckRow(name, "WARN", detail))
        elif missing := [cid for cid in wanted if cid not in known]:
            listed = ", ".join(sorted(known)) or "none"
            rows.append(CheckRow(name, "FAIL", f"not on page {self.page_id}: {', '.join(missing)} (known: {listed})"))
        else:
            rows.append(CheckRow(name, "PASS", ", ".join(f"{known[c]} ({c})" for c in wanted)))
        return rows

    def components(self) -> list[dict[str, Any]]:
        """The page's components (``GET /pages/{page_id}/components``), for the readiness check."""
        data = self._request("GET", f"/pages/{self.page_id}/components", None, what="status-page components")
        return [c for c in data if isinstance(c, dict)] if isinstance(data, list) else []

    def incident(self, incident_id: str) -> dict[str, Any]:
        """One incident as the API returns it."""
        data = self._request("GET", f"/pages/{self.page_id}/incidents/{incident_id}", None, what="status-page incident")
        return data if isinstance(data, dict) else {}

    def _reconcile_update(self, intent: StatuspageIntent, content: StatuspageContent, key: str) -> Reconciliation:
        incident = self.incident(str(intent.incident_id))
        receipt = Receipt(provider_id=str(incident.get("id")), thread_ref=str(incident.get("id")))
        if _metadata_key(incident) == key:
            return Reconciliation("sent", receipt)
        updates = incident.get("incident_updates") or []
        latest = max(updates, key=lambda u: str(u.get("created_at", "")), default=None)
        if latest and latest.get("status") == intent.status and (latest.get("body") or "") == content.body:
            return Reconciliation("sent", receipt)
        return Reconciliation("not_sent")

    def _reconcile_create(self, intent: StatuspageIntent, content: StatuspageContent, key: str) -> Reconciliation:
        if intent.status in ("completed", "resolved"):
            return Reconciliation("unknown")  # a closed incident is in neither list
        listings = ("upcoming", "active_maintenance") if intent.status in MAINTENANCE_STATUSES else ("unresolved",)
        by_name: list[dict[str, Any]] = []
        for listing in listings:
            data = self._request(
                "GET",
                f"/pages/{self.page_id}/incidents/{listing}",
                None,
                what="status-page incidents",
                params={"per_page": 100},
            )
            for incident in data if isinstance(data, list) else []:
                found = _metadata_key(incident)
                receipt = Receipt(provider_id=str(incident.get("id")), thread_ref=str(incident.get("id")))
                if found == key:
                    return Reconciliation("sent", receipt)
                if found is None and incident.get("name") == content.title:
                    by_name.append(incident)
        if len(by_name) == 1:
            incident_id = str(by_name[0].get("id"))
            return Reconciliation("sent", Receipt(provider_id=incident_id, thread_ref=incident_id))
        if by_name:
            return Reconciliation("unknown")
        return Reconciliation("not_sent")

    def _request(
        self, method: str, path: str, body: dict[str, Any] | None, *, what: str, params: dict[str, Any] | None = None
    ) -> Any:
        import httpx

        self._pacer.wait(self.page_id)
        try:
            response = self._http.request(method, path, json=body, params=params)
        except httpx.TransportError as exc:  # timeouts, refused and dropped connections
            raise TransientChannelError(
                f"{what}: connection failed ({type(exc).__name__}: {exc})",
                maybe_delivered=isinstance(exc, httpx.ReadTimeout),
            ) from exc
        status = response.status_code
        if status in (420, 429):
            raise TransientChannelError(
                f"{what}: rate limited by Statuspage ({status})",
                retry_after=self._retry_after(response.headers.get("Retry-After")),
                status=status,
            )
        if status >= 500 or status == 408:
            raise TransientChannelError(f"{what}: Statuspage answered {status}", status=status)
        if status >= 400:
            detail = _error_detail(response.text)
            raise PermanentChannelError(
                f"{what}: Statuspage refused {method} {path} with {status}" + (f": {detail}" if detail else ""),
                remedy=self._remedy(status, detail),
                status=status,
            )
        try:
            return response.json()
        except ValueError as exc:
            raise TransientChannelError(f"{what}: Statuspage answered {status} with a body that is not JSON") from exc

    def _retry_after(self, value: str | None) -> float:
        """The header's wait, or a second when Statuspage gave none that can be read."""
        wait = parse_retry_after(value, now=self._clock())
        return DEFAULT_RETRY_AFTER if wait is None else wait

    def _remedy(self, status: int, detail: str) -> str:
        remedies = {
            401: "set COMMS_STATUSPAGE_API_KEY to a valid API key (Statuspage: your avatar > API info)",
            403: f"use an API key of a user who may manage page {self.page_id}",
            404: f"check COMMS_STATUSPAGE_PAGE_ID ({self.page_id}) and that the incident still exists",
        }
        if status in remedies:
            return remedies[status]
        return "fix what Statuspage rejected" + (f": {detail}" if detail else " (it gave no details)")


def _metadata_key(incident: dict[str, Any]) -> str | None:
    metadata = incident.get("metadata")
    comms = metadata.get("comms") if isinstance(metadata, dict) else None
    key = comms.get("delivery_key") if isinstance(comms, dict) else None
    return str(key) if key else None


def _error_detail(text: str) -> str:
    """One line from either error shape: ``{"message": str}`` or ``{"error": str | {field: [msgs]}}``."""
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip()[:300]
    if not isinstance(data, dict):
        return str(data)[:300]
    parts: list[str] = []
    for key in ("message", "error", "errors"):
        value = data.get(key)
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, dict):
            for field, messages in value.items():
                listed = messages if isinstance(messages, list) else [messages]
                parts.append(f"{field} {', '.join(str(m) for m in listed)}")
        elif isinstance(value, list):
            parts.extend(str(v) for v in value)
    return "; ".join(parts)[:1000]
