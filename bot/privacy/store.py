"""The transcript store: minimized turns, encrypted per fan, erasable by crypto-shredding.

SQLAlchemy 1.4 Core in its 2.0 style, run on one worker thread per store so SQLite sees a
single writer and the event loop never blocks on I/O.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar

from sqlalchemy import create_engine, delete, event, func, insert, select, update
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.pool import QueuePool

from bot.privacy import crypto, migrate
from bot.privacy.audit import AuditLog
from bot.privacy.crypto import MasterKeys
from bot.privacy.schema import FAN_TABLES, data_keys, preferences, tickets, turns

T = TypeVar("T")
logger = logging.getLogger(__name__)
DATA_KEY_CACHE = 10_000
#: Turns deleted per store job when erasing a fan (see `TranscriptStore.erase`).
ERASE_BATCH = 500


class StoreError(RuntimeError):
    """The database cannot be opened or used; the message names the URL's database."""


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
    data_keys: int
    turns: int
    preferences: int
    tickets: int = 0
    #: Tickets that were still open or claimed: the desk is told they were erased.
    active_tickets: tuple[int, ...] = ()

    @property
    def records(self) -> int:
        return self.data_keys + self.turns + self.preferences + self.tickets


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
        self._thread = threading.Thread(target=self._loop, name="wal-checkpoint", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._every):
            self.checkpoint()

    def checkpoint(self) -> None:
        try:
            connection = sqlite3.connect(self._path, timeout=1)
            try:
                connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
            finally:
                connection.close()
        except sqlite3.Error:
            logger.warning("SQLite WAL checkpoint failed; will retry")

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
        return create_engine(url, future=True, pool_pre_ping=True)
    # SQLAlchemy 1.4 opens a new connection per use for SQLite files (NullPool), paying the
    # pragmas every time: milliseconds per write. Keep connections; the store's single
    # worker thread is the only writer.
    engine = create_engine(url, future=True, poolclass=QueuePool, connect_args={"check_same_thread": False})
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


