"""Initial tables: turns, preferences and the audit log; data keys in the key database.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade(role: str = "transcripts") -> None:
    if role == "keys":
        op.create_table(
            "data_keys",
            sa.Column("fan", sa.String(64), primary_key=True),
            sa.Column("wrapped", sa.LargeBinary, nullable=False),
            sa.Column("created_at", sa.DateTime, nullable=False),
        )
        return
    op.create_table(
        "turns",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("fan", sa.String(64), nullable=False),
        sa.Column("conversation", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("intent", sa.String(64)),
        sa.Column("confidence", sa.Float),
        sa.Column("body", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_turns_fan", "turns", ["fan"])
    op.create_index("ix_turns_at", "turns", ["at"])
    op.create_table(
        "preferences",
        sa.Column("fan", sa.String(64), primary_key=True),
        sa.Column("logging_enabled", sa.Boolean, nullable=False),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(80), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )


def downgrade(role: str = "transcripts") -> None:
    if role == "keys":
        op.drop_table("data_keys")
        return
    for table in ("audit_log", "preferences", "turns"):
        op.drop_table(table)
