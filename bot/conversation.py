"""Per-conversation state the policy needs between messages: disclosure shown, fallback
streak, the pending yes/no question, the last answer for `/why`.

It lives in the database (`conversations`, keyed by the conversation pseudonym), not in a
process: a fan whose next message reaches another process, or the same one after a restart,
meets the same state. No process keeps a copy: each message reads its row and writes it
back, under the fan's lock (`bot.locks.FanLocks`). A row idle past the limit (the same idle
limit as the model's tracker) is a new conversation, a first contact again, and is swept.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from sqlalchemy import delete, func, select, text

from bot.privacy.schema import conversations

if TYPE_CHECKING:
    from bot.privacy.store import GroupCommit, TranscriptStore


def _upsert() -> Any:
    """The save of a group of states: one statement executed for all its rows. SQLAlchemy
    compiles an `on_conflict_do_update` construct anew on every execution (it has no cache
    key: logged as "[no key]"), which cost about 0.5 ms of the store thread per message; a
    `text` statement is compiled once and cached. `INSERT … ON CONFLICT (…) DO UPDATE SET
    c = excluded.c` is the same in SQLite (3.24+, "UPSERT") and PostgreSQL (9.5+)."""
    names = [column.name for column in conversations.columns]
    updates = ", ".join(f"{name} = excluded.{name}" for name in names if name != "conversation")
    return text(
        f"INSERT INTO {conversations.name} ({', '.join(names)}) VALUES ({', '.join(':' + name for name in names)}) "
        f"ON CONFLICT (conversation) DO UPDATE SET {updates}"
    )


_UPSERT = _upsert()


@dataclass(frozen=True)
class Explanation:
    """Why the last answer was what it was, for `/why`: names and a score, never text."""

    source: str  # "model", "guard" or "fallback"
    intent: Optional[str]
    confidence: Optional[float]
    guess: Optional[str] = None
    #: The rating token of a model answer (`bot.feedback`), so `/feedback` rates it.
    rate: Optional[str] = None


@dataclass
class ConversationState:
    """Content-free: flags and names of questions, never what the fan wrote."""

    disclosed: bool = False
    consecutive_fallbacks: int = 0
    handoff_offered: Optional[str] = None  # the reason, while an offer awaits a yes
    pending_erasure: bool = False
    ask_back: Optional[str] = None  # the action awaiting a yes after words too unsure to act on
    asked_again: bool = False  # an unclear reply to the pending question was asked about once
    last_answer: Optional[Explanation] = None
    #: When this conversation began (epoch seconds): a later one of the same place differs.
    started: float = field(default=0.0)

    @property
    def pending(self) -> bool:
        """A yes/no question of the assistant's awaits an answer."""
        return bool(self.handoff_offered or self.pending_erasure or self.ask_back)

    def clear_pending(self) -> None:
        self.handoff_offered, self.pending_erasure, self.ask_back, self.asked_again = None, False, None, False


