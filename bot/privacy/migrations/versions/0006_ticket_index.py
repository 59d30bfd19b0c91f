"""Tickets owned by the database, for several bot processes on one store.

A fan has at most one active (open or claimed) ticket: a unique index over the fan's active
tickets, so two processes opening a ticket for one fan at once cannot both succeed, and a
fan's active ticket is one cheap indexed read (no process keeps an index of its own).
`release_notice` marks a ticket the operator put back in the queue (`bot handoff release`)
whose fan and desk have not been told yet: whichever process clears it tells them, once.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_ACTIVE = sa.text("status IN ('open', 'claimed')")


def upgrade(role: str = "transcripts") -> None:
    if role == "keys":
        return
    op.add_column("tickets", sa.Column("release_notice", sa.Boolean, nullable=False, server_default=sa.false()))
    op.create_index(
        "ux_tickets_active_fan", "tickets", ["fan"], unique=True, sqlite_where=_ACTIVE, postgresql_where=_ACTIVE
    )


def downgrade(role: str = "transcripts") -> None:
    if role != "keys":
        op.drop_index("ux_tickets_active_fan", table_name="tickets")
        with op.batch_alter_table("tickets") as batch:
            batch.drop_column("release_notice")
