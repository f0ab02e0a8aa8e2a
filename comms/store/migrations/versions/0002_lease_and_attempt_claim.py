"""The sender lease table, and the claim token on attempts (a crash tells batches that never left).

A database made between the baseline and migrations may have them already (the code then added missing
tables and columns on open): each step runs only when its object is missing.

Revision ID: 0002_lease_and_attempt_claim
Revises: 0001_baseline
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_lease_and_attempt_claim"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if not inspector.has_table("lease"):
        op.create_table(
            "lease",
            sa.Column("name", sa.String(), nullable=False),
            sa.Column("owner", sa.String(), nullable=False),
            sa.Column("role", sa.String(), nullable=False),
            sa.Column("acquired_at", sa.DateTime(), nullable=False),
            sa.Column("heartbeat_at", sa.DateTime(), nullable=False),
            sa.Column("expires_at", sa.DateTime(), nullable=False),
            sa.Column("wakes", sa.Integer(), nullable=False),
            sa.PrimaryKeyConstraint("name"),
        )
    if "claim" not in {column["name"] for column in inspector.get_columns("attempt")}:
        op.add_column("attempt", sa.Column("claim", sa.String(), nullable=True))
    if "ix_attempt_claim" not in {index["name"] for index in inspector.get_indexes("attempt")}:
        op.create_index(op.f("ix_attempt_claim"), "attempt", ["claim"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_attempt_claim"), table_name="attempt")
    op.drop_column("attempt", "claim")
    op.drop_table("lease")
