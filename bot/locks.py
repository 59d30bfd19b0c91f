"""One fan's messages are handled one at a time, so an erasure cannot race a message of the
same fan and leave something behind, and two messages cannot both think they are the first.

`KeyedLocks`: one asyncio lock per key, within a process. `FanLocks` adds, on PostgreSQL, a
transaction-scoped advisory lock (`pg_advisory_xact_lock` on a 64-bit hash of the pseudonym)
so processes sharing the database take turns too; the server releases it when the holding
transaction ends, or the holding process dies. The in-process lock stays in front of it, so
one process opens one transaction per busy fan, not one per waiting message. SQLite is
single-process (`bot.privacy.single_process`): the in-process lock is enough there.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine

from bot.privacy.store import OUTAGES

logger = logging.getLogger(__name__)

#: Polling a try-lock instead of blocking keeps a thread free while another process holds
#: the fan: the first retry is quick (a message takes milliseconds), later ones back off.
FIRST_RETRY_SECONDS = 0.001
MAX_RETRY_SECONDS = 0.02


class KeyedLocks:
    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


def advisory_key(fan: str) -> int:
    """A signed 64-bit integer (PostgreSQL's bigint) from the pseudonym."""
    return int.from_bytes(hashlib.sha256(fan.encode()).digest()[:8], "big", signed=True)


class FanLocks:
    """Per-fan serialisation within this process and, on PostgreSQL, across processes."""

    def __init__(self, engine: Engine) -> None:
        self._local = KeyedLocks()
        self._engine: Engine | None = None
        if engine.dialect.name == "postgresql":
            # Its own small pool: a lock holder never waits for a connection the store's
            # thread needs, and the store's thread never waits for a lock holder's.
            self._engine = create_engine(engine.url, future=True, pool_pre_ping=True, pool_size=4, max_overflow=60)
            self._take = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fan-lock")
            self._release = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fan-unlock")

    @property
    def shared(self) -> bool:
        """Whether other processes are locked out too (PostgreSQL)."""
        return self._engine is not None

    @asynccontextmanager
    async def hold(self, fan: str) -> AsyncIterator[None]:
        """While the database does not answer, only the in-process lock is held: nothing is
        written to the database meanwhile (transcript writes wait in the spool), and the fan
        gets an honest reply rather than none."""
        async with self._local.hold(fan):
            if self._engine is None:
                yield
                return
            loop = asyncio.get_running_loop()
            key = advisory_key(fan)
            try:
                connection, taken = await loop.run_in_executor(self._take, self._begin, key)
            except OUTAGES:
                logger.warning("per-fan database lock not taken: the database did not answer")
                yield
                return
            try:
                delay = FIRST_RETRY_SECONDS
                while not taken:  # another process holds the fan
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, MAX_RETRY_SECONDS)
                    taken = await loop.run_in_executor(self._take, _try_lock, connection, key)
                yield
            finally:  # ending the transaction releases the lock; shielded so a cancellation cannot leak it
                await asyncio.shield(loop.run_in_executor(self._release, _end, connection))

    def _begin(self, key: int) -> tuple[Connection, bool]:
        """A connection in a transaction, and whether the lock was free (one hop when it is)."""
        assert self._engine is not None
        connection = self._engine.connect()
        try:
            connection.begin()
            return connection, _try_lock(connection, key)
        except BaseException:
            connection.close()
            raise

    def close(self) -> None:
        if self._engine is not None:
            self._take.shutdown(wait=True)
            self._release.shutdown(wait=True)
            self._engine.dispose()

    def __len__(self) -> int:
        return len(self._local)


def _try_lock(connection: Connection, key: int) -> bool:
    return bool(connection.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": key}).scalar())


def _end(connection: Connection) -> None:
    try:
        connection.rollback()  # nothing was written on it: ending the transaction is the release
    finally:
        connection.close()
