"""The transcript store: minimized turns, encrypted per fan, erasable by crypto-shredding.

SQLAlchemy Core in its 2.0 style, run on one worker thread per store so SQLite sees a
single writer and the event loop never blocks on I/O. The parts live beside it: the
database engine and group commit (`bot.privacy.database`), the key checks
(`bot.privacy.keys`), turns and recent turns (`bot.privacy.turns`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, Optional, TypeVar

from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from bot.privacy import crypto, events, migrate
from bot.privacy.audit import APPEND_ATTEMPTS, AuditLog
from bot.privacy.crypto import MasterKeys
from bot.privacy.database import (
    OUTAGES,
    GroupCommit,
    StoreError,
    StoreMissingError,
    StoreUnavailable,
    WalCheckpointer,
    describe,
    file_identity,
    first_line,
    open_engine,
    require_existing_file,
    require_schema,
    sqlite_file,
    store_exists,
)
from bot.privacy.fan_data import ERASE_BATCH, ErasureReceipt, Expiring, FanDataPart, erase_turns_batch, everything, readable
from bot.privacy.keys import (
    DATA_KEY_CACHE,
    PSEUDONYM_FINGERPRINT,
    KeyMismatchError,
    check_master_keys,
    check_pseudonym_key,
    delete_key,
    key_versions,
    load_keys,
    pseudonym_key_fingerprint,
    record_pseudonym_key,
    rewrap_keys,
)
from bot.privacy.notify import ERASED, EVERY_FAN, KEYS, PREFERENCE, announce, fan_token
from bot.privacy.preferences import LoggingChoices, read_choices, set_logging
from bot.privacy.schema import (
    erasures,
    store_meta,
    turns,
)
from bot.privacy.spool import Spool
from bot.privacy.turns import QueuedTurns, RecentTurns, Turn

#: Names imported from here by callers, from before the store's parts had modules of their own.
__all__ = [
    "ERASE_BATCH", "OUTAGES", "PSEUDONYM_FINGERPRINT", "ErasureReceipt", "GroupCommit", "KeyMismatchError", "RecentTurns",
    "StoreError", "StoreMissingError", "StoreUnavailable", "TranscriptStore", "Turn", "open_engine",
    "pseudonym_key_fingerprint", "store_exists",
]

T = TypeVar("T")
I = TypeVar("I")  # noqa: E741 - GroupCommit[I, R]: item in, result out
R = TypeVar("R")
logger = logging.getLogger(__name__)


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
        self._logging = LoggingChoices()
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
            WalCheckpointer(str(database))
            for database in {sqlite_file(engine), sqlite_file(keys_engine)}
            if database is not None
        ]
        self._files = {path: file_identity(path) for path in (sqlite_file(engine), sqlite_file(keys_engine)) if path}
        self.problem: Optional[str] = None  # set by `check_health` while the store is unusable
        #: The SQLite file was removed or replaced under the running bot: nothing written now
        #: would survive, so the bot says so to every fan until it is restarted (sticky).
        self.broken = False
        self._groups: list[GroupCommit[Any, Any]] = []
        self._turn_writes: GroupCommit[QueuedTurns, None] = self.group_commit(self._write_groups)
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
        empty store: a vanished data folder must not silently lose the fans' data and the
        audit chain (`bot db init` creates a store deliberately). Erasures a crash
        interrupted are resumed once the store runs.
        """
        if not create:
            for each in {url, keys_url or url}:
                require_existing_file(each)
        try:
            engine = open_engine(url)
            keys_engine = engine if not keys_url or keys_url == url else open_engine(keys_url)
        except StoreError:
            raise
        except Exception as error:  # driver errors carry passwords in URLs: name the database only
            raise StoreError(f"cannot open the store ({describe(url)}): {type(error).__name__}: {first_line(error)}") from None
        if not create:
            require_schema(engine, "transcripts", url)
            require_schema(keys_engine, "keys", keys_url or url)
        check_master_keys(keys_engine, master)  # before any migration, thread or write
        if pseudonym_key is not None:
            check_pseudonym_key(engine, pseudonym_key)
        try:
            migrate.upgrade(engine, "transcripts")
            migrate.upgrade(keys_engine, "keys")
            if pseudonym_key is not None:
                record_pseudonym_key(engine, keys_engine, pseudonym_key, adopt_pseudonym_key)
        except KeyMismatchError:
            raise
        except Exception as error:
            raise StoreError(f"cannot open the store ({describe(url)}): {type(error).__name__}: {first_line(error)}") from None
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
                current = file_identity(path)
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
            self.problem = f"a test write failed: {type(error).__name__}: {first_line(error)}"[:300]
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
        return self._read_keys([fan], create).get(fan)

    def hold_keys(self, fans: Iterable[str], create: bool) -> None:
        """Reads (and with `create`, makes) the data keys of many fans into the cache in one
        transaction (store thread only): a burst of new fans costs one insert, not one
        transaction each. `data_key` then finds them held."""
        missing = [fan for fan in dict.fromkeys(fans) if fan not in self._data_keys]
        if missing:
            self._read_keys(missing, create)

    def _read_keys(self, fans: list[str], create: bool) -> dict[str, tuple[bytes, datetime]]:
        """Store thread: the keys read (made) in one transaction, cached unless a change was
        announced meanwhile."""
        generation = self._generation
        with self._keys_engine.begin() as connection:
            held, created = load_keys(connection, self._master, fans, create)
        for fan in created:  # nothing of the fan can be stored yet (turns need the key): an exact entry
            self._recent.start(fan)
        if generation == self._generation:  # no change announced meanwhile: safe to keep
            for fan, key in held.items():
                self._hold_token(fan)
                self._data_keys[fan] = key
            while len(self._data_keys) > DATA_KEY_CACHE:
                self._data_keys.popitem(last=False)
        return held

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
            self._logging.drop(fan)
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
            held = [*list(self._data_keys), *self._logging.fans(), *self._recent.fans()]
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
        if self._keys_engine is self._engine:
            present = key_versions(connection, list(versions), for_share=connection.dialect.name == "postgresql")
        else:
            with self._keys_engine.connect() as keys_connection:
                present = key_versions(keys_connection, list(versions))
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

    def _write_groups(self, groups: list[QueuedTurns]) -> list[None]:
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
            allowed = {fan for fan, enabled in read_choices(connection, (turn.fan for turn in batch)).items() if enabled}
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
            return self._turn_writes.submit(QueuedTurns(batch, check_logging, self._generation, versions))

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
            events.record(self._engine, events.EXPORT, reason=actor)
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
                version = key_versions(connection, [fan]).get(fan)
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
        if connection is not None and self._keys_engine is self._engine:
            present = set(key_versions(connection, held))
        else:
            with self._keys_engine.connect() as keys_connection:
                present = set(key_versions(keys_connection, held))
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
        self._logging.drop(fan)
        self._recent.drop(fan)

    def _execute_erasure(self, job: int, fan: str, actor: str, resumed: bool = False) -> ErasureReceipt:
        """Store thread: steps 2 and 3 of `erase`, then the batches and step 4."""
        with self._keys_engine.begin() as connection:
            keys_deleted = delete_key(connection, fan)
            if self._keys_engine is self._engine:  # the other processes learn it as the key goes
                announce(connection, ERASED, fan_token(fan), self._origin)
        self._drop_cached(fan)
        with self._engine.begin() as connection:
            erased = {part.name: part.erase(connection, fan) for part in self._parts}
            if self._keys_engine is not self._engine:  # they listen on the transcript database
                announce(connection, ERASED, fan_token(fan), self._origin)
        self._scrub()
        receipt = ErasureReceipt.of(keys_deleted, erased, resumed)
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
        detail: dict[str, Any] = receipt.counts()
        if receipt.resumed:  # the counts are this run's: the interrupted one deleted the rest
            detail["resumed"] = True
        for attempt in range(APPEND_ATTEMPTS):
            try:
                with self._engine.begin() as connection:
                    requested = connection.execute(select(func.min(erasures.c.requested_at)).where(erasures.c.fan == fan)).scalar()
                    if connection.execute(delete(erasures).where(erasures.c.fan == fan)).rowcount:
                        self.audit_log.record("erasure_executed", actor, detail, connection=connection)
                        events.erased(connection, requested, actor)  # no fan: only the kind and the seconds it took
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
        """Deletes (or, dry, counts) turns older than `before`; returns how many. The parts that
        expire by age too (`Expiring`) purge theirs in the same transaction."""

        def work() -> int:
            with self._engine.begin() as connection:
                if dry_run:
                    return int(connection.execute(select(func.count()).select_from(turns).where(turns.c.at < before)).scalar() or 0)
                purged = int(connection.execute(delete(turns).where(turns.c.at < before)).rowcount)
                events.purge(connection, before, purged, events.now())  # events follow the turns' retention
                expired = {part.name: part.purge(connection, before) for part in self._parts if isinstance(part, Expiring)}
            self._recent.drop_before(before)
            self.audit_log.record("retention_purge", "operator", {"turns": purged, **expired})
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
        self._hold_token(fan)
        self._logging.keep({fan: enabled})
        return enabled

    def read_logging_choices(self, fans: Iterable[str], connection: Connection) -> None:
        """Reads into the cache the `/privacy` choices of these fans not held yet, in one
        statement on `connection` (store thread only): a burst's conversation loads bring
        them along, so the transcript write after each reply needs no trip of its own."""
        missing = [fan for fan in set(fans) if fan not in self._logging]
        if not missing:
            return
        generation = self._generation
        stored = read_choices(connection, missing)
        if generation != self._generation:  # a change was announced meanwhile: do not keep it
            return
        for fan in missing:
            self._hold_token(fan)
        self._logging.keep(stored)

    def _read_logging(self, fans: list[str]) -> list[bool]:
        """Store thread: the choices of the fans asked about meanwhile, in one statement."""
        with self._engine.connect() as connection:
            stored = read_choices(connection, fans)
        return [stored[fan] for fan in fans]

    async def set_logging(self, fan: str, enabled: bool) -> None:
        def work() -> None:
            with self._engine.begin() as connection:
                set_logging(connection, fan, enabled)
                events.add(connection, events.PRIVACY_ON if enabled else events.PRIVACY_OFF, events.now())  # no fan
                announce(connection, PREFERENCE, fan_token(fan), self._origin)
            self._hold_token(fan)
            self._logging.keep({fan: enabled})

        await self.run(work)

    async def audit(self, action: str, actor: str, detail: dict[str, Any]) -> str:
        """Appends to the audit log (counts and kinds only, never content or a fan's pseudonym)."""
        return await self.run(lambda: self.audit_log.record(action, actor, detail))

    # Keys ------------------------------------------------------------------------------

    async def rotate_keys(self) -> int:
        """Rewraps every data key under the first master key; transcript rows stay untouched."""

        def work() -> int:
            with self._keys_engine.begin() as connection:
                rotated = rewrap_keys(connection, self._master)
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
