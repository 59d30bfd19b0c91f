"""The transcript store: minimized turns, encrypted per fan, erasable by crypto-shredding.

SQLAlchemy 1.4 Core in its 2.0 style, run on one worker thread per store so SQLite sees a
single writer and the event loop never blocks on I/O.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import sqlite3
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, Optional, TypeVar

from sqlalchemy import create_engine, delete, event, func, insert, inspect, literal, select, text, update
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DisconnectionError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.pool import QueuePool

from bot.handoff.locations import DeskPost
from bot.privacy import crypto, migrate
from bot.privacy.audit import APPEND_ATTEMPTS, AuditLog
from bot.privacy.crypto import MasterKeys
from bot.privacy.fan_data import ERASE_BATCH, FanDataPart, erase_turns_batch, everything, readable
from bot.privacy.fan_data import logging_enabled as _stored_logging_enabled
from bot.privacy.fan_data import set_logging as _store_logging
from bot.privacy.notify import ERASED, EVERY_FAN, KEYS, PREFERENCE, announce, fan_token
from bot.privacy.schema import (
    data_keys,
    desk_posts,
    desk_removals,
    dialect_insert,
    erasures,
    preferences,
    store_meta,
    tickets,
    turns,
)
from bot.privacy.spool import Spool

T = TypeVar("T")
I = TypeVar("I")  # noqa: E741 - GroupCommit[I, R]: item in, result out
R = TypeVar("R")
logger = logging.getLogger(__name__)
DATA_KEY_CACHE = 10_000


class StoreError(RuntimeError):
    """The database cannot be opened or used; the message names the URL's database."""


class StoreUnavailable(StoreError):
    """The database did not answer (down, unreachable, locked): try again later."""


#: Driver errors that mean "not reachable now" rather than "this statement is wrong".
OUTAGES = (OperationalError, InterfaceError, DisconnectionError)


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


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA secure_delete=ON")  # erased rows are overwritten, not left in free pages
    # No checkpoint inside a commit: whichever write crossed the WAL limit would pay for
    # copying it back (hundreds of ms). `_WalCheckpointer` does it beside the writer.
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()


class _WalCheckpointer:
    """Checkpoints a SQLite WAL from its own connection every few seconds (PASSIVE mode
    never blocks the store's writer), so commits never stall on a checkpoint."""

    def __init__(self, path: str, every_seconds: float = 2.0) -> None:
        self._path = path
        self._every = every_seconds
        self._stop = threading.Event()
        self._failing = False
        self._thread = threading.Thread(target=self._loop, name="wal-checkpoint", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._every):
            self.checkpoint()

    def checkpoint(self, truncate: bool = False) -> None:
        """PASSIVE copies what it can without waiting; TRUNCATE (after a key is shredded)
        waits for readers and empties the WAL file, so no copy of the key stays there."""
        try:
            # mode=rw: never create the file (a removed store must not come back empty).
            connection = sqlite3.connect(f"file:{self._path}?mode=rw", timeout=1, uri=True)
            try:
                connection.execute(f"PRAGMA wal_checkpoint({'TRUNCATE' if truncate else 'PASSIVE'})")
            finally:
                connection.close()
            self._failing = False
        except sqlite3.Error:
            if not self._failing:  # once per failure streak, not every few seconds
                logger.warning("SQLite WAL checkpoint failed; will retry quietly")
            self._failing = True

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.checkpoint()


def open_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        database = Path(parsed.database)
        database.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not database.exists():  # owner-only; SQLite gives its -wal and -shm files the same mode
            os.close(os.open(database, os.O_WRONLY | os.O_CREAT, 0o600))
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise StoreError("an in-memory SQLite store would vanish on exit: use a file, e.g. sqlite:///.data/transcripts.db")
    if parsed.get_backend_name() != "sqlite":
        # An unreachable server fails in seconds, not after the operating system's TCP timeout.
        connect_args = {"connect_timeout": 5} if parsed.get_backend_name() == "postgresql" else {}
        return create_engine(url, future=True, pool_pre_ping=True, connect_args=connect_args)
    # SQLAlchemy 1.4 opens a new connection per use for SQLite files (NullPool), paying the
    # pragmas every time: milliseconds per write. Keep connections; the store's single
    # worker thread is the only writer.
    engine = create_engine(url, future=True, poolclass=QueuePool, connect_args={"check_same_thread": False})
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


class GroupCommit(Generic[I, R]):
    """Items queued while the store thread is busy are written together, by one job.

    `write` runs on the store's thread with every item queued since the last group, in
    submission order, and returns one result per item; when it raises, every item of the
    group gets the error. A group's job is queued on the store thread when its first item
    arrives, so the group keeps its place in order with every other store job.

    With `same_tick`, the job is queued at the end of the event loop's current iteration
    instead, so items submitted by tasks that run in the same iteration (a burst) form one
    group. Only for items whose submitter awaits the result: a job it queued right after
    submitting could otherwise overtake the group.
    """

    def __init__(
        self, executor: ThreadPoolExecutor, write: Callable[[list[I]], Sequence[R]], same_tick: bool = False
    ) -> None:
        self._executor = executor
        self._write = write
        self._same_tick = same_tick
        self._lock = threading.Lock()
        self._queued: list[tuple[I, asyncio.Future[R], asyncio.AbstractEventLoop]] = []

    @property
    def pending(self) -> bool:
        return bool(self._queued)

    def submit(self, item: I) -> asyncio.Future[R]:
        loop = asyncio.get_running_loop()
        settled: asyncio.Future[R] = loop.create_future()
        with self._lock:
            self._queued.append((item, settled, loop))
            start_flush = len(self._queued) == 1
        if start_flush:
            if self._same_tick:
                loop.call_soon(self._executor.submit, self._flush)
            else:
                self._executor.submit(self._flush)
        return settled

    def _flush(self) -> None:
        with self._lock:
            pending, self._queued = self._queued, []
        try:
            results = self._write([item for item, _, _ in pending])
        except OUTAGES as failure:  # the database is away: every waiter learns it, honestly named
            unavailable = StoreUnavailable(f"the database did not answer: {type(failure).__name__}")
            for _, settled, loop in pending:
                loop.call_soon_threadsafe(_settle, settled, None, unavailable)
            return
        except Exception as failure:
            if len(pending) == 1:
                _, settled, loop = pending[0]
                loop.call_soon_threadsafe(_settle, settled, None, failure)
                return
            self._one_by_one(pending)
            return
        settled_by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[R], R]]] = {}
        for (_, settled, loop), result in zip(pending, results):
            settled_by_loop.setdefault(loop, []).append((settled, result))
        for loop, outcomes in settled_by_loop.items():  # one wake-up of each loop for the whole group
            loop.call_soon_threadsafe(_settle_all, outcomes)

    def _one_by_one(self, pending: list[tuple[I, asyncio.Future[R], asyncio.AbstractEventLoop]]) -> None:
        """A group failed: each item is retried alone, so one bad item (say, text no encoder
        accepts) fails only its own waiter and never takes the rest of the group with it."""
        failed = 0
        for item, settled, loop in pending:
            try:
                [result] = self._write([item])
            except Exception as failure:
                failed += 1
                loop.call_soon_threadsafe(_settle, settled, None, failure)
            else:
                loop.call_soon_threadsafe(_settle, settled, result, None)
        logger.error("a group commit failed; %d of %d item(s) failed again alone and were dropped", failed, len(pending))


