"""Addresses that unsubscribed through their email link (the console's /unsubscribe), per audience.

Revision ID: 0006_unsubscribe
Revises: 0005_delivery_fallback_of
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_unsubscribe"
down_revision = "0005_delivery_fallback_of"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "unsubscribe",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("audience", sa.String(), nullable=False),
        sa.Column("address", sa.String(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("audience", "address"),
    )


def downgrade() -> None:
    op.drop_table("unsubscribe")
