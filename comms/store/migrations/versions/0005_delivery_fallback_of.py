"""A fallback delivery names the dead delivery it stands in for (delivery.fallback_of).

The ``suppressed`` delivery state (an unsubscribed address, never sent to) is a new value of the
existing ``state`` column and needs no schema change.

Revision ID: 0005_delivery_fallback_of
Revises: 0004_console_and_retired_reason
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_delivery_fallback_of"
down_revision = "0004_console_and_retired_reason"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("delivery") as batch:
        batch.add_column(sa.Column("fallback_of", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("delivery") as batch:
        batch.drop_column("fallback_of")