@dataclass(frozen=True)
class _QueuedTurns:
    """A batch waiting for the group commit, with what was known when it was queued."""

    batch: tuple[Turn, ...]
    check_logging: bool
    generation: int  # `TranscriptStore._generation` then: later changes elsewhere are honoured
    versions: Mapping[str, datetime]  # the fans' cached key versions then


@dataclass
class _Recent:
    turns: deque[dict[str, Any]]
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
        shown = list(entry.turns)[-limit:] if limit > 0 else []
        return [dict(turn) for turn in shown], entry.disclosed

    def start(self, fan: str, turns: Sequence[dict[str, Any]] = (), disclosed: Optional[datetime] = None) -> None:
        """A complete entry: `turns` are the fan's last stored turns (at least `limit` of
        them, or all there are), `disclosed` their first stored disclosure."""
        if not self.limit:
            return
        entry = _Recent(deque((dict(turn) for turn in turns), maxlen=self.limit), disclosed, 0.0)
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
            entry.turns.append({"role": turn.role, "kind": turn.kind, "at": turn.at, "text": turn.text})
            if turn.kind == "disclosure" and (entry.disclosed is None or turn.at < entry.disclosed):
                entry.disclosed = turn.at
            self._touch(turn.fan, entry)
        self._expire()

    def drop(self, fan: str) -> None:
        self._fans.pop(fan, None)

    def drop_before(self, before: datetime) -> None:
        """After a purge of turns older than `before`: entries holding one are no longer exact."""
        for fan in [
            fan for fan, entry in self._fans.items()
            if (entry.disclosed is not None and entry.disclosed < before) or any(t["at"] < before for t in entry.turns)
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


class TranscriptStore:
    def __init__(
        self,
        engine: Engine,
        keys_engine: Engine,
        master: MasterKeys,
        parts: Optional[Sequence[FanDataPart]] = None,
        spool: Optional[Spool] = None,
    ) -> None:
        self._engine = engine
        self._spool = spool
        self._keys_engine = keys_engine
        self._master = master
        self._parts: tuple[FanDataPart, ...] = tuple(parts) if parts is not None else everything()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
        #: Each cached data key with its version, the row's `created_at`: a key made after an
        #: erasure is another version, so a cache or a queued write of the old one is refused.
        self._data_keys: OrderedDict[str, tuple[bytes, datetime]] = OrderedDict()
        self._logging: dict[str, bool] = {}
        # Changes announced by other processes (`bot.privacy.notify`). `_generation` counts
        # them; a queued write remembers the count it was queued at, so a write queued before
        # the fan's erasure elsewhere is dropped. Guarded by `_changes`: the listener thread
        # records, the event loop queues, the store thread writes.
        self._origin = uuid.uuid4().hex[:12]  # this store's own notices are not news to it
        self._changes = threading.Lock()
        self._generation = 0
        self._changed: dict[str, tuple[int, bool]] = {}  # token -> (generation, erased)
        self._all_changed = 0  # generation of the last "trust nothing" (the listener reconnected)
        self._fan_by_token: dict[str, str] = {}  # fans held in a cache, by their notice token
        self._erased_callbacks: list[Callable[[str], Awaitable[None]]] = []
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._keys_dirty = False  # PostgreSQL: a key was shredded since the last `compact_keys`
        #: Fans whose erasure is deleting rows in batches: their job id, actor and receipt.
        self._erasing: dict[str, tuple[int, str, ErasureReceipt]] = {}
        self._checkpointers = [
            _WalCheckpointer(str(database))
            for database in {_sqlite_file(engine), _sqlite_file(keys_engine)}
            if database is not None
        ]
        self._files = {path: _identity(path) for path in (_sqlite_file(engine), _sqlite_file(keys_engine)) if path}
        self.problem: Optional[str] = None  # set by `check_health` while the store is unusable
        #: The SQLite file was removed or replaced under the running bot: nothing written now
        #: would survive, so the bot says so to every fan until it is restarted (sticky).
        self.broken = False
        self._groups: list[GroupCommit[Any, Any]] = []
        self._turn_writes: GroupCommit[_QueuedTurns, None] = self.group_commit(self._write_groups)
        self._logging_reads: GroupCommit[str, bool] = self.group_commit(self._read_logging, same_tick=True)
        self._recent = RecentTurns()
        self.audit_log = AuditLog(engine)
        self._on_close: list[Callable[[], None]] = []

    @classmethod
    def open(
        cls,
        url: str,
        keys_url: Optional[str],
        master: MasterKeys,
        pseudonym_key: Optional[bytes] = None,
        create: bool = True,
        spool_path: Optional[Path] = None,
        adopt_pseudonym_key: bool = False,
    ) -> TranscriptStore:
        """Opens both databases, proves the keys are the store's, then migrates.

        A wrong or missing master key (`MasterKeyError`), or a pseudonym key other than
        the one the store was created with (`KeyMismatchError`), raises before any
        migration or write. With `create` False (a deployment, an operator command), a
        missing or empty database raises `StoreMissingError` instead of becoming a new,
        empty store: a vanished data folder must not silently lose the tickets and the
        audit chain (`bot db init` creates a store deliberately). Erasures a crash
        interrupted are resumed once the store runs.
        """
        if not create:
            for each in {url, keys_url or url}:
                _require_existing_file(each)
        try:
            engine = open_engine(url)
            keys_engine = engine if not keys_url or keys_url == url else open_engine(keys_url)
        except StoreError:
            raise
        except Exception as error:  # driver errors carry passwords in URLs: name the database only
            raise StoreError(f"cannot open the store ({_describe(url)}): {type(error).__name__}: {_first_line(error)}") from None
        if not create:
            _require_schema(engine, "transcripts", url)
            _require_schema(keys_engine, "keys", keys_url or url)
        _check_master_keys(keys_engine, master)  # before any migration, thread or write
        if pseudonym_key is not None:
            _check_pseudonym_key(engine, pseudonym_key)
        try:
            migrate.upgrade(engine, "transcripts")
            migrate.upgrade(keys_engine, "keys")
            if pseudonym_key is not None:
                _record_pseudonym_key(engine, keys_engine, pseudonym_key, adopt_pseudonym_key)
        except KeyMismatchError:
            raise
        except Exception as error:
            raise StoreError(f"cannot open the store ({_describe(url)}): {type(error).__name__}: {_first_line(error)}") from None
        store = cls(engine, keys_engine, master, spool=Spool(spool_path, master) if spool_path else None)
        store._executor.submit(store._resume_erasures_logged)
        return store

    @property
    def engine(self) -> Engine:
        return self._engine

    async def run(self, work: Callable[[], T]) -> T:
        """Runs database work on the store's thread, in order with every other store call.

        Raises `StoreUnavailable` when the database does not answer, so callers can tell the
        fan honestly instead of failing silently."""
        self._loop = asyncio.get_running_loop()
        try:
            return await self._loop.run_in_executor(self._executor, work)
        except OUTAGES as error:
            raise StoreUnavailable(f"the database did not answer: {type(error).__name__}") from error

    def group_commit(self, write: Callable[[list[I]], Sequence[R]], same_tick: bool = False) -> GroupCommit[I, R]:
        """A queue whose items are written in groups on the store's thread (see `GroupCommit`);
        `settle()` waits for it too."""
        group: GroupCommit[I, R] = GroupCommit(self._executor, write, same_tick)
        self._groups.append(group)
        return group

    def keep_recent(self, turns: int, idle_seconds: float) -> None:
        """Keeps each active fan's last `turns` stored turns in memory for handoff packets
        (see `RecentTurns`), dropping fans idle for `idle_seconds`. Call before use."""
        self._recent = RecentTurns(turns, idle_seconds)

    def forget_recent(self, fan: str) -> None:
        """Drops the fan's recent turns held in memory, after a deletion outside this class
        (store thread only): the next handoff packet reads the store instead."""
        self._recent.drop(fan)

    async def holds_recent(self, fan: str) -> bool:
        """Whether any of the fan's turns are held in memory (for tests and checks)."""
        return await self.run(lambda: fan in self._recent)

    # Health ----------------------------------------------------------------------------

    @property
    def healthy(self) -> bool:
        return self.problem is None

    async def check_health(self, timeout: float = 10.0) -> Optional[str]:
        """Whether the store is still usable: each SQLite file is the one opened (not removed
        or replaced under the running bot) and a small write commits. Returns (and keeps in
        `problem`) a one-line description without content, or None when healthy."""

        def probe() -> Optional[str]:
            for path, identity in self._files.items():
                current = _identity(path)
                if current is None:
                    self.broken = True
                    return f"the SQLite file {path} was removed while the bot runs"
                if current != identity:
                    self.broken = True
                    return f"the SQLite file {path} was replaced while the bot runs"
            with self._engine.begin() as connection:
                changed = connection.execute(
                    update(store_meta).where(store_meta.c.name == "health_probe").values(value=datetime.utcnow().isoformat())
                ).rowcount
                if not changed:
                    connection.execute(insert(store_meta).values(name="health_probe", value=datetime.utcnow().isoformat()))
            self._drain_spool()  # back: what waited in the spool goes in now
            return None

        try:
            self.problem = await asyncio.wait_for(self.run(probe), timeout)
        except TimeoutError:
            self.problem = f"the database did not answer within {timeout:g} s"
        except Exception as error:
            self.problem = f"a test write failed: {type(error).__name__}: {_first_line(error)}"[:300]
        return self.problem

    # Data keys -------------------------------------------------------------------------

    def data_key(self, fan: str, create: bool) -> Optional[bytes]:
        """The fan's unwrapped data key (store thread only); None when erased or never made."""
        held = self._key_version(fan, create)
        return held[0] if held is not None else None

    def _key_version(self, fan: str, create: bool) -> Optional[tuple[bytes, datetime]]:
        """The fan's data key and its version (store thread only); None when there is none."""
        cached = self._data_keys.get(fan)
        if cached is not None:
            self._data_keys.move_to_end(fan)
            return cached
        generation = self._generation
        with self._keys_engine.begin() as connection:
            row = connection.execute(select(data_keys.c.wrapped, data_keys.c.created_at).where(data_keys.c.fan == fan)).first()
            if row is None:
                if not create:
                    return None
                key, version = crypto.new_data_key(), datetime.utcnow()
                # Another process may create the fan's key at the same moment: the first one stays.
                statement = dialect_insert(connection)(data_keys).values(fan=fan, wrapped=self._master.wrap(key), created_at=version)
                created = bool(connection.execute(statement.on_conflict_do_nothing(index_elements=[data_keys.c.fan])).rowcount)
                if not created:
                    wrapped, version = connection.execute(
                        select(data_keys.c.wrapped, data_keys.c.created_at).where(data_keys.c.fan == fan)
                    ).one()
                    key = self._master.unwrap(wrapped)
            else:
                key, version = self._master.unwrap(row.wrapped), row.created_at
                created = False
        if created:  # nothing of the fan can be stored yet (turns need the key): an exact entry
            self._recent.start(fan)
        if generation == self._generation:  # no change announced meanwhile: safe to keep
            self._hold_token(fan)
            self._data_keys[fan] = (key, version)
            if len(self._data_keys) > DATA_KEY_CACHE:
                self._data_keys.popitem(last=False)
        return key, version

    def hold_keys(self, fans: Iterable[str], create: bool) -> None:
        """Reads (and with `create`, makes) the data keys of many fans into the cache in one
        transaction (store thread only): a burst of new fans opening tickets costs one
        insert, not one transaction each. `data_key` then finds them held."""
        missing = [fan for fan in dict.fromkeys(fans) if fan not in self._data_keys]
        if not missing:
            return
        generation = self._generation
        held: dict[str, tuple[bytes, datetime]] = {}
        created: set[str] = set()
        with self._keys_engine.begin() as connection:
            query = select(data_keys.c.fan, data_keys.c.wrapped, data_keys.c.created_at).where(data_keys.c.fan.in_(missing))
            stored = {row.fan: (row.wrapped, row.created_at) for row in connection.execute(query)}
            new = [fan for fan in missing if fan not in stored] if create else []
            if new:
                version = datetime.utcnow()
                made = {fan: crypto.new_data_key() for fan in new}
                # Another process may create a fan's key at the same moment: the first one stays.
                statement = dialect_insert(connection)(data_keys).on_conflict_do_nothing(index_elements=[data_keys.c.fan])
                rows = [{"fan": fan, "wrapped": self._master.wrap(key), "created_at": version} for fan, key in made.items()]
                created = set(connection.execute(statement.returning(data_keys.c.fan), rows).scalars())
                held.update((fan, (made[fan], version)) for fan in created)
                if len(created) < len(new):
                    stored.update(
                        (row.fan, (row.wrapped, row.created_at))
                        for row in connection.execute(query.where(data_keys.c.fan.in_([f for f in new if f not in created])))
                    )
        held.update((fan, (self._master.unwrap(wrapped), version)) for fan, (wrapped, version) in stored.items())
        for fan in created:  # nothing of the fan can be stored yet (turns need the key): an exact entry
            self._recent.start(fan)
        if generation == self._generation:  # no change announced meanwhile: safe to keep
            for fan, key in held.items():
                self._hold_token(fan)
                self._data_keys[fan] = key
            while len(self._data_keys) > DATA_KEY_CACHE:
                self._data_keys.popitem(last=False)

    # Changes in other processes (bot.privacy.notify) ------------------------------------

    def when_erased_elsewhere(self, callback: Callable[[str], Awaitable[None]]) -> None:
        """`callback(fan)` runs on the event loop when another process announces the erasure
        of a fan this one holds something of (to drop the rest: the model tracker)."""
        self._erased_callbacks.append(callback)

    @property
    def changes_seen(self) -> int:
        """How many changes announced by other processes (or reconnections) reached this one."""
        return self._generation

    def holds_key(self, fan: str) -> bool:
        """Whether the fan's data key is cached here (for tests and checks)."""
        return fan in self._data_keys

    def changed(self, kind: str, token: str, origin: str) -> None:
        """Another process announced a change (listener thread): writes queued before it are
        refused or re-checked from now on, and the caches are dropped on the store thread."""
        if origin == self._origin:
            return
        with self._changes:
            self._generation += 1
            if token != EVERY_FAN:
                before = self._changed.get(token, (0, False))
                self._changed[token] = (self._generation, before[1] or kind == ERASED)
        self._on_store_thread(self._drop_changed, kind, token)

    def drop_all_cached(self) -> None:
        """Notices may have been missed (the listener (re)connected): trust nothing held."""
        with self._changes:
            self._generation += 1
            self._all_changed = self._generation
        self._on_store_thread(self._drop_everything)

    def _on_store_thread(self, work: Callable[..., None], *args: Any) -> None:
        if self._closed:
            return
        try:
            self._executor.submit(work, *args)
        except RuntimeError:  # shut down meanwhile: nothing is held any more
            pass

    def _drop_everything(self) -> None:
        self._data_keys.clear()
        self._logging.clear()
        self._recent.clear()
        self._fan_by_token.clear()

    def _drop_changed(self, kind: str, token: str) -> None:
        """Store thread: drops what a change made wrong."""
        if token == EVERY_FAN:
            if kind == KEYS:  # rewrapped: the same keys, but the cache is never trusted across a change
                self._data_keys.clear()
            return
        fan = self._fan_by_token.get(token)
        if fan is None:  # nothing of this fan held here
            return
        if kind == PREFERENCE:
            self._logging.pop(fan, None)
            return
        held = fan in self._data_keys or fan in self._recent or fan in self._logging
        self._drop_cached(fan)
        self._fan_by_token.pop(token, None)
        if held and kind == ERASED and self._loop is not None and self._erased_callbacks:
            self._loop.call_soon_threadsafe(self._spawn_erased, fan)

    def _spawn_erased(self, fan: str) -> None:
        for callback in self._erased_callbacks:
            task = asyncio.ensure_future(callback(fan))
            self._tasks.add(task)
            task.add_done_callback(self._erased_done)

    def _erased_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("dropping an erased fan's state failed: %s", type(task.exception()).__name__)

    def _hold_token(self, fan: str) -> None:
        """Remembers the fan's notice token while something of theirs is cached."""
        if len(self._fan_by_token) > 4 * DATA_KEY_CACHE:  # rebuilt from what is still held
            held = [*list(self._data_keys), *list(self._logging), *self._recent.fans()]
            self._fan_by_token = {fan_token(each): each for each in held}
        self._fan_by_token[fan_token(fan)] = fan

    def _fresh(self, batch: tuple[Turn, ...], check_logging: bool, generation: int) -> tuple[tuple[Turn, ...], bool]:
        """A queued batch as it may still be written: without the turns of fans erased
        elsewhere since it was queued; re-checking `/privacy` when a preference changed (or
        notices may have been missed) since."""
        with self._changes:
            if generation >= self._generation:
                return batch, check_logging
            check_logging = check_logging or generation < self._all_changed
            erased = set()
            for fan in {turn.fan for turn in batch}:
                changed, was_erased = self._changed.get(fan_token(fan), (0, False))
                if changed > generation:
                    check_logging = True
                    if was_erased:
                        erased.add(fan)
        return tuple(turn for turn in batch if turn.fan not in erased), check_logging

    # Turns -----------------------------------------------------------------------------

    def _write(self, batch: tuple[Turn, ...], expected: Mapping[str, datetime] = {}) -> None:
        """Encrypts and inserts the turns; never under a key that is gone or replaced.

        `expected`: the key version each fan had when the write was queued; a fan whose key
        changed since (erased, maybe made again) has their turns dropped: they belong to the
        fan's earlier state. In the insert's transaction the key rows are read again (locked
        `FOR SHARE` on PostgreSQL, so an erasure waits for the commit and then deletes these
        rows too; SQLite's write lock serialises the same way), and a fan whose key went
        meanwhile has their turns rolled back and dropped."""
        keys: dict[str, tuple[bytes, datetime]] = {}
        for fan in dict.fromkeys(turn.fan for turn in batch):
            known = expected.get(fan)
            held = self._key_version(fan, create=known is None)
            if held is None or (known is not None and held[1] != known):
                self._drop_cached(fan)
                continue
            keys[fan] = held
        kept = tuple(turn for turn in batch if turn.fan in keys)
        while kept:
            rows = [
                {
                    "fan": turn.fan,
                    "conversation": turn.conversation,
                    "role": turn.role,
                    "kind": turn.kind,
                    "at": turn.at,
                    "intent": turn.intent,
                    "confidence": turn.confidence,
                    "body": crypto.encrypt(keys[turn.fan][0], turn.text),
                }
                for turn in kept
            ]
            self._hold_recent({turn.fan for turn in kept})
            with self._engine.connect() as connection:
                transaction = connection.begin()
                connection.execute(insert(turns), rows)
                gone = self._keys_gone(connection, {fan: version for fan, (_, version) in keys.items()})
                if not gone:
                    transaction.commit()
                    self._recent.add(kept)
                    return
                transaction.rollback()
            for fan in gone:
                self._drop_cached(fan)
                keys.pop(fan)
            kept = tuple(turn for turn in kept if turn.fan in keys)

    def _keys_gone(self, connection: Connection, versions: Mapping[str, datetime]) -> set[str]:
        """The fans whose key row is no longer the given version, read in `connection`'s
        transaction when the keys live in the same database (not atomic otherwise)."""
        query = select(data_keys.c.fan, data_keys.c.created_at).where(data_keys.c.fan.in_(list(versions)))
        if self._keys_engine is self._engine:
            if connection.dialect.name == "postgresql":
                query = query.with_for_update(read=True)
            present = {row.fan: row.created_at for row in connection.execute(query)}
        else:
            with self._keys_engine.connect() as keys_connection:
                present = {row.fan: row.created_at for row in keys_connection.execute(query)}
        return {fan for fan, version in versions.items() if present.get(fan) != version}

    def _hold_recent(self, fans: set[str]) -> None:
        """Reads into memory the recent turns of fans who are writing again (after a restart,
        or idle): off the reply path, so a later handoff packet needs no read."""
        missing = [fan for fan in fans if fan not in self._recent] if self._recent.limit else []
        if not missing:
            return
        try:
            with self._engine.connect() as connection:
                for fan in missing:
                    self.recent_history(fan, self._recent.limit, connection)
        except Exception as error:  # only a cache: the packet will read the store instead
            logger.warning("could not read a fan's recent turns into memory: %s", type(error).__name__)

    def _write_groups(self, groups: list[_QueuedTurns]) -> list[None]:
        """Store thread: spooled batches first (they are older), then this group. When the
        database does not answer and a spool is configured, the group waits in the spool.
        What changed in another process since a batch was queued is honoured (`_fresh`)."""
        fresh = [(self._fresh(item.batch, item.check_logging, item.generation), item.versions) for item in groups]
        try:
            self._drain_spool()
            expected: dict[str, datetime] = {}
            for _, versions in fresh:
                expected.update(versions)
            self._write(tuple(turn for (batch, check), _ in fresh for turn in self._allowed(batch, check)), expected)
        except OUTAGES:
            if self._spool is None:
                raise
            for (batch, check), _ in fresh:
                self._spool.put(batch, check)
        with self._changes:  # no write queued before these changes is left: forget them
            if not self._turn_writes.pending:
                self._changed.clear()
        return [None] * len(groups)

    def _allowed(self, batch: tuple[Turn, ...], check_logging: bool) -> tuple[Turn, ...]:
        """The turns of fans who allow logging, when that was not known as they were queued."""
        if not check_logging:
            return batch
        with self._engine.connect() as connection:
            allowed = {fan for fan in {turn.fan for turn in batch} if _stored_logging_enabled(connection, fan)}
        return tuple(turn for turn in batch if turn.fan in allowed)

    def _drain_spool(self) -> None:
        """Store thread: writes spooled batches back, in order (raises while still down)."""
        if self._spool is not None and self._spool.pending:
            self._spool.drain(lambda turns, check: self._write(self._allowed(tuple(turns), check)), Turn)

    @property
    def spooled(self) -> int:
        """Batches waiting in the spool for the database to come back."""
        return self._spool.pending if self._spool is not None else 0

    def submit(self, *batch: Turn, check_logging: bool = False) -> asyncio.Future[None]:
        """Queues the write at once, without waiting for it.

        Writes queued while the store thread is busy are committed together (group
        commit). Everything runs on one thread in submission order, so a write queued
        before an erasure is erased with the rest; the per-fan lock in `Bot` keeps a fan's
        own later writes behind their erasure. `check_logging`: the fan's `/privacy`
        choice could not be read when queued (the database was down): it is checked
        when the write happens.
        """
        versions = {turn.fan: cached[1] for turn in batch if (cached := self._data_keys.get(turn.fan)) is not None}
        with self._changes:  # in order with `changed` and the clearing in `_write_groups`
            return self._turn_writes.submit(_QueuedTurns(batch, check_logging, self._generation, versions))

    async def append(self, *batch: Turn) -> None:
        if batch:
            await self.submit(*batch)

    async def export(self, fan: str, actor: str = "fan") -> dict[str, Any]:
        """Everything stored about the fan, decrypted (the text was redacted before storage):
        one section per part of `bot.privacy.fan_data`, the same parts erasure deletes."""

        def work() -> dict[str, Any]:
            self._drain_spool()  # the export shows what is spooled too
            key = self.data_key(fan, create=False)
            with self._engine.connect() as connection:
                sections = {part.name: part.export(connection, fan, key) for part in self._parts}
            self.audit_log.record("export_served", actor, {name: len(value) for name, value in sections.items() if isinstance(value, list)})
            return {"pseudonym": fan, "encryption_key": "held" if key is not None else "none", **sections}

        return await self.run(work)

    async def holds_data(self, fan: str) -> bool:
        """Whether anything at all is stored about the fan (a data key, or a row of any part)."""

        def work() -> bool:
            if self.data_key(fan, create=False) is not None:
                return True
            with self._engine.connect() as connection:
                return any(
                    connection.execute(select(table.c.fan).where(table.c.fan == fan).limit(1)).first() is not None
                    for part in self._parts
                    for table in part.tables
                    if "fan" in table.c
                )

        return await self.run(work)

    def read_recent_turns(self, fan: str, limit: int) -> list[dict[str, Any]]:
        """The fan's last turns, oldest first, for a moderator's handoff packet (store
        thread only; not audited as an export: the fan asked for the person who reads it)."""
        with self._engine.connect() as connection:
            return self._read_recent_turns(connection, fan, limit)

    def _read_recent_turns(self, connection: Connection, fan: str, limit: int) -> list[dict[str, Any]]:
        key = self.data_key(fan, create=False)
        rows = connection.execute(
            select(turns.c.role, turns.c.kind, turns.c.at, turns.c.body)
            .where(turns.c.fan == fan)
            .order_by(turns.c.id.desc())
            .limit(limit)
        ).mappings().all()
        return [
            {"role": row["role"], "kind": row["kind"], "at": row["at"], "text": readable(key, row["body"])}
            for row in reversed(rows)
        ]

    def read_first_disclosure(self, fan: str) -> Optional[datetime]:
        """When the fan was first told, in what is still stored, that they talk to an AI
        (store thread only)."""
        with self._engine.connect() as connection:
            return self._read_first_disclosure(connection, fan)

    @staticmethod
    def _read_first_disclosure(connection: Connection, fan: str) -> Optional[datetime]:
        query = select(func.min(turns.c.at)).where(turns.c.fan == fan, turns.c.kind == "disclosure")
        return connection.execute(query).scalar()

    def recent_history(
        self, fan: str, limit: int, connection: Optional[Connection] = None
    ) -> tuple[list[dict[str, Any]], Optional[datetime]]:
        """`read_recent_turns` and `read_first_disclosure` in one, from memory when the fan's
        recent turns are held there (store thread only); a read fills the memory.
        `connection`: one open on the transcript database, to read with."""
        cached = self._recent.get(fan, limit)
        if cached is not None:
            return cached
        if connection is None:
            with self._engine.connect() as own:
                recent, disclosed = self._read_recent_turns(own, fan, limit), self._read_first_disclosure(own, fan)
        else:
            recent, disclosed = self._read_recent_turns(connection, fan, limit), self._read_first_disclosure(connection, fan)
        if limit >= self._recent.limit and fan not in self._erasing:
            self._recent.start(fan, recent, disclosed)
        return recent, disclosed

    async def erased_elsewhere(self, fan: str) -> bool:
        """Whether another process (`bot forget`) erased the fan since this one cached their
        data key (the key row is gone or another version): then the cache is dropped here and
        True returned, so the caller drops its own state of the fan too and nothing is written
        under the shredded key. One primary key lookup, only for fans whose key is cached: the
        safety net under `bot.privacy.notify` (SQLite, or a notice missed)."""

        if fan not in self._data_keys:  # nothing cached, nothing stale: no hop to the store thread
            return False

        def work() -> bool:
            cached = self._data_keys.get(fan)
            if cached is None or fan in self._erasing:
                return False
            with self._keys_engine.connect() as connection:
                version = connection.execute(select(data_keys.c.created_at).where(data_keys.c.fan == fan)).scalar()
            if version == cached[1]:
                return False
            self._drop_cached(fan)  # gone, or erased and made again: another version
            return True

        return await self.run(work)

    def forget_erased_elsewhere(self, fans: Iterable[str], connection: Optional[Connection] = None) -> None:
        """Drops what is held in memory of fans whose data key is gone from the database,
        i.e. erased by another process (`bot forget`) while this one runs (store thread only).

        `connection`, one open on the transcript database, is used when the keys live there too.
        """
        held = [fan for fan in set(fans) if fan in self._data_keys or fan in self._recent]
        if not held:
            return
        query = select(data_keys.c.fan).where(data_keys.c.fan.in_(held))
        if connection is not None and self._keys_engine is self._engine:
            present = set(connection.execute(query).scalars())
        else:
            with self._keys_engine.connect() as keys_connection:
                present = set(keys_connection.execute(query).scalars())
        for fan in held:
            if fan not in present:
                self._data_keys.pop(fan, None)
                self._recent.drop(fan)

    async def erase(self, fan: str, actor: str = "fan") -> ErasureReceipt:
        """Erases everything about the fan; returns once the erasure is durable and the key gone.

        1. An erasure job naming the fan is committed first: from then on the erasure
           finishes even if this process dies (`resume_erasures` at start and with each
           retention run).
        2. The data key is deleted (crypto-shredding): every row left is unreadable.
        3. Every part of `bot.privacy.fan_data` is deleted in one transaction; a fan with
           more than `ERASE_BATCH` turns has the rest deleted in batches queued on the
           store thread, so other fans' writes are not held up behind one large erasure.
        4. When no row is left, the job is deleted and the audit record written, in one
           transaction: the audit record cannot fail after the key is gone without the
           job staying behind to be finished (and audited) later.
        `settle()` waits until step 4 is done.
        """

        def work() -> ErasureReceipt:
            self._drain_spool()  # spooled turns of this fan are erased with the rest
            self._drop_cached(fan)
            with self._engine.begin() as connection:
                job = connection.execute(  # type: ignore[index]  # an executed INSERT always has its key
                    insert(erasures).values(fan=fan, actor=actor, requested_at=datetime.utcnow())
                ).inserted_primary_key[0]
            return self._execute_erasure(int(job), fan, actor)

        return await self.run(work)

    def _drop_cached(self, fan: str) -> None:
        self._data_keys.pop(fan, None)
        self._logging.pop(fan, None)
        self._recent.drop(fan)

    def _execute_erasure(self, job: int, fan: str, actor: str, resumed: bool = False) -> ErasureReceipt:
        """Store thread: steps 2 and 3 of `erase`, then the batches and step 4."""
        with self._keys_engine.begin() as connection:
            keys_deleted = int(connection.execute(delete(data_keys).where(data_keys.c.fan == fan)).rowcount)
            if self._keys_engine is self._engine:  # the other processes learn it as the key goes
                announce(connection, ERASED, fan_token(fan), self._origin)
        self._drop_cached(fan)
        with self._engine.begin() as connection:
            erased = {part.name: part.erase(connection, fan) for part in self._parts}
            if self._keys_engine is not self._engine:  # they listen on the transcript database
                announce(connection, ERASED, fan_token(fan), self._origin)
        self._scrub()
        tickets_part = erased.get("tickets")
        receipt = ErasureReceipt(
            data_keys=keys_deleted,
            parts={name: part.rows for name, part in erased.items()},
            active_tickets=getattr(tickets_part, "active", ()),
            desk_posts=getattr(tickets_part, "posts", ()),
            resumed=resumed,
        )
        self._erasing[fan] = (job, actor, receipt)
        self._continue_erasure(fan)
        return receipt

    def _continue_erasure(self, fan: str) -> None:
        """Deletes a batch of the erased fan's turns; queues itself again while any remain,
        then completes the job."""
        job, actor, receipt = self._erasing[fan]
        with self._engine.begin() as connection:
            removed = erase_turns_batch(connection, fan)
        if removed >= ERASE_BATCH:
            self._executor.submit(self._continue_erasure_logged, fan)
            return
        self._erasing.pop(fan, None)
        self._complete_erasure(fan, actor, receipt)

    def _complete_erasure(self, fan: str, actor: str, receipt: ErasureReceipt) -> None:
        """Step 4: every job row of the fan (a repeated request too) and the audit record, in
        one transaction, retried when another process appends to the audit log at the same
        moment. If it still fails, the job stays and a later resume completes it."""
        detail: dict[str, Any] = {"records": receipt.records, "turns": receipt.turns, "tickets": receipt.tickets}
        if receipt.resumed:  # the counts are this run's: the interrupted one deleted the rest
            detail["resumed"] = True
        for attempt in range(APPEND_ATTEMPTS):
            try:
                with self._engine.begin() as connection:
                    if connection.execute(delete(erasures).where(erasures.c.fan == fan)).rowcount:
                        self.audit_log.record("erasure_executed", actor, detail, connection=connection)
                self._scrub()  # the job row named the fan
                return
            except (IntegrityError, OperationalError):
                time.sleep(min(0.001 * (attempt + 1), 0.05))
        logger.error("an erasure's audit record could not be written; the job stays and is resumed later")

    def _continue_erasure_logged(self, fan: str) -> None:
        try:
            self._continue_erasure(fan)
        except Exception as error:  # the job row stays: the next resume finishes it
            self._erasing.pop(fan, None)
            logger.error("an erasure batch failed; it will be resumed: %s", type(error).__name__)

    def scrub_files(self) -> None:
        """After a deletion that must not linger in the files (store thread only): see `_scrub`."""
        self._scrub()

    def _scrub(self) -> None:
        """No copy of a shredded key or an erased fan's pseudonym stays in the files.

        SQLite: `secure_delete` zeroes deleted content in the database file; a truncating
        checkpoint copies the zeroed pages there and empties the WAL, which still held the
        old pages. PostgreSQL keeps dead tuples until a rewrite: the key table is marked for
        `compact_keys` (run by the retention task), and its WAL and backups are the
        operator's to expire (see the README).
        """
        for checkpointer in self._checkpointers:
            checkpointer.checkpoint(truncate=True)
        if self._keys_engine.dialect.name == "postgresql":
            self._keys_dirty = True

    async def compact_keys(self) -> bool:
        """PostgreSQL: rewrites the key table (`VACUUM FULL`, a brief exclusive lock on a small
        table) when erasures happened since the last run, so no shredded key's bytes remain
        in its data files. Returns whether it ran."""

        def work() -> bool:
            if not self._keys_dirty:
                return False
            with self._keys_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.execute(text("VACUUM FULL data_keys"))
            self._keys_dirty = False
            return True

        return await self.run(work)

    async def resume_erasures(self) -> int:
        """Finishes erasures a crash (or another process's crash) interrupted: their job row
        is still there. Returns how many it resumed; runs at open and with every retention run."""
        return await self.run(self._resume_erasures)

    def _resume_erasures(self) -> int:
        with self._engine.connect() as connection:
            jobs = connection.execute(select(erasures.c.id, erasures.c.fan, erasures.c.actor).order_by(erasures.c.id)).all()
        resumed = 0
        for job in jobs:
            if job.fan not in self._erasing:  # not already deleting batches in this process
                self._execute_erasure(job.id, job.fan, job.actor, resumed=True)
                resumed += 1
        if resumed:
            logger.warning("resumed %d interrupted erasure(s)", resumed)
        return resumed

    def _resume_erasures_logged(self) -> None:
        """Store thread, at open, in order with every later store job: nothing new about an
        erased fan can overtake the rest of their erasure."""
        try:
            self._resume_erasures()
        except Exception as error:
            logger.error("resuming interrupted erasures failed; the retention task retries: %s", type(error).__name__)

    async def settle(self) -> None:
        """Waits until queued writes and the row deletion of every erasure have finished."""
        while True:
            await self.run(lambda: None)
            if not self._erasing and not any(group.pending for group in self._groups):
                return

    async def purge(self, before: datetime, dry_run: bool = False) -> int:
        """Deletes (or, dry, counts) turns older than `before`; returns how many."""

        def work() -> int:
            with self._engine.begin() as connection:
                if dry_run:
                    return int(connection.execute(select(func.count()).select_from(turns).where(turns.c.at < before)).scalar() or 0)
                purged = int(connection.execute(delete(turns).where(turns.c.at < before)).rowcount)
                old = select(tickets.c.id).where(tickets.c.status.not_in(["open", "claimed"]), tickets.c.closed_at < before)
                expired = desk_posts.c.ticket.in_(old.scalar_subquery())
                connection.execute(  # the desk copies expire with their ticket: the running bot deletes them
                    insert(desk_removals).from_select(
                        ["desk", "channel", "message", "ticket", "queued_at"],
                        select(desk_posts.c.desk, desk_posts.c.channel, desk_posts.c.message, desk_posts.c.ticket,
                               literal(datetime.utcnow()).label("queued_at")).where(expired),
                    )
                )
                connection.execute(delete(desk_posts).where(expired))
                closed = connection.execute(
                    delete(tickets).where(tickets.c.status.not_in(["open", "claimed"]), tickets.c.closed_at < before)
                ).rowcount
            self._recent.drop_before(before)
            self.audit_log.record("retention_purge", "operator", {"turns": purged, "tickets": closed})
            return purged

        return await self.run(work)

    async def count_turns(self, fan: Optional[str] = None) -> int:
        def work() -> int:
            query = select(func.count()).select_from(turns)
            if fan is not None:
                query = query.where(turns.c.fan == fan)
            with self._engine.connect() as connection:
                return int(connection.execute(query).scalar() or 0)

        return await self.run(work)

    # Preferences -----------------------------------------------------------------------

    async def logging_enabled(self, fan: str) -> bool:
        """Whether the fan's turns are kept (`/privacy off` stops it); cached, read per message."""
        cached = self._logging.get(fan)
        if cached is not None:
            return cached

        generation = self._generation
        enabled = await self._logging_reads.submit(fan)
        if generation != self._generation:  # a change was announced meanwhile: do not keep it
            return enabled
        if len(self._logging) > DATA_KEY_CACHE:
            self._logging.clear()
        self._hold_token(fan)
        self._logging[fan] = enabled
        return enabled

    def read_logging_choices(self, fans: Iterable[str], connection: Connection) -> None:
        """Reads into the cache the `/privacy` choices of these fans not held yet, in one
        statement on `connection` (store thread only): a burst's conversation loads bring
        them along, so the transcript write after each reply needs no trip of its own."""
        missing = [fan for fan in set(fans) if fan not in self._logging]
        if not missing:
            return
        generation = self._generation
        query = select(preferences.c.fan, preferences.c.logging_enabled).where(preferences.c.fan.in_(missing))
        stored = {fan: bool(enabled) for fan, enabled in connection.execute(query)}
        if generation != self._generation:  # a change was announced meanwhile: do not keep it
            return
        if len(self._logging) + len(missing) > DATA_KEY_CACHE:
            self._logging.clear()
        for fan in missing:
            self._hold_token(fan)
            self._logging[fan] = stored.get(fan, True)

    def _read_logging(self, fans: list[str]) -> list[bool]:
        """Store thread: the choices of the fans asked about meanwhile, in one statement."""
        with self._engine.connect() as connection:
            query = select(preferences.c.fan, preferences.c.logging_enabled).where(preferences.c.fan.in_(set(fans)))
            stored = {fan: bool(enabled) for fan, enabled in connection.execute(query)}
        return [stored.get(fan, True) for fan in fans]

    async def set_logging(self, fan: str, enabled: bool) -> None:
        def work() -> None:
            with self._engine.begin() as connection:
                _store_logging(connection, fan, enabled)
                announce(connection, PREFERENCE, fan_token(fan), self._origin)
            self._hold_token(fan)
            self._logging[fan] = enabled

        await self.run(work)

    async def audit(self, action: str, actor: str, detail: dict[str, Any]) -> str:
        """Appends to the audit log (counts and kinds only, never content or a fan's pseudonym)."""
        return await self.run(lambda: self.audit_log.record(action, actor, detail))

    # Keys ------------------------------------------------------------------------------

    async def rotate_keys(self) -> int:
        """Rewraps every data key under the first master key; transcript rows stay untouched."""

        def work() -> int:
            rotated = 0
            with self._keys_engine.begin() as connection:
                for fan, wrapped in connection.execute(select(data_keys.c.fan, data_keys.c.wrapped)).all():
                    connection.execute(
                        update(data_keys).where(data_keys.c.fan == fan).values(wrapped=self._master.rewrap(wrapped))
                    )
                    rotated += 1
                if self._keys_engine is self._engine:
                    announce(connection, KEYS, EVERY_FAN, self._origin)
            if self._keys_engine is not self._engine:
                with self._engine.begin() as connection:
                    announce(connection, KEYS, EVERY_FAN, self._origin)
            self.audit_log.record("key_rotation", "operator", {"data_keys": rotated})
            return rotated

        return await self.run(work)

    def on_close(self, callback: Optional[Callable[[], None]]) -> None:
        """Runs `callback` once the store is closed (releases what was held with it)."""
        if callback is not None:
            self._on_close.append(callback)

    async def aclose(self) -> None:
        await self.settle()
        self._closed = True
        if self._spool is not None:
            self._spool.close()
        self._recent.clear()
        for checkpointer in self._checkpointers:
            checkpointer.stop()
        self._executor.shutdown(wait=True)
        self._engine.dispose()
        if self._keys_engine is not self._engine:
            self._keys_engine.dispose()
        for callback in self._on_close:
            callback()


def _settle_all(outcomes: list[tuple[asyncio.Future[Any], Any]]) -> None:
    for settled, result in outcomes:
        _settle(settled, result, None)


def _settle(settled: asyncio.Future[Any], result: Any, error: Optional[BaseException]) -> None:
    if settled.cancelled():
        return
    if error is None:
        settled.set_result(result)
    else:
        settled.set_exception(error)


class StoreMissingError(StoreError):
    """A deployment or operator command found no store where the config points."""


def _missing(url: str) -> StoreMissingError:
    return StoreMissingError(
        f"no store at {_describe(url)} (a missing or empty database): restore it from a backup, fix [store] url, "
        "or create a new store deliberately with `bot db init`"
    )


def _require_existing_file(url: str) -> None:
    database = _sqlite_path(url)
    if database is not None and not database.is_file():
        raise _missing(url)


def _require_schema(engine: Engine, role: str, url: str) -> None:
    try:
        with engine.connect() as connection:
            present = inspect(connection).has_table(f"alembic_version_{role}")
    except Exception as error:
        raise StoreError(f"cannot open the store ({_describe(url)}): {type(error).__name__}: {_first_line(error)}") from None
    if not present:
        raise _missing(url)


def store_exists(url: str, keys_url: Optional[str] = None) -> bool:
    """Whether a store (its schema) is already at `url`; creates nothing."""
    for each in {url, keys_url or url}:
        try:
            _require_existing_file(each)
            engine = open_engine(each)
        except StoreError:
            return False
        try:
            _require_schema(engine, "transcripts" if each == url else "keys", each)
        except StoreError:
            return False
        finally:
            engine.dispose()
    return True


def _sqlite_path(url: str) -> Optional[Path]:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


class KeyMismatchError(RuntimeError):
    """BOT_PSEUDONYM_KEY is not the key the store was created with; one line for the operator."""


PSEUDONYM_FINGERPRINT = "pseudonym_key_fingerprint"


def pseudonym_key_fingerprint(pseudonym_key: bytes) -> str:
    """HMAC-SHA256 of a fixed label under the key: identifies the key, reveals nothing of it."""
    return hmac.new(pseudonym_key, b"fan-assistant pseudonym key fingerprint v1", hashlib.sha256).hexdigest()


def _check_master_keys(keys_engine: Engine, master: MasterKeys) -> None:
    """Raises `MasterKeyError` unless the master keys open a stored data key (if any).
    Reads only, and only a table that exists: it runs before any migration."""
    try:
        with keys_engine.connect() as connection:
            if not inspect(connection).has_table("data_keys"):
                return
            sample = connection.execute(select(data_keys.c.wrapped).limit(1)).scalar()
    except Exception as error:
        raise StoreError(f"cannot open the store ({_describe(str(keys_engine.url))}): {type(error).__name__}: {_first_line(error)}") from None
    if sample is not None:
        master.unwrap(sample)


def _check_pseudonym_key(engine: Engine, pseudonym_key: bytes) -> None:
    """Raises `KeyMismatchError` when the store records another pseudonym key's fingerprint.
    A store from before migration 0003 has none yet: it records this key's on opening."""
    try:
        with engine.connect() as connection:
            if not inspect(connection).has_table("store_meta"):
                return
            stored = connection.execute(select(store_meta.c.value).where(store_meta.c.name == PSEUDONYM_FINGERPRINT)).scalar()
    except Exception as error:
        raise StoreError(f"cannot open the store ({_describe(str(engine.url))}): {type(error).__name__}: {_first_line(error)}") from None
    if stored is not None and not hmac.compare_digest(stored, pseudonym_key_fingerprint(pseudonym_key)):
        raise KeyMismatchError(
            "BOT_PSEUDONYM_KEY is not the key this store was created with (fingerprints differ): "
            "every fan would look new and erasures would miss them; use the store's key"
        )


def _record_pseudonym_key(engine: Engine, keys_engine: Engine, pseudonym_key: bytes, adopt: bool) -> bool:
    """Records the key's fingerprint in a store that has none: a new or empty store at once;
    a store from before fingerprints that already holds data only when `adopt` (`bot db
    upgrade`, the operator's deliberate step), since nothing stored can tell a right key from
    a wrong one and the first key to open it would otherwise be taken for the store's.
    Returns whether it recorded one; raises `KeyMismatchError` when it may not."""
    with engine.begin() as connection:
        stored = connection.execute(select(store_meta.c.value).where(store_meta.c.name == PSEUDONYM_FINGERPRINT)).scalar()
        if stored is not None:
            return False
        with keys_engine.connect() as keys_connection:
            holds_data = keys_connection.execute(select(data_keys.c.fan).limit(1)).first() is not None
        if holds_data and not adopt:
            raise KeyMismatchError(
                "this store predates pseudonym key fingerprints and already holds data: run `bot db upgrade` once "
                "with the store's own BOT_PSEUDONYM_KEY to record it (a wrong key would make every fan look new)"
            )
        connection.execute(insert(store_meta).values(name=PSEUDONYM_FINGERPRINT, value=pseudonym_key_fingerprint(pseudonym_key)))
        return True


def _identity(path: str) -> Optional[tuple[int, int]]:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return (status.st_dev, status.st_ino)


def _sqlite_file(engine: Engine) -> Optional[str]:
    return engine.url.database if engine.url.get_backend_name() == "sqlite" else None


def _describe(url: str) -> str:
    parsed = make_url(url)
    return f"{parsed.get_backend_name()} database {parsed.database or ''}".strip()


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else ""