class ConversationMemory:
    """The `conversations` table, read and written on the store's thread. Bound to its store
    by the `Bot` (`bind`); the idle limit and the clock are this object's own."""

    def __init__(self, idle_seconds: float, clock: Callable[[], float] = time.time) -> None:
        self._idle_seconds = idle_seconds
        self._clock = clock  # wall-clock seconds: the rows are compared across processes
        self._store: Optional[TranscriptStore] = None
        self._loads: Optional[GroupCommit[tuple[str, str], Optional[dict[str, Any]]]] = None
        self._saves: Optional[GroupCommit[tuple[str, dict[str, Any]], None]] = None

    @property
    def idle_seconds(self) -> float:
        return self._idle_seconds

    def bind(self, store: TranscriptStore) -> None:
        self._store = store
        # A burst of fans (each awaiting its own) is one read and one transaction, not one each.
        self._loads = store.group_commit(self._read_group, same_tick=True)
        self._saves = store.group_commit(self._write_group, same_tick=True)

    def _groups(self) -> tuple[GroupCommit[tuple[str, str], Optional[dict[str, Any]]], GroupCommit[tuple[str, dict[str, Any]], None]]:
        if self._loads is None or self._saves is None:
            raise RuntimeError("ConversationMemory is used before a Bot bound it to its store")
        return self._loads, self._saves

    @property
    def store(self) -> TranscriptStore:
        if self._store is None:
            raise RuntimeError("ConversationMemory is used before a Bot bound it to its store")
        return self._store

    async def load(self, fan: str, conversation: str) -> ConversationState:
        """The conversation's state, or a new one when there is none or it was idle too long.
        Raises `StoreUnavailable` when the database does not answer."""
        now = self._clock()
        row = await self._groups()[0].submit((fan, conversation))
        if row is None or row["fan"] != fan or now - row["seen_at"] > self._idle_seconds:
            return ConversationState(started=now)
        return _state(row)

    async def save(self, fan: str, conversation: str, state: ConversationState) -> None:
        """Writes the state back as of now (an insert, or an update of the existing row)."""
        values = _row(state) | {"fan": fan, "seen_at": self._clock()}
        await self._groups()[1].submit((conversation, values))

    def _read_group(self, wanted: list[tuple[str, str]]) -> list[Optional[dict[str, Any]]]:
        """Store thread: the rows of the conversations loaded meanwhile, in one statement, and
        their fans' `/privacy` choices into the store's cache (read after the reply anyway)."""
        with self.store.engine.connect() as connection:
            query = select(conversations).where(conversations.c.conversation.in_({conversation for _, conversation in wanted}))
            rows = {row["conversation"]: dict(row) for row in connection.execute(query).mappings()}
            self.store.read_logging_choices((fan for fan, _ in wanted), connection)
        return [rows.get(conversation) for _, conversation in wanted]

    def _write_group(self, saves: list[tuple[str, dict[str, Any]]]) -> list[None]:
        """Store thread: the states saved meanwhile, in one transaction (the last save of a
        conversation wins, as it would one after another)."""
        rows = [{"conversation": conversation, **values} for conversation, values in dict(saves).items()]
        with self.store.engine.begin() as connection:
            connection.execute(_UPSERT, rows)
        return [None] * len(saves)

    async def is_current(self, conversation: str, started: float) -> bool:
        """Whether the conversation is still the one begun at `started` (not erased, expired
        and begun again meanwhile)."""

        def read() -> Optional[float]:
            with self.store.engine.connect() as connection:
                return connection.execute(
                    select(conversations.c.started_at).where(conversations.c.conversation == conversation)
                ).scalar()

        return await self.store.run(read) == started

    async def count(self, fan: str) -> int:
        """Live conversations of the fan (for `/my-data` and checks)."""
        cutoff = self._clock() - self._idle_seconds

        def read() -> int:
            with self.store.engine.connect() as connection:
                query = select(func.count()).select_from(conversations).where(conversations.c.fan == fan, conversations.c.seen_at >= cutoff)
                return int(connection.execute(query).scalar() or 0)

        return await self.store.run(read)

    async def sweep(self) -> int:
        """Deletes conversations idle past the limit; returns how many. Run periodically (one
        process is enough: a stale row is ignored by `load` anyway)."""
        cutoff = self._clock() - self._idle_seconds

        def work() -> int:
            with self.store.engine.begin() as connection:
                return int(connection.execute(delete(conversations).where(conversations.c.seen_at < cutoff)).rowcount)

        return await self.store.run(work)


def _row(state: ConversationState) -> dict[str, Any]:
    return {
        "started_at": state.started,
        "disclosed": state.disclosed,
        "fallbacks": state.consecutive_fallbacks,
        "handoff_offered": state.handoff_offered,
        "pending_erasure": state.pending_erasure,
        "ask_back": state.ask_back,
        "asked_again": state.asked_again,
        "last_answer": json.dumps(asdict(state.last_answer)) if state.last_answer is not None else None,
    }


def _state(row: dict[str, Any]) -> ConversationState:
    last = json.loads(row["last_answer"]) if row["last_answer"] else None
    return ConversationState(
        disclosed=bool(row["disclosed"]),
        consecutive_fallbacks=int(row["fallbacks"]),
        handoff_offered=row["handoff_offered"],
        pending_erasure=bool(row["pending_erasure"]),
        ask_back=row["ask_back"],
        asked_again=bool(row["asked_again"]),
        last_answer=Explanation(**last) if last is not None else None,
        started=float(row["started_at"]),
    )
