"""The stored shape of a fan's data: minimal columns, ciphertext for anything they wrote.

Two metadata objects because the wrapped data keys may live in another database
(`[store] keys_url`): a copy of the transcript database alone then decrypts nothing.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

PSEUDONYM = 64  # hex HMAC-SHA256

transcripts = MetaData()
keys = MetaData()

turns = Table(
    "turns",
    transcripts,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("fan", String(PSEUDONYM), nullable=False),
    Column("conversation", String(PSEUDONYM), nullable=False),
    Column("role", String(16), nullable=False),  # fan, assistant, moderator
    Column("kind", String(32), nullable=False),  # the Outgoing kind, or "message" for a fan
    Column("at", DateTime(timezone=False), nullable=False),
    Column("intent", String(64)),
    Column("confidence", Float),
    Column("body", LargeBinary, nullable=False),  # Fernet token of the redacted text
    Index("ix_turns_fan", "fan"),
    Index("ix_turns_at", "at"),
)

preferences = Table(
    "preferences",
    transcripts,
    Column("fan", String(PSEUDONYM), primary_key=True),
    Column("logging_enabled", Boolean, nullable=False),
)

audit_log = Table(
    "audit_log",
    transcripts,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("at", DateTime(timezone=False), nullable=False),
    Column("action", String(64), nullable=False),
    Column("actor", String(80), nullable=False),  # "fan", "operator" or a moderator pseudonym
    Column("detail", Text, nullable=False),  # canonical JSON: counts and kinds, never content
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

tickets = Table(
    "tickets",
    transcripts,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("fan", String(PSEUDONYM), nullable=False),
    Column("conversation", String(PSEUDONYM), nullable=False),
    Column("platform", String(32), nullable=False),
    Column("route", LargeBinary, nullable=False),  # where replies go, encrypted with the fan's key
    Column("status", String(16), nullable=False),
    Column("reason", String(32), nullable=False),
    Column("moderator", String(PSEUDONYM)),  # pseudonym of the moderator holding it
    Column("moderator_name", String(64)),  # the display name they chose
    Column("created_at", DateTime(timezone=False), nullable=False),
    Column("claimed_at", DateTime(timezone=False)),
    Column("closed_at", DateTime(timezone=False)),
    Column("timeout_notified", Boolean, nullable=False, default=False),
    Index("ix_tickets_fan", "fan"),
    Index("ix_tickets_status", "status"),
)

data_keys = Table(
    "data_keys",
    keys,
    Column("fan", String(PSEUDONYM), primary_key=True),
    Column("wrapped", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=False), nullable=False),
)

#: Tables whose rows refer to a fan's pseudonym: erasure empties all of them.
FAN_TABLES = (turns, preferences, tickets)
