"""One fan's messages are handled one at a time, so an erasure cannot race a message of the
same fan and leave something behind, and two messages cannot both think they are the first.

`KeyedLocks`: one asyncio lock per key, within a process. `FanLocks` adds, on PostgreSQL, an
advisory lock on a 64-bit hash of the pseudonym so processes sharing the database take turns
too. The locks are session-level, all on one connection of the process's own: the locks a
burst of fans asks for in one event-loop iteration are tried in one statement, and given back
in one (`pg_try_advisory_lock` / `pg_advisory_unlock` over an array). One transaction-scoped
lock per fan, each on a pooled connection, cost a connection and three round trips per
fan on one thread: 115 ms p50 to take the lock in a burst of 25 new fans per process, most of
it opening connections beyond the pool (docs/benchmarks.md, "The /human burst"). PostgreSQL
releases a session's locks when its connection closes, so a process that dies, or loses the
connection, holds nothing. The in-process lock stays in front, so the one session never takes
a fan's lock twice (a session's advisory locks are re-entrant). SQLite is single-process
(`bot.privacy.single_process`): the in-process lock is enough there.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Optional

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from bot.leader import KEEPALIVES as _KEEPALIVES
from bot.privacy.store import OUTAGES, GroupCommit, StoreUnavailable

logger = logging.getLogger(__name__)

#: Polling a try-lock instead of blocking keeps the lock thread free while another process holds
#: the fan: the first retry is quick (a message takes milliseconds), later ones back off.
FIRST_RETRY_SECONDS = 0.001
MAX_RETRY_SECONDS = 0.02
TRY = text("SELECT k, pg_try_advisory_lock(k) FROM unnest(CAST(:keys AS bigint[])) AS t(k)")
GIVE = text("SELECT pg_advisory_unlock(k) FROM unnest(CAST(:keys AS bigint[])) AS t(k)")


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
        self._shared = SessionLocks(engine) if engine.dialect.name == "postgresql" else None

    @property
    def shared(self) -> bool:
        """Whether other processes are locked out too (PostgreSQL)."""
        return self._shared is not None

    @asynccontextmanager
    async def hold(self, fan: str) -> AsyncIterator[None]:
        """While the database does not answer, only the in-process lock is held: nothing is
        written to the database meanwhile (transcript writes wait in the spool), and the fan
        gets an honest reply rather than none."""
        async with self._local.hold(fan):
            if self._shared is None:
                yield
                return
            key = advisory_key(fan)
            try:
                session = await self._shared.take(key)
            except (*OUTAGES, StoreUnavailable):
                logger.warning("per-fan database lock not taken: the database did not answer")
                yield
                return
            try:
                yield
            finally:
                self._shared.give(key, session)

    def close(self) -> None:
        if self._shared is not None:
            self._shared.close()

    def __len__(self) -> int:
        return len(self._local)


class SessionLocks:
    """Session-level advisory locks on one connection and one thread, tried and given back
    in groups (`GroupCommit`): a burst costs two round trips, not two per fan.

    Each lock taken is told the session it was taken in (a count of connections): after the
    connection was lost (and the server released everything it held), a give-back from
    before is not sent to the new connection, where it could release another holder's lock."""

    def __init__(self, engine: Engine) -> None:
        self._engine = create_engine(
            engine.url, future=True, poolclass=NullPool, isolation_level="AUTOCOMMIT", connect_args=_KEEPALIVES
        )
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fan-locks")
        self._connection: Optional[Connection] = None
        self._session = 0
        self._tries: GroupCommit[int, tuple[bool, int]] = GroupCommit(self._executor, self._try, same_tick=True)
        self._gives: GroupCommit[tuple[int, int], None] = GroupCommit(self._executor, self._give, same_tick=True)

    async def take(self, key: int) -> int:
        """Waits until this process holds `key`; returns the session it is held in."""
        delay = FIRST_RETRY_SECONDS
        while True:
            taken, session = await self._tries.submit(key)
            if taken:
                return session
            await asyncio.sleep(delay)  # another process holds the fan
            delay = min(delay * 2, MAX_RETRY_SECONDS)

    def give(self, key: int, session: int) -> None:
        """Queues the release; the holder goes on at once, and no cancellation can stop it.
        A later try of the key in this process is queued behind it, and would succeed even
        before it (a session's advisory locks are re-entrant): only other processes wait."""
        self._gives.submit((key, session))

    def _try(self, keys: list[int]) -> list[tuple[bool, int]]:
        """Lock thread: tries the keys in one statement. A connection found dead (the database
        restarted, or cut it) is replaced once at once: it held nothing any more."""
        fresh = self._connection is None
        if self._connection is None:
            self._connection = self._engine.connect()
            self._session += 1
        try:
            rows = self._connection.execute(TRY, {"keys": keys}).all()
        except DBAPIError as error:  # whatever it took is released with the connection
            self._drop_connection()
            if fresh or not error.connection_invalidated:
                raise
            return self._try(keys)
        except Exception:
            self._drop_connection()
            raise
        taken = {int(key): bool(ok) for key, ok in rows}
        return [(taken[key], self._session) for key in keys]

    def _give(self, held: list[tuple[int, int]]) -> list[None]:
        keys = [key for key, session in held if session == self._session]
        if keys and self._connection is not None:
            try:
                self._connection.execute(GIVE, {"keys": keys})
            except Exception as error:  # nothing may stay held: the connection goes, and every lock with it
                logger.warning("per-fan database locks not given back (%s); their connection is closed", type(error).__name__)
                self._drop_connection()
        return [None] * len(held)

    def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.invalidate()
                connection.close()
            except Exception:  # already gone
                pass

    def close(self) -> None:
        self._executor.submit(self._drop_connection)
        self._executor.shutdown(wait=True)
        self._engine.dispose()
