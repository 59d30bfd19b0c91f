"""The stored shape of a fan's data: minimal columns, ciphertext for anything they wrote.

Two metadata objects because the wrapped data keys may live in another database
(`[store] keys_url`): a copy of the transcript database alone then decrypts nothing.
"""

from __future__ import annotations

from typing import Any

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
    text,
)
from sqlalchemy.engine import Connection

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
    # Where the ticket lives on the moderator desk, so a restart finds it by location,
    # never by the wording of a message (migration 0003).
    Column("desk", String(16)),  # "console", "slack" or "discord"
    Column("desk_channel", String(64)),  # the desk channel id
    Column("desk_thread", String(64)),  # Slack thread ts, or Discord thread id
    Column("desk_message", String(64)),  # the packet message (Slack ts, Discord message id)
    Column("last_moderator_reply_at", DateTime(timezone=False)),  # for the claimed-silence notice
    Column("silence_notified", Boolean, nullable=False, default=False),
    # The operator released it from another process; the fan and desk are not told yet (0006).
    Column("release_notice", Boolean, nullable=False, default=False),
    Index("ix_tickets_fan", "fan"),
    Index("ix_tickets_status", "status"),
    # At most one active ticket per fan, enforced by the database (0006): the fan's active
    # ticket is an indexed read, never a process's own index.
    Index("ux_tickets_active_fan", "fan", unique=True, sqlite_where=text("status IN ('open', 'claimed')"),
          postgresql_where=text("status IN ('open', 'claimed')")),
    # AUTOINCREMENT on SQLite: a number is never handed out twice, even after the newest
    # ticket is erased or purged (PostgreSQL's sequence never reuses one either).
    sqlite_autoincrement=True,
)

desk_posts = Table(
    "desk_posts",
    transcripts,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ticket", Integer, nullable=False),
    Column("desk", String(16), nullable=False),  # "slack" or "discord"
    Column("channel", String(64), nullable=False),  # channel or thread the message is in
    Column("message", String(64), nullable=False),  # Slack ts or Discord message id
    Column("posted_at", DateTime(timezone=False), nullable=False),
    Index("ix_desk_posts_ticket", "ticket"),
)

desk_removals = Table(
    "desk_removals",
    transcripts,
    # Desk messages of an erased fan's tickets, waiting for the desk to delete them (0004):
    # locations only, no pseudonym; the row goes once the desk has acted.
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("desk", String(16), nullable=False),
    Column("channel", String(64), nullable=False),
    Column("message", String(64), nullable=False),
    Column("ticket", Integer, nullable=False),
    Column("queued_at", DateTime(timezone=False), nullable=False),
)

conversations = Table(
    "conversations",
    transcripts,
    # What the policy remembers of a conversation between messages (0005), shared by every
    # process: flags and names of questions, never what anyone wrote. A row idle past
    # `[assistant] conversation_idle_minutes` is a new conversation, and is swept.
    Column("conversation", String(PSEUDONYM), primary_key=True),  # HMAC of platform, place and fan
    Column("fan", String(PSEUDONYM), nullable=False),
    Column("started_at", Float, nullable=False),  # epoch seconds: tells one conversation from the next
    Column("seen_at", Float, nullable=False),  # epoch seconds of the last message
    Column("disclosed", Boolean, nullable=False),
    Column("fallbacks", Integer, nullable=False),  # consecutive fallbacks
    Column("handoff_offered", String(32)),  # the reason, while an offer awaits a yes
    Column("pending_erasure", Boolean, nullable=False),
    Column("ask_back", String(16)),  # the action awaiting a yes
    Column("asked_again", Boolean, nullable=False),
    Column("last_answer", Text),  # JSON: source, intent name, confidence, guessed intent name (for /why)
    Index("ix_conversations_fan", "fan"),
    Index("ix_conversations_seen_at", "seen_at"),
)

delivery_keys = Table(
    "delivery_keys",
    transcripts,
    # Platform deliveries already handled (0005): an HMAC of the event id or message key, so a
    # retry reaching any process gives no second reply. No pseudonym; kept about an hour.
    Column("key", String(PSEUDONYM), primary_key=True),
    Column("seen_at", Float, nullable=False),  # epoch seconds
    Index("ix_delivery_keys_seen_at", "seen_at"),
)

events = Table(
    "events",
    transcripts,
    # Minimized events for `bot report` and `/metrics` (0007): what happened, never what
    # anyone wrote. `fan` is kept only so erasure and `/my-data` reach the row.
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),  # epoch seconds
    Column("kind", String(32), nullable=False),  # e.g. "reply", "handoff_claimed", "erasure"
    Column("platform", String(16)),  # "slack", "discord", "console"
    Column("fan", String(PSEUDONYM)),
    Column("conversation", String(PSEUDONYM)),
    Column("intent", String(64)),
    Column("confidence", Float),
    Column("reason", String(32)),  # the reply's Outgoing kind, a handoff's reason...
    Column("seconds", Float),  # a duration: wait to claim, to first reply, to resolve, to erase
    Column("count", Integer),  # e.g. turns purged by retention
    Index("ix_events_at", "at"),
    Index("ix_events_fan", "fan"),
)

ratings = Table(
    "ratings",
    transcripts,
    # A fan's rating of one model answer (0007): "good" or "bad", never the text.
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),  # epoch seconds
    Column("fan", String(PSEUDONYM), nullable=False),
    Column("conversation", String(PSEUDONYM), nullable=False),
    Column("platform", String(16)),
    Column("answer", String(64)),  # opaque id of the rated answer: a second click replaces the first
    Column("intent", String(64)),
    Column("confidence", Float),
    Column("rating", String(8), nullable=False),  # "good" or "bad"
    Index("ix_ratings_at", "at"),
    Index("ux_ratings_fan_answer", "fan", "answer", unique=True),
)

consents = Table(
    "consents",
    transcripts,
    # `[privacy] consent = "opt-in"` (0007): the fan's choice, when, and the notice version shown.
    Column("fan", String(PSEUDONYM), primary_key=True),
    Column("choice", String(8), nullable=False),  # "yes" or "no"
    Column("at", Float, nullable=False),  # epoch seconds
    Column("notice_version", String(32), nullable=False),
)

store_meta = Table(
    "store_meta",
    transcripts,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

erasures = Table(
    "erasures",
    transcripts,
    # A durable erasure job: recorded before the key is shredded, deleted (with its audit
    # record, in one transaction) once every row is gone; resumed after a crash.
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("fan", String(PSEUDONYM), nullable=False),
    Column("actor", String(80), nullable=False),
    Column("requested_at", DateTime(timezone=False), nullable=False),
    Index("ix_erasures_fan", "fan"),
)

data_keys = Table(
    "data_keys",
    keys,
    Column("fan", String(PSEUDONYM), primary_key=True),
    Column("wrapped", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=False), nullable=False),
)

#: Tables tied to a fan that are not "data about the fan" but the machinery that erases it:
#: the erasure job names the fan only until the erasure is complete; `desk_removals` holds
#: desk message locations (no pseudonym) only until the desk has deleted them.
ERASURE_MACHINERY = (erasures, desk_removals)


def dialect_insert(connection: Connection) -> Any:
    """The `insert` with `ON CONFLICT` clauses for the connection's database (SQLite or PostgreSQL)."""
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        return postgresql_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert
