"""State every bot process shares: conversation state and delivery dedupe keys.

Both were held in one process's memory; in the database a second process (or a restart)
sees the same disclosure flag, pending question and `/why`, and a platform's retry that
reaches another process gives no second reply. Neither table holds message content or
platform ids.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade(role: str = "transcripts") -> None:
    if role == "keys":
        return
    op.create_table(
        "conversations",
        sa.Column("conversation", sa.String(64), primary_key=True),
        sa.Column("fan", sa.String(64), nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("seen_at", sa.Float, nullable=False),
        sa.Column("disclosed", sa.Boolean, nullable=False),
        sa.Column("fallbacks", sa.Integer, nullable=False),
        sa.Column("handoff_offered", sa.String(32)),
        sa.Column("pending_erasure", sa.Boolean, nullable=False),
        sa.Column("ask_back", sa.String(16)),
        sa.Column("asked_again", sa.Boolean, nullable=False),
        sa.Column("last_answer", sa.Text),
    )
    op.create_index("ix_conversations_fan", "conversations", ["fan"])
    op.create_index("ix_conversations_seen_at", "conversations", ["seen_at"])
    op.create_table(
        "delivery_keys",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("seen_at", sa.Float, nullable=False),
    )
    op.create_index("ix_delivery_keys_seen_at", "delivery_keys", ["seen_at"])


def downgrade(role: str = "transcripts") -> None:
    if role != "keys":
        op.drop_table("delivery_keys")
        op.drop_table("conversations")
