"""The schema of the first release with migrations (commit dfa21ad): every table, as it created them.

A database that release (or a later one before migrations) created has these tables but no
``alembic_version``; ``comms db upgrade`` stamps it at this revision and carries on from here.

Revision ID: 0001_baseline
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cutover",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("plan_dir", sa.String(), nullable=False),
        sa.Column("start", sa.DateTime(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("stage", sa.Integer(), nullable=True),
        sa.Column("metrics_json", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cutover_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("payload_json", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["cutover_id"],
            ["cutover.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_event_cutover_id"), "event", ["cutover_id"], unique=False)
    op.create_table(
        "incident",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cutover_id", sa.Integer(), nullable=False),
        sa.Column("severity", sa.String(), nullable=False),
        sa.Column("summary", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("components_json", sa.String(), nullable=False),
        sa.Column("on_statuspage", sa.Boolean(), nullable=False),
        sa.Column("latest_update", sa.String(), nullable=True),
        sa.Column("opened_at", sa.DateTime(), nullable=False),
        sa.Column("acked_by", sa.String(), nullable=True),
        sa.Column("acked_at", sa.DateTime(), nullable=True),
        sa.Column("resolved_at", sa.DateTime(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["cutover_id"],
            ["cutover.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_incident_cutover_id"), "incident", ["cutover_id"], unique=False)
    op.create_table(
        "occurrence",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cutover_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("message", sa.String(), nullable=False),
        sa.Column("trigger", sa.String(), nullable=False),
        sa.Column("due_at", sa.DateTime(), nullable=True),
        sa.Column("max_lateness_seconds", sa.Integer(), nullable=False),
        sa.Column("hold_until_go", sa.Boolean(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=True),
        sa.Column("total", sa.Integer(), nullable=True),
        sa.Column("stage", sa.Integer(), nullable=True),
        sa.Column("audiences_csv", sa.String(), nullable=False),
        sa.Column("channels_csv", sa.String(), nullable=False),
        sa.Column("context_json", sa.String(), nullable=True),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("materialized", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["cutover_id"],
            ["cutover.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("cutover_id", "key"),
    )
    op.create_index(op.f("ix_occurrence_cutover_id"), "occurrence", ["cutover_id"], unique=False)
    op.create_index("ix_occurrence_due", "occurrence", ["state", "due_at"], unique=False)
    op.create_table(
        "thread",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cutover_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("scope", sa.String(), nullable=False),
        sa.Column("target", sa.String(), nullable=False),
        sa.Column("ref", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(
            ["cutover_id"],
            ["cutover.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("cutover_id", "channel", "scope", "target"),
    )
    op.create_index(op.f("ix_thread_cutover_id"), "thread", ["cutover_id"], unique=False)
    op.create_table(
        "attempt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cutover_id", sa.Integer(), nullable=False),
        sa.Column("occurrence_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("audience", sa.String(), nullable=False),
        sa.Column("recipients", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("outcome", sa.String(), nullable=False),
        sa.Column("error", sa.String(), nullable=True),
        sa.Column("retry_after", sa.Float(), nullable=True),
        sa.Column("provider_id", sa.String(), nullable=True),
        sa.ForeignKeyConstraint(
            ["cutover_id"],
            ["cutover.id"],
        ),
        sa.ForeignKeyConstraint(
            ["occurrence_id"],
            ["occurrence.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_attempt_cutover_id"), "attempt", ["cutover_id"], unique=False)
    op.create_table(
        "content",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("occurrence_id", sa.Integer(), nullable=False),
        sa.Column("audience", sa.String(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("body_json", sa.String(), nullable=False),
        sa.Column("sha256", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(
            ["occurrence_id"],
            ["occurrence.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("occurrence_id", "audience", "channel"),
    )
    op.create_index(op.f("ix_content_occurrence_id"), "content", ["occurrence_id"], unique=False)
    op.create_table(
        "escalation_step",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cutover_id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=True),
        sa.Column("repeat", sa.Integer(), nullable=True),
        sa.Column("occurrence_id", sa.Integer(), nullable=True),
        sa.Column("sent_occurrence_id", sa.Integer(), nullable=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("detail", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(
            ["cutover_id"],
            ["cutover.id"],
        ),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incident.id"],
        ),
        sa.ForeignKeyConstraint(
            ["occurrence_id"],
            ["occurrence.id"],
        ),
        sa.ForeignKeyConstraint(
            ["sent_occurrence_id"],
            ["occurrence.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("incident_id", "level", "repeat", name="uq_escalation_step_notice"),
        sa.UniqueConstraint("kind", "occurrence_id", name="uq_escalation_step_failure"),
    )
    op.create_index(op.f("ix_escalation_step_cutover_id"), "escalation_step", ["cutover_id"], unique=False)
    op.create_index(op.f("ix_escalation_step_incident_id"), "escalation_step", ["incident_id"], unique=False)
    op.create_table(
        "delivery",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(), nullable=False),
        sa.Column("cutover_id", sa.Integer(), nullable=False),
        sa.Column("occurrence_id", sa.Integer(), nullable=False),
        sa.Column("content_id", sa.Integer(), nullable=False),
        sa.Column("audience", sa.String(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("recipient", sa.String(), nullable=False),
        sa.Column("recipient_name", sa.String(), nullable=True),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=True),
        sa.Column("claim", sa.String(), nullable=True),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("provider_id", sa.String(), nullable=True),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["content_id"],
            ["content.id"],
        ),
        sa.ForeignKeyConstraint(
            ["cutover_id"],
            ["cutover.id"],
        ),
        sa.ForeignKeyConstraint(
            ["occurrence_id"],
            ["occurrence.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key"),
    )
    op.create_index(
        "ix_delivery_claim",
        "delivery",
        ["claim"],
        unique=False,
        sqlite_where=sa.text("claim IS NOT NULL"),
        postgresql_where=sa.text("claim IS NOT NULL"),
    )
    op.create_index(op.f("ix_delivery_cutover_id"), "delivery", ["cutover_id"], unique=False)
    op.create_index(
        "ix_delivery_lane",
        "delivery",
        ["occurrence_id", "audience", "channel", "state", "next_attempt_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_delivery_lane", table_name="delivery")
    op.drop_index(op.f("ix_delivery_cutover_id"), table_name="delivery")
    op.drop_index(
        "ix_delivery_claim",
        table_name="delivery",
        sqlite_where=sa.text("claim IS NOT NULL"),
        postgresql_where=sa.text("claim IS NOT NULL"),
    )
    op.drop_table("delivery")
    op.drop_index(op.f("ix_escalation_step_incident_id"), table_name="escalation_step")
    op.drop_index(op.f("ix_escalation_step_cutover_id"), table_name="escalation_step")
    op.drop_table("escalation_step")
    op.drop_index(op.f("ix_content_occurrence_id"), table_name="content")
    op.drop_table("content")
    op.drop_index(op.f("ix_attempt_cutover_id"), table_name="attempt")
    op.drop_table("attempt")
    op.drop_index(op.f("ix_thread_cutover_id"), table_name="thread")
    op.drop_table("thread")
    op.drop_index("ix_occurrence_due", table_name="occurrence")
    op.drop_index(op.f("ix_occurrence_cutover_id"), table_name="occurrence")
    op.drop_table("occurrence")
    op.drop_index(op.f("ix_incident_cutover_id"), table_name="incident")
    op.drop_table("incident")
    op.drop_index(op.f("ix_event_cutover_id"), table_name="event")
    op.drop_table("event")
    op.drop_table("cutover")
