"""Handoff tickets.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade(role: str = "transcripts") -> None:
    if role == "keys":
        return
    op.create_table(
        "tickets",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("fan", sa.String(64), nullable=False),
        sa.Column("conversation", sa.String(64), nullable=False),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("route", sa.LargeBinary, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("moderator", sa.String(64)),
        sa.Column("moderator_name", sa.String(64)),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("claimed_at", sa.DateTime),
        sa.Column("closed_at", sa.DateTime),
        sa.Column("timeout_notified", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_index("ix_tickets_fan", "tickets", ["fan"])
    op.create_index("ix_tickets_status", "tickets", ["status"])


def downgrade(role: str = "transcripts") -> None:
    if role != "keys":
        op.drop_table("tickets")
