"""Desk messages waiting to be removed after an erasure.

An erasure moves the locations of every desk message posted about the fan's tickets here,
in its own transaction; whoever runs the desk deletes them and the rows. `bot forget`
(which has no desk connection) and a crash mid-removal leave rows for the running bot.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade(role: str = "transcripts") -> None:
    if role == "keys":
        return
    op.create_table(
        "desk_removals",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("desk", sa.String(16), nullable=False),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("message", sa.String(64), nullable=False),
        sa.Column("ticket", sa.Integer, nullable=False),
        sa.Column("queued_at", sa.DateTime, nullable=False),
    )


def downgrade(role: str = "transcripts") -> None:
    if role != "keys":
        op.drop_table("desk_removals")
