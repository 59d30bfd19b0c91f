"""Minimized events for `bot report` and `/metrics`: what happened, never what anyone wrote.

One row per assistant reply (its Outgoing kind, intent, confidence, platform and the
conversation it belongs to), per handoff step (opened, claimed, first moderator reply,
resolved, cancelled, timed out, fan unreachable) and per privacy operation (export, erasure,
`/privacy off`, retention purge). Handoff and privacy events carry no fan at all; reply
events carry the fan's pseudonym only so that erasure and `/my-data` reach them
(`bot.privacy.fan_data.EventsPart`), and lose it when the fan keeps no transcript
(`/privacy off`) or was erased before the row was written.

`conversation` in an event is not the conversation pseudonym but a hash of it with the
conversation's start (`ConversationState.started`): a conversation idle past
`[assistant] conversation_idle_minutes` starts again with the disclosure, so disclosure
coverage is counted per conversation in that sense.

Reply events are buffered in memory and written in one transaction per `FLUSH_SECONDS` (or
per `FLUSH_EVENTS`) on the store's group commit (`TranscriptStore.group_commit`): the message
path pays a list append. Written per message instead, the extra transaction on the store
thread, which the next message's conversation-state write waits behind, added 0.56 ms at p50
(bench/report.py, docs/benchmarks.md). The price: a crash loses up to `FLUSH_SECONDS` of reply
events (the report's counts, never a fan's data); `Bot.drain` flushes them on shutdown.
Handoff and privacy events are written inside the transaction that decides the change
(a conditional update in `bot.handoff.ticket_store`, the erasure's last step), so with
several workers on one database each change is recorded exactly once.

Retention: events older than `[privacy] retention_days` are deleted with the turns
(`TranscriptStore.purge`), so the report looks back at most that far.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Optional

from sqlalchemy import delete, insert, select
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy.engine import Connection, Engine

from bot.messages import Outgoing
from bot.privacy.schema import conversations, events, preferences

if TYPE_CHECKING:
    from bot.privacy.store import TranscriptStore

logger = logging.getLogger(__name__)

REPLY = "reply"
HANDOFF_OPENED = "handoff_opened"
HANDOFF_CLAIMED = "handoff_claimed"
HANDOFF_FIRST_REPLY = "handoff_first_reply"
HANDOFF_RESOLVED = "handoff_resolved"
HANDOFF_CANCELLED = "handoff_cancelled"
HANDOFF_TIMEOUT = "handoff_timeout"
HANDOFF_UNREACHABLE = "handoff_unreachable"
EXPORT = "export"
ERASURE = "erasure"
PRIVACY_OFF = "privacy_off"
PRIVACY_ON = "privacy_on"
PURGE = "purge"

FLUSH_SECONDS = 1.0
FLUSH_EVENTS = 500


#: Called with each event as it is recorded in this process (`bot.metrics` counts them).
Observer = Callable[["Event"], None]
_observers: list[Observer] = []


@dataclass(frozen=True)
class Event:
    kind: str
    at: float  # epoch seconds
    platform: Optional[str] = None
    fan: Optional[str] = None
    conversation: Optional[str] = None
    intent: Optional[str] = None
    confidence: Optional[float] = None
    reason: Optional[str] = None
    seconds: Optional[float] = None
    count: Optional[int] = None


def epoch(moment: datetime) -> float:
    """A naive UTC datetime (the store's convention) as epoch seconds."""
    return moment.replace(tzinfo=UTC).timestamp() if moment.tzinfo is None else moment.timestamp()


def conversation_id(conversation: str, started: float) -> str:
    """One conversation in the report's sense: the pseudonym and when it (re)started."""
    return hashlib.sha256(f"{conversation}:{started!r}".encode()).hexdigest()


def observe(observer: Observer) -> None:
    """Registers a process-local observer of recorded events (no fan is passed on by it)."""
    if observer not in _observers:
        _observers.append(observer)


def _notify(event: Event) -> None:
    for observer in _observers:
        try:
            observer(event)
        except Exception:  # a metric must never break a reply
            logger.exception("an event observer failed")


def add(connection: Connection, kind: str, at: float, **fields: Any) -> None:
    """Writes one event inside the caller's transaction (handoff and privacy events: no fan);
    observers hear of it once that transaction commits (a retried one is not counted twice)."""
    event = Event(kind, at, **fields)
    connection.execute(insert(events).values(**asdict(event)))
    if not sqlalchemy_event.contains(Engine, "commit", _committed):
        sqlalchemy_event.listen(Engine, "commit", _committed)
        sqlalchemy_event.listen(Engine, "rollback", _rolled_back)
    connection.info.setdefault(_UNCOMMITTED, []).append(event)


_UNCOMMITTED = "bot.privacy.events: uncommitted"


def _committed(connection: Connection) -> None:
    for event in connection.info.pop(_UNCOMMITTED, ()):
        _notify(event)


def _rolled_back(connection: Connection) -> None:
    connection.info.pop(_UNCOMMITTED, None)


def record(engine: Engine, kind: str, at: float, **fields: Any) -> None:
    """Writes one event at `at` (epoch seconds) in a transaction of its own (store thread)."""
    with engine.begin() as connection:
        add(connection, kind, at, **fields)


def erased(connection: Connection, requested: Optional[datetime], actor: str, at: float) -> None:
    """An erasure completed (in its last transaction): who asked and how long it took, no fan."""
    seconds = (datetime.utcnow() - requested).total_seconds() if requested is not None else None
    add(connection, ERASURE, at, reason=actor if actor in ("fan", "operator") else "moderator", seconds=seconds)


def purge(connection: Connection, before: datetime, turns_purged: int, at: float) -> int:
    """Retention: deletes events older than `before` and records the purge; returns how many."""
    deleted = int(connection.execute(delete(events).where(events.c.at < epoch(before))).rowcount)
    add(connection, PURGE, at, count=turns_purged)
    return deleted


class EventLog:
    """Buffers reply events and writes them on the store's group commit; `enabled` False
    records nothing (the benchmark's comparison)."""

    def __init__(self, store: TranscriptStore, clock: Callable[[], float] = time.time, enabled: bool = True) -> None:
        self._store = store
        #: Epoch seconds of a reply event: the bot's clock (`Bot` passes it; a replay's does not
        #: move when read, `bot.replay.ReplayClock`).
        self.clock = clock
        self.enabled = enabled
        self._group = store.group_commit(self._write)
        self._pending: set[asyncio.Future[None]] = set()
        self._buffer: list[Event] = []
        self._timer: Optional[asyncio.TimerHandle] = None

    def replies(
        self, platform: str, fan: str, conversation: str, started: float, replies: Sequence[Outgoing],
        earlier: Sequence[Event] = (),
    ) -> None:
        """One event per assistant message to the fan (moderators' words and desk posts are not
        the assistant's), after the `earlier` ones `held` returned (opt-in: before the yes)."""
        if not self.enabled:
            return
        self._buffer.extend(earlier)
        self._buffer.extend(self.held(platform, fan, conversation, started, replies))
        if len(self._buffer) >= FLUSH_EVENTS:
            self.flush()
        elif self._buffer and self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(FLUSH_SECONDS, self.flush)

    def held(self, platform: str, fan: str, conversation: str, started: float, replies: Sequence[Outgoing]) -> tuple[Event, ...]:
        """The reply events of an exchange, counted (`/metrics`) but not written: under
        `[privacy] consent = "opt-in"` they wait in memory with the conversation's held state
        (`bot.consent.Consent`) and are written with the yes (`replies(earlier=...)`), so the
        report sees the disclosure that opened the conversation; a no drops them."""
        if not self.enabled:
            return ()
        at = self.clock()
        session = conversation_id(conversation, started)
        batch = tuple(
            Event(REPLY, at, platform, fan, session, reply.intent, reply.confidence, reply.kind.value)
            for reply in replies
            if reply.from_ai and reply.to == "user"
        )
        for event in batch:
            _notify(event)
        return batch

    def flush(self) -> None:
        """Queues the buffered reply events for writing now."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._buffer:
            batch, self._buffer = tuple(self._buffer), []
            self._submit(batch, notify=False)

    def unreachable(self, platform: str, reason: str) -> None:
        """A handoff's fan could not be reached (decided once across processes by the router's shared throttle)."""
        self._submit((Event(HANDOFF_UNREACHABLE, self.clock(), platform, reason=reason[:32]),))

    def _submit(self, batch: tuple[Event, ...], notify: bool = True) -> None:
        for event in batch if notify else ():
            _notify(event)
        future = self._group.submit(batch)
        self._pending.add(future)
        future.add_done_callback(self._settled)

    def _settled(self, future: asyncio.Future[None]) -> None:
        self._pending.discard(future)
        if not future.cancelled() and future.exception() is not None:
            logger.error("an event write failed: %s", type(future.exception()).__name__)

    def _write(self, groups: list[tuple[Event, ...]]) -> list[None]:
        """Store thread: every queued batch in one transaction. An event names its fan only
        while the conversation it belongs to is still held (its state row, with the same
        start) and the fan keeps transcripts: after an erasure by any process, even one the
        fan has written again since, or with `/privacy off`, the row is anonymous. On
        PostgreSQL the state rows are locked `FOR SHARE` until commit, so an erasure deleting
        them waits, and then deletes these rows too."""
        rows = [event for batch in groups for event in batch]
        with self._store.engine.begin() as connection:
            held = _held_conversations(connection, {event.fan for event in rows if event.fan})
            connection.execute(
                insert(events),
                [
                    asdict(event) if (event.fan, event.conversation) in held else {**asdict(event), "fan": None, "conversation": None}
                    for event in rows
                ],
            )
        return [None] * len(groups)

    async def drain(self) -> None:
        """Writes what is buffered and waits until every queued event is in the database."""
        self.flush()
        if self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)


def _held_conversations(connection: Connection, fans: Iterable[str]) -> set[tuple[str, str]]:
    """(fan, event conversation id) of every conversation held for fans who keep transcripts."""
    wanted = sorted(set(fans))
    if not wanted:
        return set()
    query = select(conversations.c.fan, conversations.c.conversation, conversations.c.started_at).where(conversations.c.fan.in_(wanted))
    if connection.dialect.name == "postgresql":
        query = query.with_for_update(read=True)
    present = connection.execute(query).all()
    off = set(connection.execute(
        select(preferences.c.fan).where(preferences.c.fan.in_(wanted), preferences.c.logging_enabled == False)  # noqa: E712
    ).scalars())
    return {(fan, conversation_id(conversation, started)) for fan, conversation, started in present if fan not in off}
