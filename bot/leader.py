"""Leader locks: work that must happen in exactly one of several `bot run` processes.

The background jobs (retention purge, claim-timeout and silence checks, queued desk-message
removal) and the Discord gateway session each run in one process at a time. On PostgreSQL
each is a session-level advisory lock (`pg_try_advisory_lock`) held on a connection of its
own for as long as the process leads: when the process dies, its connection closes and
PostgreSQL releases the lock, so a waiting process takes it within one poll interval. No
lease to renew, no clock to trust. On SQLite there is one process per store, which always leads.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Awaitable, Callable
from typing import Any, Optional, Protocol, TypeVar

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

logger = logging.getLogger(__name__)

#: How often a waiting process tries the lock, and the leader checks it still holds it.
POLL_SECONDS = 5.0
#: A check that takes longer than this (a database gone silent) counts as a lost lock.
CHECK_TIMEOUT_SECONDS = 10.0
#: The first of the two int4 keys of our advisory locks ("FANA"): the two-key form has a
#: key space of its own (pg_locks.objsubid = 2), apart from one-bigint per-fan locks.
NAMESPACE = 0x46414E41
JOBS = "background-jobs"
DISCORD_GATEWAY = "discord-gateway"
#: TCP keepalives on the lock's connection, so a leader cut off from the database notices
#: (and the database drops its lock) within about half a minute, not the kernel's two hours.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3, "connect_timeout": 5}

T = TypeVar("T")


def lock_key(name: str) -> int:
    """The second advisory-lock key for `name`: its CRC-32 as a signed int4."""
    value = zlib.crc32(name.encode())
    return value - (1 << 32) if value >= 1 << 31 else value


class Leadership(Protocol):
    name: str
    poll_seconds: float

    @property
    def leading(self) -> bool: ...

    async def wait_until_leading(self) -> None:
        """Returns once this process holds the lock (at once if it already does)."""

    async def still_leading(self) -> bool:
        """Whether the lock is still held; False once it was lost (the connection died)."""

    def resign(self) -> None:
        """This process is stopping: it takes the lock no more (`wait_until_leading` then
        waits until cancelled), so a standby does not take over a gateway or start a job in
        the seconds a stopping process spends finishing its replies; a holder keeps the lock
        until `aclose`, so two processes never hold it at once."""

    async def aclose(self) -> None:
        """Gives the lock up (closing its connection)."""


class SoleProcess:
    """SQLite: one process per store, always the leader."""

    def __init__(self, name: str, poll_seconds: float = POLL_SECONDS) -> None:
        self.name, self.poll_seconds = name, poll_seconds

    @property
    def leading(self) -> bool:
        return True

    async def wait_until_leading(self) -> None:
        return None

    async def still_leading(self) -> bool:
        return True

    def resign(self) -> None:
        return None  # one process per store: there is nobody to hand over to

    async def aclose(self) -> None:
        return None


class AdvisoryLock:
    """A PostgreSQL session-level advisory lock on a dedicated connection (see the module)."""

    def __init__(self, url: str, name: str, poll_seconds: float = POLL_SECONDS) -> None:
        self.name, self.poll_seconds = name, poll_seconds
        self._key = lock_key(name)
        self._engine: Engine = create_engine(
            url, future=True, poolclass=NullPool, isolation_level="AUTOCOMMIT", connect_args=KEEPALIVES
        )
        self._connection: Optional[Connection] = None
        self._leading = False
        self._unreachable_logged = False
        self._waiting_logged = False
        self._resigned = False
        self._using = asyncio.Lock()  # one connection: one statement at a time


    @property
    def leading(self) -> bool:
        return self._leading

    async def _run(self, work: Callable[[], T]) -> T:
        async with self._using:
            return await asyncio.wait_for(asyncio.to_thread(work), CHECK_TIMEOUT_SECONDS)

    def resign(self) -> None:
        self._resigned = True

    def _try(self) -> bool:
        if self._leading:  # another waiter of this process took it meanwhile (one lock, one count)
            return True
        if self._connection is None or self._connection.closed:
            self._connection = self._engine.connect()
        taken = self._connection.execute(
            text("SELECT pg_try_advisory_lock(:namespace, :key)"), {"namespace": NAMESPACE, "key": self._key}
        ).scalar()
        return bool(taken)

    def _held(self) -> bool:
        if self._connection is None or self._connection.closed:
            return False
        count = self._connection.execute(
            text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() "
                "AND classid::bigint = :namespace AND objid::bigint = :key AND objsubid = 2 AND granted"
            ),
            {"namespace": NAMESPACE & 0xFFFFFFFF, "key": self._key & 0xFFFFFFFF},
        ).scalar()
        return bool(count)

    async def wait_until_leading(self) -> None:
        while not self._leading:
            if self._resigned:
                await asyncio.Event().wait()  # stopping: never taken again (until cancelled)
            try:
                taken = await self._run(self._try)
                if self._leading:  # another waiter of this process took it (and said so)
                    return
                self._leading = taken
                if self._unreachable_logged:
                    logger.warning("the database answers again: trying the %s lock", self.name)
                    self._unreachable_logged = False
            except Exception as error:  # the database is down or restarting: keep trying
                await self._drop_connection()
                if not self._unreachable_logged:
                    logger.warning("cannot try the %s lock (%s); retrying every %g s", self.name, type(error).__name__, self.poll_seconds)
                    self._unreachable_logged = True
            if self._leading:
                logger.info("this process now holds the %s lock", self.name)
                self._waiting_logged = False
                return
            if not self._waiting_logged and not self._unreachable_logged:
                logger.info("another process holds the %s lock; standing by (trying every %g s)", self.name, self.poll_seconds)
                self._waiting_logged = True
            await asyncio.sleep(self.poll_seconds)

    async def still_leading(self) -> bool:
        if not self._leading:
            return False
        try:
            held = await self._run(self._held)
        except Exception as error:
            held = False
            logger.debug("checking the %s lock failed (%s)", self.name, type(error).__name__)
        if not held:
            logger.error("lost the %s lock (its database connection failed); another process may take over", self.name)
            self._leading = False
            await self._drop_connection()
        return held

    async def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                async with self._using:
                    await asyncio.wait_for(asyncio.to_thread(connection.close), CHECK_TIMEOUT_SECONDS)
            except Exception as error:  # already broken: nothing left to release
                logger.debug("closing the %s lock's connection failed (%s)", self.name, type(error).__name__)

    async def aclose(self) -> None:
        """Closing the connection releases the lock at once: a waiting process takes over."""
        self._leading = False
        await self._drop_connection()
        self._engine.dispose()


def leader_lock(store_url: str, name: str, poll_seconds: float = POLL_SECONDS) -> Leadership:
    """The lock for `name` on this store: advisory on PostgreSQL, always held on SQLite."""
    if store_url.startswith("postgresql"):
        return AdvisoryLock(store_url, name, poll_seconds)
    return SoleProcess(name, poll_seconds)


async def hold(lock: Leadership) -> None:
    """Takes `lock` when it can and keeps checking it, until cancelled; for work that asks
    `lock.leading` at each turn instead of running under `while_leading`."""
    while True:
        await lock.wait_until_leading()
        held = True
        while held:
            await asyncio.sleep(lock.poll_seconds)
            held = await lock.still_leading()


async def while_leading(lock: Leadership, job: Callable[[], Awaitable[Any]]) -> None:
    """Runs `job` only while this process holds `lock`, until cancelled: it starts once the
    lock is taken, is cancelled if the lock is lost, and starts again when the lock is taken
    again. Returns when `job` returns by itself."""
    while True:
        await lock.wait_until_leading()
        task = asyncio.ensure_future(job())
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=lock.poll_seconds)
                if done:
                    task.result()
                    return
                if not await lock.still_leading():
                    break
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
