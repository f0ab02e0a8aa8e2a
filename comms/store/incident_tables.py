"""The incident tables: incidents and the escalation steps recorded for them (and for failed deliveries).

States:
- incident:        open, acknowledged, resolved (derived from acked_at / resolved_at);
                   ``status`` is what the public sees: investigating, identified, monitoring, resolved
- escalation step: opened, updated, notified, acked, resolved, delivery_failure, missed

Idempotency lives in UNIQUE constraints, so two ticks or two processes never notify twice:
a level's notice is one row per (incident, level, repeat slot); a failed occurrence is
escalated once per (kind, occurrence).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from comms.store.types import UTCDateTime

__all__ = ["EscalationStepRow", "IncidentRow"]


def _utc(nullable: bool = True) -> Column[datetime]:
    return Column(UTCDateTime(), nullable=nullable)


class IncidentRow(SQLModel, table=True):
    """An incident opened during a cutover: what, how bad, and who acknowledged or resolved it when."""

    __tablename__ = "incident"
    id: int | None = Field(default=None, primary_key=True)
    cutover_id: int = Field(foreign_key="cutover.id", index=True)
    severity: str
    summary: str
    status: str = "investigating"
    components_json: str = "[]"
    on_statuspage: bool = False
    latest_update: str | None = None
    opened_at: datetime = Field(sa_column=_utc(nullable=False))
    acked_by: str | None = None
    acked_at: datetime | None = Field(sa_column=_utc())
    resolved_at: datetime | None = Field(sa_column=_utc())
    updated_at: datetime = Field(sa_column=_utc(nullable=False))

    @property
    def state(self) -> str:
        """open, acknowledged or resolved."""
        if self.resolved_at is not None:
            return "resolved"
        return "acknowledged" if self.acked_at is not None else "open"


class EscalationStepRow(SQLModel, table=True):
    """One step of an incident's history or of an automatic escalation (incident_id None then)."""

    __tablename__ = "escalation_step"
    __table_args__ = (
        UniqueConstraint("incident_id", "level", "repeat", name="uq_escalation_step_notice"),
        UniqueConstraint("kind", "occurrence_id", name="uq_escalation_step_failure"),
    )
    id: int | None = Field(default=None, primary_key=True)
    cutover_id: int = Field(foreign_key="cutover.id", index=True)
    incident_id: int | None = Field(default=None, foreign_key="incident.id", index=True)
    kind: str
    level: int | None = None
    repeat: int | None = None
    occurrence_id: int | None = Field(default=None, foreign_key="occurrence.id")
    """The occurrence that failed (delivery_failure, missed); None for other kinds."""
    sent_occurrence_id: int | None = Field(default=None, foreign_key="occurrence.id")
    """The occurrence this step sent (announcement or escalation notice), if any."""
    at: datetime = Field(sa_column=_utc(nullable=False))
    detail: str = ""
