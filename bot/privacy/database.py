"""The store's database: opening an engine (SQLite with its pragmas and WAL checkpointer, or a
server), the errors callers can tell apart, and group commit on the store's one thread.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Generic, Optional, TypeVar

from sqlalchemy import create_engine, event, inspect
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.pool import QueuePool

I = TypeVar("I")  # noqa: E741 - GroupCommit[I, R]: item in, result out
R = TypeVar("R")
logger = logging.getLogger(__name__)


class StoreError(RuntimeError):
    """The database cannot be opened or used; the message names the URL's database."""


class StoreUnavailable(StoreError):
    """The database did not answer (down, unreachable, locked): try again later."""


#: Driver errors that mean "not reachable now" rather than "this statement is wrong".
OUTAGES = (OperationalError, InterfaceError, DisconnectionError)


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA secure_delete=ON")  # erased rows are overwritten, not left in free pages
    # No checkpoint inside a commit: whichever write crossed the WAL limit would pay for
    # copying it back (hundreds of ms). `WalCheckpointer` does it beside the writer.
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()


class WalCheckpointer:
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
                loop.call_soon(self._start)
            else:
                self._start()
        return settled

    def _start(self) -> None:
        try:
            self._executor.submit(self._flush)
        except RuntimeError as closed:  # the store was closed: every waiter learns it, none hangs
            with self._lock:
                pending, self._queued = self._queued, []
            for _, settled, _loop in pending:
                _settle(settled, None, closed)

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
        f"no store at {describe(url)} (a missing or empty database): restore it from a backup, fix [store] url, "
        "or create a new store deliberately with `bot db init`"
    )


def require_existing_file(url: str) -> None:
    database = _sqlite_path(url)
    if database is not None and not database.is_file():
        raise _missing(url)


def require_schema(engine: Engine, role: str, url: str) -> None:
    try:
        with engine.connect() as connection:
            present = inspect(connection).has_table(f"alembic_version_{role}")
    except Exception as error:
        raise StoreError(f"cannot open the store ({describe(url)}): {type(error).__name__}: {first_line(error)}") from None
    if not present:
        raise _missing(url)


def store_exists(url: str, keys_url: Optional[str] = None) -> bool:
    """Whether a store (its schema) is already at `url`; creates nothing."""
    for each in {url, keys_url or url}:
        try:
            require_existing_file(each)
            engine = open_engine(each)
        except StoreError:
            return False
        try:
            require_schema(engine, "transcripts" if each == url else "keys", each)
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


def file_identity(path: str) -> Optional[tuple[int, int]]:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return (status.st_dev, status.st_ino)


def sqlite_file(engine: Engine) -> Optional[str]:
    return engine.url.database if engine.url.get_backend_name() == "sqlite" else None


def describe(url: str) -> str:
    parsed = make_url(url)
    return f"{parsed.get_backend_name()} database {parsed.database or ''}".strip()


def first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else ""
