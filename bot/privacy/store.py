"""The transcript store: minimized turns, encrypted per fan, erasable by crypto-shredding.

SQLAlchemy Core in its 2.0 style, run on one worker thread per store so SQLite sees a
single writer and the event loop never blocks on I/O. The store owns the thread and the
caches (`bot.privacy.caches`) and delegates; the parts live beside it: the database engine
and group commit (`bot.privacy.database`), the key checks (`bot.privacy.keys`), turns and
recent turns (`bot.privacy.turns`), writing turns (`bot.privacy.turn_writes`), erasure
(`bot.privacy.erasure`), changes announced by other processes (`bot.privacy.changes`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, Optional, TypeVar

from sqlalchemy import delete, func, select, text
from sqlalchemy.engine import Connection, Engine

from bot.privacy import events, migrate
from bot.privacy.audit import AuditLog
from bot.privacy.caches import FanCaches
from bot.privacy.changes import Changes
from bot.privacy.crypto import MasterKeys
from bot.privacy.database import (
    OUTAGES,
    GroupCommit,
    StoreError,
    StoreMissingError,
    StoreUnavailable,
    describe,
    file_identity,
    first_line,
    open_engine,
    require_existing_file,
    require_schema,
    sqlite_file,
    store_exists,
)
from bot.privacy.erasure import Erasure
from bot.privacy.fan_data import ERASE_BATCH, ErasureReceipt, Expiring, FanDataPart, everything, export_parts, holds_rows
from bot.privacy.keys import (
    PSEUDONYM_FINGERPRINT,
    KeyMismatchError,
    check_master_keys,
    check_pseudonym_key,
    key_versions,
    load_keys,
    pseudonym_key_fingerprint,
    record_pseudonym_key,
    rewrap_keys,
)
from bot.privacy.notify import EVERY_FAN, KEYS, PREFERENCE, announce, fan_token
from bot.privacy.preferences import read_choices, set_logging
from bot.privacy.schema import (
    store_meta,
    turns,
)
from bot.privacy.spool import Spool
from bot.privacy.turn_writes import TurnWrites
from bot.privacy.turns import RecentTurns, Turn, first_disclosure, read_recent

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
#: The health probe's write (`check_health`); `ON CONFLICT … DO UPDATE` is the same in SQLite
#: (3.24+) and PostgreSQL (9.5+).
_PROBE = text(f"INSERT INTO {store_meta.name} (name, value) VALUES ('health_probe', :value) ON CONFLICT (name) DO UPDATE SET value = excluded.value")


#: Fans released at once from which a SQLite store's connection is reopened (`release_idle`).
RELEASE_RECONNECT_FANS = 100


class TranscriptStore:
    """The one entry to the fans' stored data for the rest of the bot. It owns the store thread
    and the caches (`FanCaches`) that turn writes, erasure and change tracking share, and
    keeps its public methods as thin delegations so callers never see those parts."""

    def __init__(
        self,
        engine: Engine,
        keys_engine: Engine,
        master: MasterKeys,
        parts: Optional[Sequence[FanDataPart]] = None,
        spool: Optional[Spool] = None,
    ) -> None:
        self._engine = engine
        self._keys_engine = keys_engine
        self._master = master
        self._parts: tuple[FanDataPart, ...] = tuple(parts) if parts is not None else everything()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
        self._caches = FanCaches()
        self._expired_seen = 0  # `FanCaches.expired` at the last `release_idle`
        self._expired_since_reopen = 0
        self._changes = Changes(self._caches, self._on_store_thread)
        self._closed = False
        self._files = {path: file_identity(path) for path in (sqlite_file(engine), sqlite_file(keys_engine)) if path}
        self.problem: Optional[str] = None  # set by `check_health` while the store is unusable
        #: The SQLite file was removed or replaced under the running bot: nothing written now
        #: would survive, so the bot says so to every fan until it is restarted (sticky).
        self.broken = False
        self._groups: list[GroupCommit[Any, Any]] = []
        self.audit_log = AuditLog(engine)
        #: Epoch seconds of the events the store writes itself (exports, `/privacy`, purges,
        #: erasures): the wall clock, or `bot replay`'s clock during a replay, so one run keeps one clock.
        self.clock: Callable[[], float] = time.time
        self._turn_writes = TurnWrites(
            engine, keys_engine, self._caches, self._changes, spool, self._key_version, self.recent_history, self.group_commit
        )
        self._erasure = Erasure(
            engine, keys_engine, self._parts, self._caches, self._changes.origin, self.audit_log, self._executor,
            self._turn_writes.drain_spool, lambda: self.clock(),
        )
        self._logging_reads: GroupCommit[str, bool] = self.group_commit(self._read_logging, same_tick=True)
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
        store._executor.submit(store._erasure.resume_logged)
        return store

    @property
    def engine(self) -> Engine:
        return self._engine

    async def run(self, work: Callable[[], T]) -> T:
        """Runs database work on the store's thread, in order with every other store call.

        Raises `StoreUnavailable` when the database does not answer, so callers can tell the
        fan honestly instead of failing silently."""
        loop = self._changes.loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, work)
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
        (see `RecentTurns`), dropping fans idle for `idle_seconds`, as every other cache of
        a fan is (`FanCaches.expire`). Call before use."""
        self._caches.recent = RecentTurns(turns, idle_seconds)
        self._caches.idle_seconds = idle_seconds

    async def release_idle(self) -> int:
        """Drops what is held in memory of fans idle past the conversation idle limit (every
        process, periodically: each holds its own caches); returns how many fans went since
        the last call (here, or as the caches were used).

        After a burst (`RELEASE_RECONNECT_FANS` or more at once) a SQLite store's connection is
        closed too, and opened afresh by the next use (the pragmas: about a millisecond): it
        held a page cache filled by the burst, and up to 128 prepared statements (Python's
        sqlite3 cache), since SQLAlchemy renders a statement per length of an IN list or a
        multi-row insert. Some 2.5 MB after 5,000 fans (`bench/soak.py`)."""

        def work() -> int:
            self._caches.expire()
            dropped = self._caches.expired - self._expired_seen  # here and on access since the last call
            self._expired_seen = self._caches.expired
            self._expired_since_reopen += dropped
            if self._expired_since_reopen >= RELEASE_RECONNECT_FANS:  # a burst, gone in one go or a few at a time
                self._expired_since_reopen = 0
                for engine in {self._engine, self._keys_engine}:
                    if engine.dialect.name == "sqlite":
                        engine.dispose()
            return dropped

        return await self.run(work)

    def forget_recent(self, fan: str) -> None:
        """Drops the fan's recent turns held in memory, after a deletion outside this class
        (store thread only): the next handoff packet reads the store instead."""
        self._caches.recent.drop(fan)

    async def holds_recent(self, fan: str) -> bool:
        """Whether any of the fan's turns are held in memory (for tests and checks)."""
        return await self.run(lambda: fan in self._caches.recent)

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
                # One upsert: an update-then-insert let two workers starting on a fresh store
                # both insert, and the loser reported the store unusable (a duplicate key).
                connection.execute(_PROBE, {"value": datetime.utcnow().isoformat()})
            self._turn_writes.drain_spool()  # back: what waited in the spool goes in now
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
        cached = self._caches.keys.get(fan)
        if cached is not None:
            self._caches.keys.move_to_end(fan)
            self._caches.touch(fan)
            return cached
        return self._read_keys([fan], create).get(fan)

    def hold_keys(self, fans: Iterable[str], create: bool) -> None:
        """Reads (and with `create`, makes) the data keys of many fans into the cache in one
        transaction (store thread only): a burst of new fans costs one insert, not one
        transaction each. `data_key` then finds them held."""
        missing = [fan for fan in dict.fromkeys(fans) if fan not in self._caches.keys]
        if missing:
            self._read_keys(missing, create)

    def _read_keys(self, fans: list[str], create: bool) -> dict[str, tuple[bytes, datetime]]:
        """Store thread: the keys read (made) in one transaction, cached unless a change was
        announced meanwhile."""
        generation = self._caches.generation
        with self._keys_engine.begin() as connection:
            held, created = load_keys(connection, self._master, fans, create)
        for fan in created:  # nothing of the fan can be stored yet (turns need the key): an exact entry
            self._caches.recent.start(fan)
        if generation == self._caches.generation:  # no change announced meanwhile: safe to keep
            self._caches.keep_keys(held)
        return held

    # Changes in other processes (bot.privacy.changes) ----------------------------------

    def when_erased_elsewhere(self, callback: Callable[[str], Awaitable[None]]) -> None:
        """`callback(fan)` runs on the event loop when another process announces the erasure
        of a fan this one holds something of (to drop the rest: the model tracker)."""
        self._changes.when_erased_elsewhere(callback)

    @property
    def changes_seen(self) -> int:
        """How many changes announced by other processes (or reconnections) reached this one."""
        return self._caches.generation

    def erased_since(self, fan: str) -> Optional[float]:
        """When the fan was last erased (time.monotonic), here or announced by another process,
        if within the last hour (`Changes.erased_since`); any thread."""
        return self._changes.erased_since(fan)

    def note_erased(self, fan: str, at: float) -> None:
        """This process erased the fan on a request that reached it at `at` (time.monotonic)."""
        self._changes.note_erased(fan, at)

    def holds_key(self, fan: str) -> bool:
        """Whether the fan's data key is cached here (for tests and checks)."""
        return fan in self._caches.keys

    def changed(self, kind: str, token: str, origin: str) -> None:
        """Another process announced a change (listener thread): writes queued before it are
        refused or re-checked from now on, and the caches are dropped on the store thread."""
        self._changes.changed(kind, token, origin)

    def drop_all_cached(self) -> None:
        """Notices may have been missed (the listener (re)connected): trust nothing held."""
        self._changes.drop_all_cached()

    def _on_store_thread(self, work: Callable[..., None], *args: Any) -> None:
        if self._closed:
            return
        try:
            self._executor.submit(work, *args)
        except RuntimeError:  # shut down meanwhile: nothing is held any more
            pass

    # Turns (bot.privacy.turn_writes) ----------------------------------------------------

    @property
    def spooled(self) -> int:
        """Batches waiting in the spool for the database to come back."""
        return self._turn_writes.spooled

    def submit(self, *batch: Turn, check_logging: bool = False) -> asyncio.Future[None]:
        """Queues the write at once, without waiting for it.

        Writes queued while the store thread is busy are committed together (group
        commit). Everything runs on one thread in submission order, so a write queued
        before an erasure is erased with the rest; the per-fan lock in `Bot` keeps a fan's
        own later writes behind their erasure. `check_logging`: the fan's `/privacy`
        choice could not be read when queued (the database was down): it is checked
        when the write happens.
        """
        return self._turn_writes.submit(batch, check_logging)

    async def append(self, *batch: Turn) -> None:
        if batch:
            await self.submit(*batch)

    # What is stored about a fan -------------------------------------------------------------

    async def export(self, fan: str, actor: str = "fan") -> dict[str, Any]:
        """Everything stored about the fan, decrypted (the text was redacted before storage):
        one section per part of `bot.privacy.fan_data`, the same parts erasure deletes."""

        def work() -> dict[str, Any]:
            self._turn_writes.drain_spool()  # the export shows what is spooled too
            key = self.data_key(fan, create=False)
            with self._engine.connect() as connection:
                sections = export_parts(connection, self._parts, fan, key)
            self.audit_log.record("export_served", actor, {name: len(value) for name, value in sections.items() if isinstance(value, list)})
            events.record(self._engine, events.EXPORT, self.clock(), reason=actor)
            return {"pseudonym": fan, "encryption_key": "held" if key is not None else "none", **sections}

        return await self.run(work)

    async def holds_data(self, fan: str) -> bool:
        """Whether anything at all is stored about the fan (a data key, or a row of any part)."""

        def work() -> bool:
            if self.data_key(fan, create=False) is not None:
                return True
            with self._engine.connect() as connection:
                return holds_rows(connection, self._parts, fan)

        return await self.run(work)

    def read_recent_turns(self, fan: str, limit: int) -> list[dict[str, Any]]:
        """The fan's last turns, oldest first, for a moderator's handoff packet (store
        thread only; not audited as an export: the fan asked for the person who reads it)."""
        with self._engine.connect() as connection:
            return read_recent(connection, fan, limit, self.data_key(fan, create=False))

    def read_first_disclosure(self, fan: str) -> Optional[datetime]:
        """When the fan was first told, in what is still stored, that they talk to an AI
        (store thread only)."""
        with self._engine.connect() as connection:
            return first_disclosure(connection, fan)

    def recent_history(
        self, fan: str, limit: int, connection: Optional[Connection] = None
    ) -> tuple[list[dict[str, Any]], Optional[datetime]]:
        """`read_recent_turns` and `read_first_disclosure` in one, from memory when the fan's
        recent turns are held there (store thread only); a read fills the memory.
        `connection`: one open on the transcript database, to read with."""
        cached = self._caches.recent.get(fan, limit)
        if cached is not None:
            return cached
        key = self.data_key(fan, create=False)
        if connection is None:
            with self._engine.connect() as own:
                recent, disclosed = read_recent(own, fan, limit, key), first_disclosure(own, fan)
        else:
            recent, disclosed = read_recent(connection, fan, limit, key), first_disclosure(connection, fan)
        if limit >= self._caches.recent.limit and fan not in self._erasure.erasing:
            self._caches.recent.start(fan, recent, disclosed)
        return recent, disclosed

    # Erasure (bot.privacy.erasure), here and elsewhere ---------------------------------------

    async def erased_elsewhere(self, fan: str) -> bool:
        """Whether another process (`bot forget`) erased the fan since this one cached their
        data key (the key row is gone or another version): then the cache is dropped here and
        True returned, so the caller drops its own state of the fan too and nothing is written
        under the shredded key. One primary key lookup, only for fans whose key is cached: the
        safety net under `bot.privacy.notify` (SQLite, or a notice missed)."""

        if fan not in self._caches.keys:  # nothing cached, nothing stale: no hop to the store thread
            return False

        def work() -> bool:
            cached = self._caches.keys.get(fan)
            if cached is None or fan in self._erasure.erasing:
                return False
            with self._keys_engine.connect() as connection:
                version = key_versions(connection, [fan]).get(fan)
            if version == cached[1]:
                return False
            self._caches.drop(fan)  # gone, or erased and made again: another version
            return True

        return await self.run(work)

    def forget_erased_elsewhere(self, fans: Iterable[str], connection: Optional[Connection] = None) -> None:
        """Drops what is held in memory of fans whose data key is gone from the database,
        i.e. erased by another process (`bot forget`) while this one runs (store thread only).

        `connection`, one open on the transcript database, is used when the keys live there too.
        """
        held = [fan for fan in set(fans) if fan in self._caches.keys or fan in self._caches.recent]
        if not held:
            return
        if connection is not None and self._keys_engine is self._engine:
            present = set(key_versions(connection, held))
        else:
            with self._keys_engine.connect() as keys_connection:
                present = set(key_versions(keys_connection, held))
        for fan in held:
            if fan not in present:
                self._caches.keys.pop(fan, None)
                self._caches.recent.drop(fan)

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

        return await self.run(lambda: self._erasure.erase(fan, actor))

    def scrub_files(self) -> None:
        """After a deletion that must not linger in the files (store thread only): see `Erasure.scrub`."""
        self._erasure.scrub()

    async def compact_keys(self) -> bool:
        """PostgreSQL: rewrites the key table (`VACUUM FULL`, a brief exclusive lock on a small
        table) when erasures happened since the last run, so no shredded key's bytes remain
        in its data files. Returns whether it ran."""

        return await self.run(self._erasure.compact_keys)

    async def resume_erasures(self) -> int:
        """Finishes erasures a crash (or another process's crash) interrupted: their job row
        is still there. Returns how many it resumed; runs at open and with every retention run."""
        return await self.run(self._erasure.resume)

    async def settle(self) -> None:
        """Waits until queued writes and the row deletion of every erasure have finished."""
        while True:
            await self.run(lambda: None)
            if not self._erasure.erasing and not any(group.pending for group in self._groups):
                return

    # Retention ---------------------------------------------------------------------------

    async def purge(self, before: datetime, dry_run: bool = False) -> int:
        """Deletes (or, dry, counts) turns older than `before`; returns how many."""
        if dry_run:

            def count() -> int:
                with self._engine.connect() as connection:
                    return int(connection.execute(select(func.count()).select_from(turns).where(turns.c.at < before)).scalar() or 0)

            return await self.run(count)
        return (await self.purge_itemised(before))["turns"]

    async def purge_itemised(self, before: datetime) -> dict[str, int]:
        """Deletes turns older than `before`, and in the same transaction the events and every
        part that expires by age (`Expiring`); returns what went, per kind (`bot purge` prints it,
        in the same order as `retention.would_purge`)."""

        def work() -> dict[str, int]:
            with self._engine.begin() as connection:
                purged = int(connection.execute(delete(turns).where(turns.c.at < before)).rowcount)
                gone = events.purge(connection, before, purged, self.clock())  # events follow the turns' retention
                expired = {part.name: part.purge(connection, before) for part in self._parts if isinstance(part, Expiring)}
            self._caches.recent.drop_before(before)
            self.audit_log.record("retention_purge", "operator", {"turns": purged, **expired})
            return {"turns": purged, "events": gone, **expired}

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
        cached = self._caches.logging.get(fan)
        if cached is not None:
            return cached
        return await self._logging_reads.submit(fan)  # read and kept by `_read_logging`

    def read_logging_choices(self, fans: Iterable[str], connection: Connection) -> None:
        """Reads into the cache the `/privacy` choices of these fans not held yet, in one
        statement on `connection` (store thread only): a burst's conversation loads bring
        them along, so the transcript write after each reply needs no trip of its own."""
        missing = [fan for fan in set(fans) if fan not in self._caches.logging]
        if not missing:
            return
        generation = self._caches.generation
        stored = read_choices(connection, missing)
        if generation != self._caches.generation:  # a change was announced meanwhile: do not keep it
            return
        for fan in missing:
            self._caches.hold_token(fan)
        self._caches.logging.keep(stored)

    def _read_logging(self, fans: list[str]) -> list[bool]:
        """Store thread: the choices of the fans asked about meanwhile, in one statement, kept
        in the cache here (the store thread alone tracks when each fan was last used) unless
        a change was announced meanwhile."""
        generation = self._caches.generation
        with self._engine.connect() as connection:
            stored = read_choices(connection, fans)
        if generation == self._caches.generation:
            for fan in stored:
                self._caches.hold_token(fan)
            self._caches.logging.keep(stored)
        return [stored[fan] for fan in fans]

    async def set_logging(self, fan: str, enabled: bool) -> None:
        def work() -> None:
            with self._engine.begin() as connection:
                set_logging(connection, fan, enabled)
                events.add(connection, events.PRIVACY_ON if enabled else events.PRIVACY_OFF, self.clock())  # no fan
                announce(connection, PREFERENCE, fan_token(fan), self._changes.origin)
            self._caches.hold_token(fan)
            self._caches.logging.keep({fan: enabled})

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
                    announce(connection, KEYS, EVERY_FAN, self._changes.origin)
            if self._keys_engine is not self._engine:
                with self._engine.begin() as connection:
                    announce(connection, KEYS, EVERY_FAN, self._changes.origin)
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
        self._turn_writes.close()
        self._caches.recent.clear()
        self._erasure.stop()
        self._executor.shutdown(wait=True)
        self._engine.dispose()
        if self._keys_engine is not self._engine:
            self._keys_engine.dispose()
        for callback in self._on_close:
            callback()
