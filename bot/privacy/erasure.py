"""Erasure: durable jobs, crypto-shredding, batched deletion, completion and resumption.

An erasure must finish even if the process dies halfway and must not hold up other fans'
writes behind one large deletion, so it is a job row first, then the key, then the rows
(in batches queued on the store thread), then the audit record with the job's deletion.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from bot.privacy import events
from bot.privacy.audit import APPEND_ATTEMPTS, AuditLog
from bot.privacy.caches import FanCaches
from bot.privacy.database import WalCheckpointer, sqlite_file
from bot.privacy.fan_data import ERASE_BATCH, ErasureReceipt, FanDataPart, erase_turns_batch
from bot.privacy.keys import delete_key
from bot.privacy.notify import ERASED, announce, fan_token
from bot.privacy.schema import erasures

logger = logging.getLogger(__name__)


class Erasure:
    """Store thread only (the store's `run` puts the public calls there)."""

    def __init__(
        self,
        engine: Engine,
        keys_engine: Engine,
        parts: Sequence[FanDataPart],
        caches: FanCaches,
        origin: str,
        audit_log: AuditLog,
        executor: ThreadPoolExecutor,
        drain_spool: Callable[[], None],
        clock: Callable[[], float],
    ) -> None:
        self._engine = engine
        self._keys_engine = keys_engine
        self._parts = parts
        self._caches = caches
        self._origin = origin
        self._audit_log = audit_log
        self._executor = executor
        self._drain_spool = drain_spool
        self._clock = clock  # epoch seconds of the erasure's event: the store's clock
        #: Fans whose erasure is deleting rows in batches: their job id, actor and receipt.
        self.erasing: dict[str, tuple[int, str, ErasureReceipt]] = {}
        self._keys_dirty = False  # PostgreSQL: a key was shredded since the last `compact_keys`
        self._checkpointers = [
            WalCheckpointer(str(database))
            for database in {sqlite_file(engine), sqlite_file(keys_engine)}
            if database is not None
        ]

    def erase(self, fan: str, actor: str) -> ErasureReceipt:
        """Steps 1 to 3 of `TranscriptStore.erase`; the batches and step 4 follow."""
        self._drain_spool()  # spooled turns of this fan are erased with the rest
        self._caches.drop(fan)
        with self._engine.begin() as connection:
            job = connection.execute(  # type: ignore[index]  # an executed INSERT always has its key
                insert(erasures).values(fan=fan, actor=actor, requested_at=datetime.utcnow())
            ).inserted_primary_key[0]
        return self._execute(int(job), fan, actor)

    def _execute(self, job: int, fan: str, actor: str, resumed: bool = False) -> ErasureReceipt:
        """Steps 2 and 3 of `erase`, then the batches and step 4."""
        with self._keys_engine.begin() as connection:
            keys_deleted = delete_key(connection, fan)
            if self._keys_engine is self._engine:  # the other processes learn it as the key goes
                announce(connection, ERASED, fan_token(fan), self._origin)
        self._caches.drop(fan)
        with self._engine.begin() as connection:
            erased = {part.name: part.erase(connection, fan) for part in self._parts}
            if self._keys_engine is not self._engine:  # they listen on the transcript database
                announce(connection, ERASED, fan_token(fan), self._origin)
        self.scrub()
        receipt = ErasureReceipt.of(keys_deleted, erased, resumed)
        self.erasing[fan] = (job, actor, receipt)
        self._continue(fan)
        return receipt

    def _continue(self, fan: str) -> None:
        """Deletes a batch of the erased fan's turns; queues itself again while any remain,
        then completes the job."""
        job, actor, receipt = self.erasing[fan]
        with self._engine.begin() as connection:
            removed = erase_turns_batch(connection, fan)
        if removed >= ERASE_BATCH:
            self._executor.submit(self._continue_logged, fan)
            return
        try:
            self._complete(fan, actor, receipt)
        finally:  # only now: `settle` (on the event loop's thread) reads this while the job completes
            self.erasing.pop(fan, None)

    def _complete(self, fan: str, actor: str, receipt: ErasureReceipt) -> None:
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
                        self._audit_log.record("erasure_executed", actor, detail, connection=connection)
                        events.erased(connection, requested, actor, self._clock())  # no fan: only the kind and the seconds it took
                self.scrub()  # the job row named the fan
                return
            except (IntegrityError, OperationalError):
                time.sleep(min(0.001 * (attempt + 1), 0.05))
        logger.error("an erasure's audit record could not be written; the job stays and is resumed later")

    def _continue_logged(self, fan: str) -> None:
        try:
            self._continue(fan)
        except Exception as error:  # the job row stays: the next resume finishes it
            self.erasing.pop(fan, None)
            logger.error("an erasure batch failed; it will be resumed: %s", type(error).__name__)

    def scrub(self) -> None:
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

    def compact_keys(self) -> bool:
        """See `TranscriptStore.compact_keys`."""
        if not self._keys_dirty:
            return False
        with self._keys_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM FULL data_keys"))
        self._keys_dirty = False
        return True

    def resume(self) -> int:
        """Finishes the erasures whose job row is still there; returns how many."""
        with self._engine.connect() as connection:
            jobs = connection.execute(select(erasures.c.id, erasures.c.fan, erasures.c.actor).order_by(erasures.c.id)).all()
        resumed = 0
        for job in jobs:
            if job.fan not in self.erasing:  # not already deleting batches in this process
                self._execute(job.id, job.fan, job.actor, resumed=True)
                resumed += 1
        if resumed:
            logger.warning("resumed %d interrupted erasure(s)", resumed)
        return resumed

    def resume_logged(self) -> None:
        """At open, in order with every later store job: nothing new about an erased fan can
        overtake the rest of their erasure."""
        try:
            self.resume()
        except Exception as error:
            logger.error("resuming interrupted erasures failed; the retention task retries: %s", type(error).__name__)

    def stop(self) -> None:
        for checkpointer in self._checkpointers:
            checkpointer.stop()
