"""What the accountability report and the fan's voice need (issue 17): minimized events,
ratings of answers and the record of consent.

None of the three holds message text. `events` and `ratings` carry the fan's pseudonym only
so that erasure (`/forget-me`, `bot forget`) and `/my-data` reach them; the report shows
fans only as counts.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade(role: str = "transcripts") -> None:
    if role == "keys":
        return
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("platform", sa.String(16)),
        sa.Column("fan", sa.String(64)),
        sa.Column("conversation", sa.String(64)),
        sa.Column("intent", sa.String(64)),
        sa.Column("confidence", sa.Float),
        sa.Column("reason", sa.String(32)),
        sa.Column("seconds", sa.Float),
        sa.Column("count", sa.Integer),
    )
    op.create_index("ix_events_at", "events", ["at"])
    op.create_index("ix_events_fan", "events", ["fan"])
    op.create_table(
        "ratings",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("fan", sa.String(64), nullable=False),
        sa.Column("conversation", sa.String(64), nullable=False),
        sa.Column("platform", sa.String(16)),
        sa.Column("answer", sa.String(64)),
        sa.Column("intent", sa.String(64)),
        sa.Column("confidence", sa.Float),
        sa.Column("rating", sa.String(8), nullable=False),
    )
    op.create_index("ix_ratings_at", "ratings", ["at"])
    op.create_index("ux_ratings_fan_answer", "ratings", ["fan", "answer"], unique=True)
    op.create_table(
        "consents",
        sa.Column("fan", sa.String(64), primary_key=True),
        sa.Column("choice", sa.String(8), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("notice_version", sa.String(32), nullable=False),
    )


def downgrade(role: str = "transcripts") -> None:
    if role != "keys":
        op.drop_table("consents")
        op.drop_table("ratings")
        op.drop_table("events")
