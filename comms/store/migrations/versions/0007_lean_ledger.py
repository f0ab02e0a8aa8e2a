"""The lean ledger: the batch is the unit of state; recipients are written once; ``delivery`` becomes a view.

Every delivery row becomes a recipient (same id, so provider events and audit ids still name it) in a
batch of its own that carries its state, or, for a covered or suppressed row, an exception in an
``empty`` batch. New messages are written in batches of one request each. Readers keep reading
``delivery``, now the view over both tables. The idempotency key is kept but no longer indexed.

Revision ID: 0007_lean_ledger
Revises: 0006_unsubscribe
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_lean_ledger"
down_revision = "0006_unsubscribe"
branch_labels = None
depends_on = None

_EXCEPTIONS = "('covered', 'suppressed')"
_NAMING = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"}

# The view as this revision made it (a migration keeps its own copy: later code may change the view).
_VIEW = (
    "CREATE VIEW delivery AS SELECT r.id AS id, r.batch_id AS batch_id, r.idempotency_key AS idempotency_key, "
    "b.cutover_id AS cutover_id, b.occurrence_id AS occurrence_id, b.content_id AS content_id, "
    "b.audience AS audience, b.channel AS channel, r.recipient AS recipient, r.recipient_name AS recipient_name, "
    "CASE WHEN r.state IS NULL THEN b.state ELSE r.state END AS state, "
    "CASE WHEN r.state IS NULL THEN b.attempts ELSE r.attempts END AS attempts, "
    "CASE WHEN r.state IS NULL THEN b.next_attempt_at ELSE NULL END AS next_attempt_at, "
    "CASE WHEN r.state IS NULL THEN b.claim ELSE NULL END AS claim, "
    "CASE WHEN r.state IS NULL THEN b.last_error ELSE r.last_error END AS last_error, "
    "CASE WHEN r.state IS NULL THEN b.provider_id ELSE r.provider_id END AS provider_id, "
    "CASE WHEN r.state IS NULL THEN b.sent_at ELSE r.sent_at END AS sent_at, "
    "CASE WHEN r.state IS NULL THEN b.updated_at ELSE r.updated_at END AS updated_at, "
    "r.fallback_of AS fallback_of FROM recipient AS r JOIN delivery_batch AS b ON b.id = r.batch_id"
)


def upgrade() -> None:
    op.create_table(
        "delivery_batch",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cutover_id", sa.Integer(), sa.ForeignKey("cutover.id"), nullable=False),
        sa.Column("occurrence_id", sa.Integer(), sa.ForeignKey("occurrence.id"), nullable=False),
        sa.Column("content_id", sa.Integer(), sa.ForeignKey("content.id"), nullable=False),
        sa.Column("audience", sa.String(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=True),
        sa.Column("claim", sa.String(), nullable=True),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("provider_id", sa.String(), nullable=True),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_delivery_batch_cutover_id", "delivery_batch", ["cutover_id"])
    op.create_index(
        "ix_batch_lane", "delivery_batch", ["occurrence_id", "audience", "channel", "state", "next_attempt_at"]
    )
    op.create_index(
        "ix_batch_claim",
        "delivery_batch",
        ["claim"],
        sqlite_where=sa.text("claim IS NOT NULL"),
        postgresql_where=sa.text("claim IS NOT NULL"),
    )
    op.create_table(
        "recipient",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.Integer(), sa.ForeignKey("delivery_batch.id"), nullable=False),
        sa.Column("idempotency_key", sa.String(), nullable=False),
        sa.Column("recipient", sa.String(), nullable=False),
        sa.Column("recipient_name", sa.String(), nullable=True),
        sa.Column("fallback_of", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("provider_id", sa.String(), nullable=True),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_recipient_batch", "recipient", ["batch_id"])
    op.create_index(
        "ix_recipient_exception",
        "recipient",
        ["batch_id"],
        sqlite_where=sa.text("state IS NOT NULL"),
        postgresql_where=sa.text("state IS NOT NULL"),
    )
    op.execute(
        "INSERT INTO delivery_batch (id, cutover_id, occurrence_id, content_id, audience, channel, state, size, "
        "attempts, next_attempt_at, claim, last_error, provider_id, sent_at, updated_at) "
        f"SELECT id, cutover_id, occurrence_id, content_id, audience, channel, "
        f"CASE WHEN state IN {_EXCEPTIONS} THEN 'empty' ELSE state END, "
        f"CASE WHEN state IN {_EXCEPTIONS} THEN 0 ELSE 1 END, "
        "attempts, next_attempt_at, claim, last_error, provider_id, sent_at, updated_at FROM delivery"
    )
    op.execute(
        "INSERT INTO recipient (id, batch_id, idempotency_key, recipient, recipient_name, fallback_of, state, "
        "attempts, last_error, provider_id, sent_at, updated_at) "
        "SELECT id, id, idempotency_key, recipient, recipient_name, fallback_of, "
        f"CASE WHEN state IN {_EXCEPTIONS} THEN state END, attempts, "
        f"CASE WHEN state IN {_EXCEPTIONS} THEN last_error END, NULL, NULL, "
        f"CASE WHEN state IN {_EXCEPTIONS} THEN updated_at END FROM delivery"
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "SELECT setval(pg_get_serial_sequence('delivery_batch', 'id'), coalesce(max(id), 0) + 1, false) "
            "FROM delivery_batch"
        )
        op.execute(
            "SELECT setval(pg_get_serial_sequence('recipient', 'id'), coalesce(max(id), 0) + 1, false) FROM recipient"
        )
    _point_provider_events_at("recipient", "delivery")
    op.drop_table("delivery")
    op.execute(_VIEW)


def downgrade() -> None:
    raise NotImplementedError(
        "0007_lean_ledger cannot be undone in place (batches of many recipients have no one-row form): "
        "restore the copy of the database taken before 'comms db upgrade'"
    )


def _point_provider_events_at(table: str, before: str) -> None:
    """provider_event.delivery_id references ``table`` (it referenced ``before``)."""
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint("provider_event_delivery_id_fkey", "provider_event", type_="foreignkey")
        op.create_foreign_key("provider_event_delivery_id_fkey", "provider_event", table, ["delivery_id"], ["id"])
        return
    with op.batch_alter_table("provider_event", naming_convention=_NAMING) as batch:
        batch.drop_constraint(f"fk_provider_event_delivery_id_{before}", type_="foreignkey")
        batch.create_foreign_key(f"fk_provider_event_delivery_id_{table}", table, ["delivery_id"], ["id"])
