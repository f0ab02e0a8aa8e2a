"""Pacing slots shared by every worker: one row per limited target (a Slack channel), its next free slot.

Revision ID: 0003_pacing
Revises: 0002_lease_and_attempt_claim
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_pacing"
down_revision = "0002_lease_and_attempt_claim"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pacing",
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("next_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )


def downgrade() -> None:
    op.drop_table("pacing")
