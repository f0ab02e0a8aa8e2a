"""The tables: cutovers, occurrences, rendered contents, delivery batches and recipients, attempts, events, threads.

States:
- cutover:    planned, go, in_progress, completed, rolled_back, postponed, cancelled
- occurrence: pending, held, dispatching, done, missed, cancelled
- delivery:   pending, in_flight, sent, dead, uncertain, missed, cancelled, covered (another audience's copy
              reaches the same person), suppressed (unsubscribed); a batch has the states a whole request
              can have, and ``empty`` (all its recipients are exceptions)
- attempt:    claimed, started, sent, transient, permanent, uncertain, released, unsent
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, MetaData, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from comms.store.types import UTCDateTime

__all__ = [
    "AckTokenUseRow",
    "AttemptRow",
    "BatchRow",
    "ContentRow",
    "CutoverRow",
    "DELIVERY_VIEW",
    "DeliveryRow",
    "EventRow",
    "LeaseRow",
    "OccurrenceRow",
    "PacingRow",
    "ProviderEventRow",
    "ProviderEventTallyRow",
    "RecipientRow",
    "ThreadRow",
    "UnsubscribeRow",
    "ViewModel",
]


def _utc(nullable: bool = True, index: bool = False) -> Column[datetime]:
    return Column(UTCDateTime(), nullable=nullable, index=index)


class CutoverRow(SQLModel, table=True):
    """One scheduled cutover and its lifecycle state."""

    __tablename__ = "cutover"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True)
    plan_dir: str
    start: datetime = Field(sa_column=_utc(nullable=False))
    state: str = "planned"
    stage: int | None = None
    metrics_json: str | None = None
    created_at: datetime = Field(sa_column=_utc(nullable=False))
    updated_at: datetime = Field(sa_column=_utc(nullable=False))


class OccurrenceRow(SQLModel, table=True):
    """A planned or triggered send of a message; time-based rows carry due_at."""

    __tablename__ = "occurrence"
    __table_args__ = (UniqueConstraint("cutover_id", "key"), Index("ix_occurrence_due", "state", "due_at"))
    id: int | None = Field(default=None, primary_key=True)
    cutover_id: int = Field(foreign_key="cutover.id", index=True)
    key: str
    message: str
    trigger: str
    due_at: datetime | None = Field(default=None, sa_column=_utc())
    max_lateness_seconds: int
    hold_until_go: bool = False
    sequence: int | None = None
    total: int | None = None
    stage: int | None = None
    audiences_csv: str
    channels_csv: str
    context_json: str | None = None
    incident_id: int | None = None
    state: str = "pending"
    materialized: bool = False
    created_at: datetime = Field(sa_column=_utc(nullable=False))
    finished_at: datetime | None = Field(default=None, sa_column=_utc())
    ended_reason: str | None = None
    """Why the occurrence was cancelled or missed rather than sent (a phase that was over, an event)."""


class ContentRow(SQLModel, table=True):
    """The content rendered once per occurrence x audience x channel, kept for audit."""

    __tablename__ = "content"
    __table_args__ = (UniqueConstraint("occurrence_id", "audience", "channel"),)
    id: int | None = Field(default=None, primary_key=True)
    occurrence_id: int = Field(foreign_key="occurrence.id", index=True)
    audience: str
    channel: str
    body_json: str
    sha256: str


class BatchRow(SQLModel, table=True):
    """The unit of the ledger's state: up to one request's recipients of one lane (occurrence x audience x
    channel), claimed, attempted and settled together. Its recipients follow its state unless they are
    exceptions (``RecipientRow.state`` set); ``size`` counts those that follow it."""

    __tablename__ = "delivery_batch"
    __table_args__ = (
        # A lane's next batch: ready batches of one occurrence x audience x channel, oldest retry first.
        Index("ix_batch_lane", "occurrence_id", "audience", "channel", "state", "next_attempt_at"),
        # A batch in flight, found again by its claim token (only claimed batches are indexed).
        Index(
            "ix_batch_claim",
            "claim",
            sqlite_where=text("claim IS NOT NULL"),
            postgresql_where=text("claim IS NOT NULL"),
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    cutover_id: int = Field(foreign_key="cutover.id", index=True)
    occurrence_id: int = Field(foreign_key="occurrence.id")
    content_id: int = Field(foreign_key="content.id")
    audience: str
    channel: str
    state: str = "pending"
    """A delivery state, or ``empty`` when every recipient is an exception."""
    size: int = 0
    attempts: int = 0
    next_attempt_at: datetime | None = Field(default=None, sa_column=_utc())
    claim: str | None = None
    last_error: str | None = None
    provider_id: str | None = None
    sent_at: datetime | None = Field(default=None, sa_column=_utc())
    updated_at: datetime | None = Field(default=None, sa_column=_utc())


class RecipientRow(SQLModel, table=True):
    """One recipient (email) or target (Slack channel, status page) of an occurrence, written once (in id
    order, so its table and its batch index only ever append).

    It follows its batch's state; the state columns are set only on an exception, a recipient whose
    fate differs from its batch's (an invalid or unsubscribed address, a copy another audience covers,
    one re-queued by a retry).
    """

    __tablename__ = "recipient"
    __table_args__ = (
        Index("ix_recipient_batch", "batch_id"),
        Index(
            "ix_recipient_exception",
            "batch_id",
            sqlite_where=text("state IS NOT NULL"),
            postgresql_where=text("state IS NOT NULL"),
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    batch_id: int = Field(foreign_key="delivery_batch.id")
    idempotency_key: str
    """Not indexed: a million random keys made every chunk rewrite the index's pages. The writer keeps a
    lane's addresses in memory to skip repeats; provider events name the row by id."""
    recipient: str
    recipient_name: str | None = None
    fallback_of: int | None = None
    """The dead delivery (on the audience's primary channel) this one stands in for."""
    state: str | None = None
    attempts: int = 0
    last_error: str | None = None
    provider_id: str | None = None
    sent_at: datetime | None = Field(default=None, sa_column=_utc())
    updated_at: datetime | None = Field(default=None, sa_column=_utc())


