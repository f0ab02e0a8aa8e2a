"""Why an occurrence ended (phases, covered copies), and the console's tables: used ack links, provider events.

Revision ID: 0004_console_and_retired_reason
Revises: 0003_pacing
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_console_and_retired_reason"
down_revision = "0003_pacing"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("occurrence") as batch:
        batch.add_column(sa.Column("ended_reason", sa.String(), nullable=True))
    op.create_table(
        "ack_token_use",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_digest", sa.String(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("recipient", sa.String(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_digest"),
    )
    op.create_index("ix_ack_token_use_incident_id", "ack_token_use", ["incident_id"])
    op.create_table(
        "provider_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.Integer(), sa.ForeignKey("delivery.id"), nullable=False),
        sa.Column("cutover_id", sa.Integer(), sa.ForeignKey("cutover.id"), nullable=False),
        sa.Column("last_event", sa.String(), nullable=False),
        sa.Column("last_event_at", sa.DateTime(), nullable=False),
        sa.Column("outcome", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("delivery_id"),
    )
    op.create_index("ix_provider_event_cutover_id", "provider_event", ["cutover_id"])
    op.create_table(
        "provider_event_tally",
        sa.Column("provider", sa.String(), nullable=False),
        sa.Column("unknown_keys", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("provider"),
    )


def downgrade() -> None:
    op.drop_table("provider_event_tally")
    op.drop_index("ix_provider_event_cutover_id", "provider_event")
    op.drop_table("provider_event")
    op.drop_index("ix_ack_token_use_incident_id", "ack_token_use")
    op.drop_table("ack_token_use")
    with op.batch_alter_table("occurrence") as batch:
        batch.drop_column("ended_reason")
