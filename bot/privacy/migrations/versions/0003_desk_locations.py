"""Ticket numbers never reused; desk locations and desk posts; store metadata; erasure jobs.

On SQLite the tickets table is rebuilt with AUTOINCREMENT, and its sequence starts past
every ticket number the store ever mentioned (the largest live id, or a larger one named
in the audit log by an erased or purged ticket), so no number is handed out twice.
PostgreSQL's serial sequence never reuses a number already; its columns are only added.

Revision ID: 0003
Revises: 0002
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_DESK_COLUMNS = (
    ("desk", sa.String(16)),
    ("desk_channel", sa.String(64)),
    ("desk_thread", sa.String(64)),
    ("desk_message", sa.String(64)),
    ("last_moderator_reply_at", sa.DateTime),
)


def _largest_ticket_ever(connection: sa.engine.Connection) -> int:
    largest = connection.execute(sa.text("SELECT MAX(id) FROM tickets")).scalar() or 0
    for (detail,) in connection.execute(sa.text("SELECT detail FROM audit_log WHERE action LIKE 'ticket_%'")):
        try:
            number = json.loads(detail).get("ticket")
        except (ValueError, AttributeError):
            continue
        if isinstance(number, int):
            largest = max(largest, number)
    return int(largest)


def upgrade(role: str = "transcripts") -> None:
    if role == "keys":
        return
    connection = op.get_bind()
    if connection.dialect.name == "sqlite":
        largest = _largest_ticket_ever(connection)
        with op.batch_alter_table("tickets", recreate="always", table_kwargs={"sqlite_autoincrement": True}) as batch:
            for name, kind in _DESK_COLUMNS:
                batch.add_column(sa.Column(name, kind))
            batch.add_column(sa.Column("silence_notified", sa.Boolean, nullable=False, server_default=sa.false()))
        connection.execute(sa.text("DELETE FROM sqlite_sequence WHERE name = 'tickets'"))
        connection.execute(sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES ('tickets', :seq)"), {"seq": largest})
    else:
        for name, kind in _DESK_COLUMNS:
            op.add_column("tickets", sa.Column(name, kind))
        op.add_column("tickets", sa.Column("silence_notified", sa.Boolean, nullable=False, server_default=sa.false()))
    op.create_table(
        "desk_posts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ticket", sa.Integer, nullable=False),
        sa.Column("desk", sa.String(16), nullable=False),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("message", sa.String(64), nullable=False),
        sa.Column("posted_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_desk_posts_ticket", "desk_posts", ["ticket"])
    op.create_table(
        "store_meta",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "erasures",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("fan", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(80), nullable=False),
        sa.Column("requested_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_erasures_fan", "erasures", ["fan"])


def downgrade(role: str = "transcripts") -> None:
    if role == "keys":
        return
    for table in ("erasures", "store_meta", "desk_posts"):
        op.drop_table(table)
    with op.batch_alter_table("tickets") as batch:
        for name, _ in _DESK_COLUMNS:
            batch.drop_column(name)
        batch.drop_column("silence_notified")