class ViewModel(SQLModel):
    """Models of views: kept off ``SQLModel.metadata`` so no table is created or compared for them."""

    metadata = MetaData()


class DeliveryRow(ViewModel, table=True):
    """One recipient of an occurrence with its state, as readers see it: the ``delivery`` view over
    ``recipient`` and ``delivery_batch`` (``DELIVERY_VIEW``). Read only; the ledger writes the tables."""

    __tablename__ = "delivery"
    id: int | None = Field(default=None, primary_key=True)
    batch_id: int
    idempotency_key: str
    cutover_id: int
    occurrence_id: int
    content_id: int
    audience: str
    channel: str
    recipient: str
    recipient_name: str | None = None
    state: str = "pending"
    attempts: int = 0
    next_attempt_at: datetime | None = Field(default=None, sa_column=_utc())
    claim: str | None = None
    last_error: str | None = None
    provider_id: str | None = None
    sent_at: datetime | None = Field(default=None, sa_column=_utc())
    updated_at: datetime | None = Field(default=None, sa_column=_utc())
    fallback_of: int | None = None
    """The dead delivery (on the audience's primary channel) this one stands in for."""


def _follow(column: str, exception: str | None = None) -> str:
    """A view column: the batch's value for a recipient that follows it, else the exception's own."""
    return f"CASE WHEN r.state IS NULL THEN b.{column} ELSE {exception or 'NULL'} END AS {column}"


DELIVERY_VIEW = (
    "CREATE VIEW delivery AS SELECT r.id AS id, r.batch_id AS batch_id, r.idempotency_key AS idempotency_key, "
    "b.cutover_id AS cutover_id, b.occurrence_id AS occurrence_id, b.content_id AS content_id, "
    "b.audience AS audience, b.channel AS channel, r.recipient AS recipient, r.recipient_name AS recipient_name, "
    + ", ".join(
        [
            _follow("state", "r.state"),
            _follow("attempts", "r.attempts"),
            _follow("next_attempt_at"),
            _follow("claim"),
            _follow("last_error", "r.last_error"),
            _follow("provider_id", "r.provider_id"),
            _follow("sent_at", "r.sent_at"),
            _follow("updated_at", "r.updated_at"),
        ]
    )
    + ", r.fallback_of AS fallback_of FROM recipient AS r JOIN delivery_batch AS b ON b.id = r.batch_id"
)
"""The ``delivery`` view: one row per recipient with the state it has, its batch's unless it is an exception."""


class AttemptRow(SQLModel, table=True):
    """One request to a provider (a batch of deliveries for email) and its outcome."""

    __tablename__ = "attempt"
    id: int | None = Field(default=None, primary_key=True)
    cutover_id: int = Field(foreign_key="cutover.id", index=True)
    occurrence_id: int = Field(foreign_key="occurrence.id")
    channel: str
    audience: str
    recipients: int
    started_at: datetime = Field(sa_column=_utc(nullable=False))
    finished_at: datetime | None = Field(default=None, sa_column=_utc())
    outcome: str = "started"
    """claimed (request not yet left), started (it left), sent, transient, permanent, uncertain, released."""
    claim: str | None = Field(default=None, index=True)
    error: str | None = None
    retry_after: float | None = None
    provider_id: str | None = None


class EventRow(SQLModel, table=True):
    """A cutover event (go, no-go, stage, complete, rollback, reschedule, cancel) as it was recorded."""

    __tablename__ = "event"
    id: int | None = Field(default=None, primary_key=True)
    cutover_id: int = Field(foreign_key="cutover.id", index=True)
    kind: str
    payload_json: str
    created_at: datetime = Field(sa_column=_utc(nullable=False))


class ThreadRow(SQLModel, table=True):
    """A provider reference later sends attach to: a Slack thread root or a status-page incident."""

    __tablename__ = "thread"
    __table_args__ = (UniqueConstraint("cutover_id", "channel", "scope", "target"),)
    id: int | None = Field(default=None, primary_key=True)
    cutover_id: int = Field(foreign_key="cutover.id", index=True)
    channel: str
    scope: str
    target: str
    ref: str


class LeaseRow(SQLModel, table=True):
    """Who may send: one row per lease name (``sender``), renewed by its holder's heartbeat.

    ``wakes`` is bumped by commands that queued work, so the holder sends it without waiting a tick.
    """

    __tablename__ = "lease"
    name: str = Field(primary_key=True)
    owner: str = ""
    role: str = ""
    acquired_at: datetime = Field(sa_column=_utc(nullable=False))
    heartbeat_at: datetime = Field(sa_column=_utc(nullable=False))
    expires_at: datetime = Field(sa_column=_utc(nullable=False))
    wakes: int = 0


class AckTokenUseRow(SQLModel, table=True):
    """An ack link that was used: its token's digest (never the token), so it acknowledges only once."""

    __tablename__ = "ack_token_use"
    id: int | None = Field(default=None, primary_key=True)
    token_digest: str = Field(unique=True)
    incident_id: int = Field(index=True)
    level: int
    recipient: str
    used_at: datetime = Field(sa_column=_utc(nullable=False))


class UnsubscribeRow(SQLModel, table=True):
    """An address that unsubscribed from an audience through its email link (never sent to again)."""

    __tablename__ = "unsubscribe"
    __table_args__ = (UniqueConstraint("audience", "address"),)
    id: int | None = Field(default=None, primary_key=True)
    audience: str
    address: str
    """Lower case, as the link's token names it."""
    at: datetime = Field(sa_column=_utc(nullable=False))


class ProviderEventRow(SQLModel, table=True):
    """A delivery's last provider event (SendGrid's Event Webhook) and the strongest outcome seen."""

    __tablename__ = "provider_event"
    id: int | None = Field(default=None, primary_key=True)
    delivery_id: int = Field(foreign_key="recipient.id", unique=True)
    cutover_id: int = Field(foreign_key="cutover.id", index=True)
    last_event: str
    last_event_at: datetime = Field(sa_column=_utc(nullable=False))
    outcome: str
    reason: str | None = None
    updated_at: datetime = Field(sa_column=_utc(nullable=False))


class ProviderEventTallyRow(SQLModel, table=True):
    """Provider events that named no delivery comms knows (counted, never an error), per provider."""

    __tablename__ = "provider_event_tally"
    provider: str = Field(primary_key=True)
    unknown_keys: int = 0
    updated_at: datetime = Field(sa_column=_utc(nullable=False))


class PacingRow(SQLModel, table=True):
    """A rate limit every worker shares: the next free slot of one key (``slack:#channel``)."""

    __tablename__ = "pacing"
    key: str = Field(primary_key=True)
    next_at: datetime = Field(sa_column=_utc(nullable=False))
