"""Everything about a fan, defined once: export (`/my-data`, `bot export`) and erasure
(`/forget-me`, `bot forget`) both walk the same parts, so they cannot drift apart.

A part covers some tables holding a fan's pseudonym; `tests/unit/test_fan_data.py` checks
that every such table in the schema is covered by a part (or is erasure machinery).
The wrapped data key is not a part: erasure shreds it first, on its own (crypto-shredding).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Optional, Protocol, runtime_checkable

from sqlalchemy import Table, delete, func, select
from sqlalchemy.engine import Connection

from bot.handoff.locations import DeskPost
from bot.privacy import crypto
from bot.privacy.preferences import logging_enabled
from bot.privacy.schema import consents, conversations, events, preferences, ratings, turns

#: Turns deleted in the erasure's own transaction; more are deleted in queued batches.
ERASE_BATCH = 500


@dataclass(frozen=True)
class Erased:
    """What one part deleted: `rows` in all (for turns: counted before the batches)."""

    part: str
    rows: int


class FanDataPart(Protocol):
    #: The key of this part in an export, and its name in an erasure receipt.
    name: str
    tables: tuple[Table, ...]

    def export(self, connection: Connection, fan: str, key: Optional[bytes]) -> Any:
        """The part's data about the fan, decrypted with `key` (None: key erased)."""

    def erase(self, connection: Connection, fan: str) -> Erased:
        """Deletes the part's rows about the fan inside the caller's transaction."""


@runtime_checkable
class Expiring(Protocol):
    """A part whose rows also expire by age, with the retention purge of turns (its own rule)."""

    name: str

    def purge(self, connection: Connection, before: datetime) -> int:
        """Deletes the part's rows expired as of `before` inside the caller's transaction; returns how many."""


def readable(key: Optional[bytes], body: bytes) -> str:
    """Decrypted text, or a marker: one damaged row must not hide the rest of an export."""
    if key is None:
        return "[unreadable: key erased]"
    try:
        return crypto.decrypt(key, body)
    except crypto.CiphertextError:
        return "[unreadable: corrupted]"


def iso(moment: Any) -> Optional[str]:
    return None if moment is None else moment.isoformat(timespec="seconds") + "Z"


class TurnsPart:
    """The minimized, encrypted transcript."""

    name = "turns"
    tables: tuple[Table, ...] = (turns,)

    def export(self, connection: Connection, fan: str, key: Optional[bytes]) -> Any:
        rows = connection.execute(select(turns).where(turns.c.fan == fan).order_by(turns.c.id)).mappings().all()
        return [
            {
                "at": iso(row["at"]),
                "conversation": row["conversation"][:12],
                "role": row["role"],
                "kind": row["kind"],
                "intent": row["intent"],
                "confidence": row["confidence"],
                "text": readable(key, row["body"]),
            }
            for row in rows
        ]

    def erase(self, connection: Connection, fan: str) -> Erased:
        """Counts every turn and deletes the first `ERASE_BATCH`; `erase_batch` does the rest."""
        count = int(connection.execute(select(func.count()).select_from(turns).where(turns.c.fan == fan)).scalar() or 0)
        erase_turns_batch(connection, fan)
        return Erased(self.name, count)


def erase_turns_batch(connection: Connection, fan: str) -> int:
    """Deletes up to `ERASE_BATCH` of the fan's turns; returns how many."""
    batch = select(turns.c.id).where(turns.c.fan == fan).limit(ERASE_BATCH).scalar_subquery()
    return int(connection.execute(delete(turns).where(turns.c.id.in_(batch))).rowcount)


class PreferencesPart:
    """The fan's choices (`/privacy on|off`)."""

    name = "transcript_logging"
    tables: tuple[Table, ...] = (preferences,)

    def export(self, connection: Connection, fan: str, key: Optional[bytes]) -> Any:
        return "on" if logging_enabled(connection, fan) else "off"

    def erase(self, connection: Connection, fan: str) -> Erased:
        return Erased(self.name, int(connection.execute(delete(preferences).where(preferences.c.fan == fan)).rowcount))


class ConversationsPart:
    """What the assistant remembers of each conversation between messages (`bot.conversation`):
    flags and question names, no content."""

    name = "conversations"
    tables: tuple[Table, ...] = (conversations,)

    def export(self, connection: Connection, fan: str, key: Optional[bytes]) -> Any:
        rows = connection.execute(
            select(conversations).where(conversations.c.fan == fan).order_by(conversations.c.started_at)
        ).mappings().all()
        return [
            {
                "conversation": row["conversation"][:12],
                "last_message_at": datetime.fromtimestamp(row["seen_at"], UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
                "ai_disclosure_shown": bool(row["disclosed"]),
                "unanswered_fallbacks": row["fallbacks"],
                "question_waiting_for_yes_or_no": row["handoff_offered"] and "handoff"
                or ("erasure" if row["pending_erasure"] else row["ask_back"]),
                "last_answer_for_why": json.loads(row["last_answer"]) if row["last_answer"] else None,
            }
            for row in rows
        ]

    def erase(self, connection: Connection, fan: str) -> Erased:
        return Erased(self.name, int(connection.execute(delete(conversations).where(conversations.c.fan == fan)).rowcount))


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class EventsPart:
    """Minimized events (`bot report`, migration 0007): kinds, intents and timings, no content."""

    name = "events"
    tables: tuple[Table, ...] = (events,)

    def export(self, connection: Connection, fan: str, key: Optional[bytes]) -> Any:
        rows = connection.execute(select(events).where(events.c.fan == fan).order_by(events.c.at, events.c.id)).mappings()
        return [
            {
                "at": _when(row["at"]),
                "kind": row["kind"],
                **{name: row[name] for name in ("platform", "intent", "confidence", "reason", "seconds") if row[name] is not None},
            }
            for row in rows
        ]

    def erase(self, connection: Connection, fan: str) -> Erased:
        return Erased(self.name, int(connection.execute(delete(events).where(events.c.fan == fan)).rowcount))


class RatingsPart:
    """The fan's ratings of answers (`/feedback`, the Helpful buttons, `bot.feedback`): no
    text; the rated answer's opaque id is not exported (it means nothing outside the bot)."""

    name = "ratings"
    tables: tuple[Table, ...] = (ratings,)

    def export(self, connection: Connection, fan: str, key: Optional[bytes]) -> Any:
        rows = connection.execute(select(ratings).where(ratings.c.fan == fan).order_by(ratings.c.at, ratings.c.id)).mappings()
        return [
            {
                "at": _when(row["at"]), "rating": row["rating"], "intent": row["intent"], "confidence": row["confidence"],
                "platform": row["platform"], "conversation": row["conversation"][:12],
            }
            for row in rows
        ]

    def erase(self, connection: Connection, fan: str) -> Erased:
        return Erased(self.name, int(connection.execute(delete(ratings).where(ratings.c.fan == fan)).rowcount))

    def purge(self, connection: Connection, before: datetime) -> int:
        """Ratings follow the turns' retention (`before` is naive UTC, `at` epoch seconds)."""
        cutoff = before.replace(tzinfo=UTC).timestamp()
        return int(connection.execute(delete(ratings).where(ratings.c.at < cutoff)).rowcount)


class ConsentPart:
    """The fan's answer to the consent question (`[privacy] consent = "opt-in"`)."""

    name = "consent"
    tables: tuple[Table, ...] = (consents,)

    def export(self, connection: Connection, fan: str, key: Optional[bytes]) -> Any:
        row = connection.execute(select(consents).where(consents.c.fan == fan)).mappings().first()
        if row is None:
            return None
        return {"choice": row["choice"], "at": _when(row["at"]), "notice_version": row["notice_version"]}

    def erase(self, connection: Connection, fan: str) -> Erased:
        return Erased(self.name, int(connection.execute(delete(consents).where(consents.c.fan == fan)).rowcount))


def everything() -> tuple[FanDataPart, ...]:
    """Every part, in export order. Imported lazily: the ticket part lives with the tickets."""
    from bot.handoff.fan_data import TicketsPart

    return (TurnsPart(), PreferencesPart(), ConversationsPart(), TicketsPart(), RatingsPart(), EventsPart(), ConsentPart())


def export_parts(connection: Connection, parts: tuple[FanDataPart, ...], fan: str, key: Optional[bytes]) -> dict[str, Any]:
    """One section per part: what `/my-data` shows."""
    return {part.name: part.export(connection, fan, key) for part in parts}


def holds_rows(connection: Connection, parts: tuple[FanDataPart, ...], fan: str) -> bool:
    """Whether any part holds a row naming the fan."""
    return any(
        connection.execute(select(table.c.fan).where(table.c.fan == fan).limit(1)).first() is not None
        for part in parts
        for table in part.tables
        if "fan" in table.c
    )


#: How the fan's erasure receipt names each part's rows (`ErasureReceipt.itemised`).
RECEIPT_NAMES = {
    "turns": "stored messages",
    "transcript_logging": "your privacy setting",
    "conversations": "conversation states",
    "tickets": "handoff tickets",
    "ratings": "your ratings of my answers",
    "events": "report events (which kind of reply you got, when)",
    "consent": "your consent record",
}


@dataclass(frozen=True)
class ErasureReceipt:
    """What an erasure deleted: the data key, and rows per part of `bot.privacy.fan_data`."""

    data_keys: int
    parts: Mapping[str, int] = field(default_factory=dict)
    #: Tickets that were still open or claimed: the desk is told they were erased.
    active_tickets: tuple[int, ...] = ()
    #: Desk messages posted about the fan's tickets: the desks delete them.
    desk_posts: tuple[DeskPost, ...] = ()
    #: Finished after a crash: the counts are what this run deleted, not the whole erasure.
    resumed: bool = False

    @classmethod
    def of(cls, data_keys: int, erased: Mapping[str, Erased], resumed: bool = False) -> ErasureReceipt:
        """The receipt of the parts' erasures; the tickets part adds what the desks must be told."""
        tickets = erased.get("tickets")
        return cls(
            data_keys=data_keys,
            parts={name: part.rows for name, part in erased.items()},
            active_tickets=getattr(tickets, "active", ()),
            desk_posts=getattr(tickets, "posts", ()),
            resumed=resumed,
        )

    def itemised(self) -> str:
        """Every count that makes up `records`, named: the items add up to the total."""
        items = [f"your encryption key ({self.data_keys})"]
        items += [f"{RECEIPT_NAMES.get(name, name)} ({rows})" for name, rows in self.parts.items()]
        return ", ".join(items)

    def counts(self) -> dict[str, Any]:
        """What the audit record of the erasure says: counts only."""
        return {"records": self.records, "turns": self.turns, "tickets": self.tickets}

    @property
    def turns(self) -> int:
        return self.parts.get("turns", 0)

    @property
    def preferences(self) -> int:
        return self.parts.get("transcript_logging", 0)

    @property
    def tickets(self) -> int:
        return self.parts.get("tickets", 0)

    @property
    def records(self) -> int:
        return self.data_keys + sum(self.parts.values())
