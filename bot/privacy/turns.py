"""Turns: one stored line of a conversation, a batch queued for the group commit, and each
active fan's recent turns held in memory for handoff packets.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Optional

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from bot.privacy.fan_data import readable
from bot.privacy.keys import DATA_KEY_CACHE
from bot.privacy.schema import turns


@dataclass(frozen=True)
class Turn:
    """One stored line of a conversation; `text` must already be redacted."""

    fan: str
    conversation: str
    role: str  # fan, assistant, moderator
    kind: str
    at: datetime
    text: str
    intent: Optional[str] = None
    confidence: Optional[float] = None


def read_recent(connection: Connection, fan: str, limit: int, key: Optional[bytes]) -> list[dict[str, Any]]:
    """The fan's last `limit` turns, oldest first, decrypted with `key` (for handoff packets)."""
    rows = connection.execute(
        select(turns.c.role, turns.c.kind, turns.c.at, turns.c.body).where(turns.c.fan == fan).order_by(turns.c.id.desc()).limit(limit)
    ).mappings().all()
    return [{"role": row["role"], "kind": row["kind"], "at": row["at"], "text": readable(key, row["body"])} for row in reversed(rows)]


def first_disclosure(connection: Connection, fan: str) -> Optional[datetime]:
    """When the fan was first told, in what is still stored, that they talk to an AI."""
    query = select(func.min(turns.c.at)).where(turns.c.fan == fan, turns.c.kind == "disclosure")
    return connection.execute(query).scalar()


@dataclass(frozen=True)
class QueuedTurns:
    """A batch waiting for the group commit, with what was known when it was queued."""

    batch: tuple[Turn, ...]
    check_logging: bool
    generation: int  # `FanCaches.generation` then: later changes elsewhere are honoured
    versions: Mapping[str, datetime]  # the fans' cached key versions then


#: One turn held in memory: role, kind, at, text. A tuple, not the dict handed out: every
#: active fan holds a few for the conversation idle limit, so their size is the burst's memory.
_Held = tuple[str, str, datetime, str]
_FIELDS = ("role", "kind", "at", "text")


@dataclass(slots=True)
class _Recent:
    turns: tuple[_Held, ...]  # oldest first, at most `limit`
    disclosed: Optional[datetime]
    seen: float


class RecentTurns:
    """Each active fan's last stored turns and first stored disclosure time, in memory,
    so a handoff packet needs no read of the store.

    An entry exists only while it mirrors the store exactly: it starts empty when the
    fan's data key is made (nothing can be stored before), or from a store read; every
    committed write is appended; an erasure drops it, a purge drops it when it reached
    back past the cutoff. Fans idle for `idle_seconds` (the conversation idle limit) and
    the least recently active beyond `max_fans` are dropped; a fan without an entry is
    read from the store. Store thread only. `limit` 0 keeps nothing.
    """

    def __init__(
        self, limit: int = 0, idle_seconds: float = 0.0, max_fans: int = DATA_KEY_CACHE,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self._idle_seconds = idle_seconds
        self._max_fans = max_fans
        self._monotonic = monotonic
        self._fans: OrderedDict[str, _Recent] = OrderedDict()

    def __contains__(self, fan: object) -> bool:
        self._expire()
        return fan in self._fans

    def __len__(self) -> int:
        self._expire()
        return len(self._fans)

    def get(self, fan: str, limit: int) -> Optional[tuple[list[dict[str, Any]], Optional[datetime]]]:
        """The fan's last `limit` turns (oldest first) and first disclosure, or None."""
        self._expire()
        entry = self._fans.get(fan)
        if entry is None or limit > self.limit:
            return None
        self._touch(fan, entry)
        shown = entry.turns[-limit:] if limit > 0 else ()
        return [dict(zip(_FIELDS, turn)) for turn in shown], entry.disclosed

    def start(self, fan: str, turns: Sequence[dict[str, Any]] = (), disclosed: Optional[datetime] = None) -> None:
        """A complete entry: `turns` are the fan's last stored turns (at least `limit` of
        them, or all there are), `disclosed` their first stored disclosure."""
        if not self.limit:
            return
        held = tuple((turn["role"], turn["kind"], turn["at"], turn["text"]) for turn in turns)
        entry = _Recent(held[-self.limit:], disclosed, 0.0)
        self._fans[fan] = entry
        self._touch(fan, entry)
        while len(self._fans) > self._max_fans:
            self._fans.popitem(last=False)

    def add(self, batch: Iterable[Turn]) -> None:
        """Committed turns, in order; only fans with an entry are kept."""
        if not self._fans:
            return
        for turn in batch:
            entry = self._fans.get(turn.fan)
            if entry is None:
                continue
            entry.turns = (*entry.turns[1 - self.limit:], (turn.role, turn.kind, turn.at, turn.text)) if self.limit > 1 else ((turn.role, turn.kind, turn.at, turn.text),)
            if turn.kind == "disclosure" and (entry.disclosed is None or turn.at < entry.disclosed):
                entry.disclosed = turn.at
            self._touch(turn.fan, entry)
        self._expire()

    def drop(self, fan: str) -> None:
        self._fans.pop(fan, None)

    def compact(self) -> None:
        """After many drops: a dict keeps its grown table until rebuilt."""
        self._fans = OrderedDict(self._fans)

    def drop_before(self, before: datetime) -> None:
        """After a purge of turns older than `before`: entries holding one are no longer exact."""
        for fan in [
            fan for fan, entry in self._fans.items()
            if (entry.disclosed is not None and entry.disclosed < before) or any(at < before for _, _, at, _ in entry.turns)
        ]:
            del self._fans[fan]

    def clear(self) -> None:
        self._fans.clear()

    def fans(self) -> list[str]:
        return list(self._fans)

    def _touch(self, fan: str, entry: _Recent) -> None:
        entry.seen = self._monotonic()
        self._fans.move_to_end(fan)

    def _expire(self) -> None:
        cutoff = self._monotonic() - self._idle_seconds
        while self._fans:
            fan, entry = next(iter(self._fans.items()))
            if entry.seen >= cutoff:
                return
            del self._fans[fan]