class TranscriptStore:
    def __init__(self, engine: Engine, keys_engine: Engine, master: MasterKeys) -> None:
        self._engine = engine
        self._keys_engine = keys_engine
        self._master = master
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
        self._data_keys: OrderedDict[str, bytes] = OrderedDict()
        self._logging: dict[str, bool] = {}
        self._queue_lock = threading.Lock()
        self._erasing: set[str] = set()
        self._checkpointers = [
            _WalCheckpointer(str(database))
            for database in {_sqlite_file(engine), _sqlite_file(keys_engine)}
            if database is not None
        ]
        self._queued: list[tuple[tuple[Turn, ...], "asyncio.Future[None]", asyncio.AbstractEventLoop]] = []
        self.audit_log = AuditLog(engine)

    @classmethod
    def open(cls, url: str, keys_url: Optional[str], master: MasterKeys) -> "TranscriptStore":
        """Opens (and migrates) both databases, then proves the master keys open the data keys.

        A wrong or missing master key raises before anything is written.
        """
        try:
            engine = open_engine(url)
            keys_engine = engine if not keys_url or keys_url == url else open_engine(keys_url)
            migrate.upgrade(engine, "transcripts")
            migrate.upgrade(keys_engine, "keys")
        except Exception as error:  # driver errors carry passwords in URLs: name the database only
            raise StoreError(f"cannot open the store ({_describe(url)}): {type(error).__name__}: {_first_line(error)}") from None
        _check_master_keys(keys_engine, master)  # before any thread starts or anything is written
        return cls(engine, keys_engine, master)

    @property
    def engine(self) -> Engine:
        return self._engine

    async def run(self, work: Callable[[], T]) -> T:
        """Runs database work on the store's thread, in order with every other store call."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, work)

    # Data keys -------------------------------------------------------------------------

    def data_key(self, fan: str, create: bool) -> Optional[bytes]:
        """The fan's unwrapped data key (store thread only); None when erased or never made."""
        cached = self._data_keys.get(fan)
        if cached is not None:
            self._data_keys.move_to_end(fan)
            return cached
        with self._keys_engine.begin() as connection:
            wrapped = connection.execute(select(data_keys.c.wrapped).where(data_keys.c.fan == fan)).scalar()
            if wrapped is None:
                if not create:
                    return None
                key = crypto.new_data_key()
                connection.execute(insert(data_keys).values(fan=fan, wrapped=self._master.wrap(key), created_at=datetime.utcnow()))
            else:
                key = self._master.unwrap(wrapped)
        self._data_keys[fan] = key
        if len(self._data_keys) > DATA_KEY_CACHE:
            self._data_keys.popitem(last=False)
        return key

    # Turns -----------------------------------------------------------------------------

    def _write(self, batch: tuple[Turn, ...]) -> None:
        rows = []
        for turn in batch:
            key = self.data_key(turn.fan, create=True)
            assert key is not None
            rows.append(
                {
                    "fan": turn.fan,
                    "conversation": turn.conversation,
                    "role": turn.role,
                    "kind": turn.kind,
                    "at": turn.at,
                    "intent": turn.intent,
                    "confidence": turn.confidence,
                    "body": crypto.encrypt(key, turn.text),
                }
            )
        if rows:
            with self._engine.begin() as connection:
                connection.execute(insert(turns), rows)

    def submit(self, *batch: Turn) -> "asyncio.Future[None]":
        """Queues the write at once, without waiting for it.

        Writes queued while the store thread is busy are committed together (group
        commit). Everything runs on one thread in submission order, so a write queued
        before an erasure is erased with the rest; the per-fan lock in `Bot` keeps a fan's
        own later writes behind their erasure.
        """
        loop = asyncio.get_running_loop()
        settled: asyncio.Future[None] = loop.create_future()
        with self._queue_lock:
            self._queued.append((batch, settled, loop))
            start_flush = len(self._queued) == 1
        if start_flush:
            self._executor.submit(self._flush)
        return settled

    def _flush(self) -> None:
        with self._queue_lock:
            pending, self._queued = self._queued, []
        error: Optional[BaseException] = None
        try:
            self._write(tuple(turn for batch, _, _ in pending for turn in batch))
        except Exception as failure:  # every waiter of the group learns of it
            error = failure
        for _, settled, loop in pending:
            loop.call_soon_threadsafe(_settle, settled, error)

    async def append(self, *batch: Turn) -> None:
        if batch:
            await self.submit(*batch)

    async def export(self, fan: str, actor: str = "fan") -> dict[str, Any]:
        """Everything stored about the fan, decrypted (the text was redacted before storage)."""

        def work() -> dict[str, Any]:
            key = self.data_key(fan, create=False)
            with self._engine.connect() as connection:
                rows = connection.execute(select(turns).where(turns.c.fan == fan).order_by(turns.c.id)).mappings().all()
                logging_enabled = self._logging_enabled(connection, fan)
            self.audit_log.record("export_served", actor, {"turns": len(rows)})
            return {
                "pseudonym": fan,
                "transcript_logging": "on" if logging_enabled else "off",
                "turns": [
                    {
                        "at": row["at"].isoformat(timespec="seconds") + "Z",
                        "conversation": row["conversation"][:12],
                        "role": row["role"],
                        "kind": row["kind"],
                        "intent": row["intent"],
                        "confidence": row["confidence"],
                        "text": _readable(key, row["body"]),
                    }
                    for row in rows
                ],
            }

        return await self.run(work)

    def read_recent_turns(self, fan: str, limit: int) -> list[dict[str, Any]]:
        """The fan's last turns, oldest first, for a moderator's handoff packet (store
        thread only; not audited as an export: the fan asked for the person who reads it)."""
        key = self.data_key(fan, create=False)
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(turns.c.role, turns.c.kind, turns.c.at, turns.c.body)
                .where(turns.c.fan == fan)
                .order_by(turns.c.id.desc())
                .limit(limit)
            ).mappings().all()
        return [
            {"role": row["role"], "kind": row["kind"], "at": row["at"], "text": _readable(key, row["body"])}
            for row in reversed(rows)
        ]

    def read_first_disclosure(self, fan: str) -> Optional[datetime]:
        """When the fan was first told, in what is still stored, that they talk to an AI
        (store thread only)."""
        with self._engine.connect() as connection:
            query = select(func.min(turns.c.at)).where(turns.c.fan == fan, turns.c.kind == "disclosure")
            return connection.execute(query).scalar()

    async def erase(self, fan: str, actor: str = "fan") -> ErasureReceipt:
        """Deletes the data key first (crypto-shredding), then every row naming the fan.

        The key, preferences and tickets go at once, and the first `ERASE_BATCH` turns with
        them. A fan with more turns has the rest deleted in further batches queued on the
        store thread, so other fans' writes are not held up behind one large erasure;
        those rows are unreadable from the first moment (their key is gone). `settle()`
        waits until they are gone too.
        """

        def work() -> ErasureReceipt:
            self._data_keys.pop(fan, None)
            self._logging.pop(fan, None)
            with self._keys_engine.begin() as connection:
                keys_deleted = connection.execute(delete(data_keys).where(data_keys.c.fan == fan)).rowcount
            with self._engine.begin() as connection:
                active = connection.execute(
                    select(tickets.c.id).where(tickets.c.fan == fan, tickets.c.status.in_(["open", "claimed"]))
                ).scalars().all()
                turn_count = int(
                    connection.execute(select(func.count()).select_from(turns).where(turns.c.fan == fan)).scalar() or 0
                )
                deleted = {
                    table.name: connection.execute(delete(table).where(table.c.fan == fan)).rowcount
                    for table in FAN_TABLES
                    if table is not turns
                }
            receipt = ErasureReceipt(
                keys_deleted, turn_count, deleted["preferences"], deleted["tickets"], tuple(sorted(active))
            )
            self.audit_log.record(
                "erasure_executed", actor, {"records": receipt.records, "turns": receipt.turns, "tickets": receipt.tickets}
            )
            self._erasing.add(fan)
            self._erase_turns_batch(fan)
            return receipt

        return await self.run(work)

    def _erase_turns_batch(self, fan: str) -> None:
        """Deletes up to `ERASE_BATCH` of an erased fan's turns; queues itself again while any remain."""
        batch = select(turns.c.id).where(turns.c.fan == fan).limit(ERASE_BATCH).scalar_subquery()
        with self._engine.begin() as connection:
            removed = connection.execute(delete(turns).where(turns.c.id.in_(batch))).rowcount
        if removed < ERASE_BATCH:
            self._erasing.discard(fan)
        else:
            self._executor.submit(self._erase_turns_batch, fan)

    async def settle(self) -> None:
        """Waits until queued writes and the row deletion of every erasure have finished."""
        while True:
            await self.run(lambda: None)
            if not self._erasing and not self._queued:
                return

    async def purge(self, before: datetime, dry_run: bool = False) -> int:
        """Deletes (or, dry, counts) turns older than `before`; returns how many."""

        def work() -> int:
            with self._engine.begin() as connection:
                if dry_run:
                    return int(connection.execute(select(func.count()).select_from(turns).where(turns.c.at < before)).scalar() or 0)
                purged = int(connection.execute(delete(turns).where(turns.c.at < before)).rowcount)
                closed = connection.execute(
                    delete(tickets).where(tickets.c.status.not_in(["open", "claimed"]), tickets.c.closed_at < before)
                ).rowcount
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

    @staticmethod
    def _logging_enabled(connection: Connection, fan: str) -> bool:
        value = connection.execute(select(preferences.c.logging_enabled).where(preferences.c.fan == fan)).scalar()
        return True if value is None else bool(value)

    async def logging_enabled(self, fan: str) -> bool:
        """Whether the fan's turns are kept (`/privacy off` stops it); cached, read per message."""
        cached = self._logging.get(fan)
        if cached is not None:
            return cached

        def work() -> bool:
            with self._engine.connect() as connection:
                return self._logging_enabled(connection, fan)

        enabled = await self.run(work)
        if len(self._logging) > DATA_KEY_CACHE:
            self._logging.clear()
        self._logging[fan] = enabled
        return enabled

    async def set_logging(self, fan: str, enabled: bool) -> None:
        def work() -> None:
            with self._engine.begin() as connection:
                changed = connection.execute(
                    update(preferences).where(preferences.c.fan == fan).values(logging_enabled=enabled)
                ).rowcount
                if not changed:
                    connection.execute(insert(preferences).values(fan=fan, logging_enabled=enabled))
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
            self.audit_log.record("key_rotation", "operator", {"data_keys": rotated})
            return rotated

        return await self.run(work)

    async def aclose(self) -> None:
        await self.settle()
        for checkpointer in self._checkpointers:
            checkpointer.stop()
        self._executor.shutdown(wait=True)
        self._engine.dispose()
        if self._keys_engine is not self._engine:
            self._keys_engine.dispose()


def _settle(settled: "asyncio.Future[None]", error: Optional[BaseException]) -> None:
    if settled.cancelled():
        return
    if error is None:
        settled.set_result(None)
    else:
        settled.set_exception(error)


def _readable(key: Optional[bytes], body: bytes) -> str:
    """Decrypted text, or a marker: one damaged row must not hide the rest of an export."""
    if key is None:
        return "[unreadable: key erased]"
    try:
        return crypto.decrypt(key, body)
    except crypto.CiphertextError:
        return "[unreadable: corrupted]"


def _check_master_keys(keys_engine: Engine, master: MasterKeys) -> None:
    """Raises `MasterKeyError` unless the master keys open a stored data key (if any)."""
    with keys_engine.connect() as connection:
        sample = connection.execute(select(data_keys.c.wrapped).limit(1)).scalar()
    if sample is not None:
        master.unwrap(sample)


def _sqlite_file(engine: Engine) -> Optional[str]:
    return engine.url.database if engine.url.get_backend_name() == "sqlite" else None


def _describe(url: str) -> str:
    parsed = make_url(url)
    return f"{parsed.get_backend_name()} database {parsed.database or ''}".strip()


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else ""

