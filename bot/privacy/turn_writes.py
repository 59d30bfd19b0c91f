"""Writing turns: group-committed, under the key version each fan had when queued.

A turn reaches the database on the store thread, maybe after other processes erased the
fan, changed their `/privacy` choice or the database went away. So each queued batch
carries the generation of changes and the key versions it was queued under; writes group
on the store thread (`GroupCommit`), wait in the spool while the database does not answer,
and never land under a key that is gone or replaced.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Optional

from sqlalchemy import insert
from sqlalchemy.engine import Connection, Engine

from bot.privacy import crypto
from bot.privacy.caches import FanCaches
from bot.privacy.changes import Changes
from bot.privacy.database import OUTAGES, GroupCommit
from bot.privacy.keys import key_versions
from bot.privacy.preferences import read_choices
from bot.privacy.schema import turns
from bot.privacy.spool import Spool
from bot.privacy.turns import QueuedTurns, Turn

logger = logging.getLogger(__name__)

#: (fan, create) -> the fan's data key and version, or None (`TranscriptStore._key_version`).
KeyVersion = Callable[[str, bool], Optional[tuple[bytes, datetime]]]
#: (fan, limit, connection) -> reads the fan's recent turns into memory (`TranscriptStore.recent_history`).
RecentHistory = Callable[[str, int, Optional[Connection]], Any]


class TurnWrites:
    def __init__(
        self,
        engine: Engine,
        keys_engine: Engine,
        caches: FanCaches,
        changes: Changes,
        spool: Optional[Spool],
        key_version: KeyVersion,
        recent_history: RecentHistory,
        group_commit: Callable[[Callable[[list[QueuedTurns]], Sequence[None]]], GroupCommit[QueuedTurns, None]],
    ) -> None:
        self._engine = engine
        self._keys_engine = keys_engine
        self._caches = caches
        self._changes = changes
        self._spool = spool
        self._key_version = key_version
        self._recent_history = recent_history
        self._queue = group_commit(self._write_groups)

    def submit(self, batch: tuple[Turn, ...], check_logging: bool) -> asyncio.Future[None]:
        """See `TranscriptStore.submit`."""
        caches = self._caches
        versions = {turn.fan: cached[1] for turn in batch if (cached := caches.keys.get(turn.fan)) is not None}
        with caches.lock:  # in order with `Changes.changed` and the forgetting in `_write_groups`
            return self._queue.submit(QueuedTurns(batch, check_logging, caches.generation, versions))

    @property
    def spooled(self) -> int:
        return self._spool.pending if self._spool is not None else 0

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()

    def drain_spool(self) -> None:
        """Store thread: writes spooled batches back, in order (raises while still down)."""
        if self._spool is not None and self._spool.pending:
            self._spool.drain(lambda turns, check: self._write(self._allowed(tuple(turns), check)), Turn)

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
            held = self._key_version(fan, known is None)
            if held is None or (known is not None and held[1] != known):
                self._caches.drop(fan)
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
                    self._caches.recent.add(kept)
                    return
                transaction.rollback()
            for fan in gone:
                self._caches.drop(fan)
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
        recent = self._caches.recent
        missing = [fan for fan in fans if fan not in recent] if recent.limit else []
        if not missing:
            return
        try:
            with self._engine.connect() as connection:
                for fan in missing:
                    self._recent_history(fan, recent.limit, connection)
        except Exception as error:  # only a cache: the packet will read the store instead
            logger.warning("could not read a fan's recent turns into memory: %s", type(error).__name__)

    def _write_groups(self, groups: list[QueuedTurns]) -> list[None]:
        """Store thread: spooled batches first (they are older), then this group. When the
        database does not answer and a spool is configured, the group waits in the spool.
        What changed in another process since a batch was queued is honoured (`Changes.fresh`)."""
        fresh = [(self._changes.fresh(item.batch, item.check_logging, item.generation), item.versions) for item in groups]
        try:
            self.drain_spool()
            expected: dict[str, datetime] = {}
            for _, versions in fresh:
                expected.update(versions)
            self._write(tuple(turn for (batch, check), _ in fresh for turn in self._allowed(batch, check)), expected)
        except OUTAGES:
            if self._spool is None:
                raise
            for (batch, check), _ in fresh:
                self._spool.put(batch, check)
        with self._caches.lock:  # no write queued before these changes is left: forget them
            if not self._queue.pending:
                self._changes.forget()
        return [None] * len(groups)

    def _allowed(self, batch: tuple[Turn, ...], check_logging: bool) -> tuple[Turn, ...]:
        """The turns of fans who allow logging, when that was not known as they were queued."""
        if not check_logging:
            return batch
        with self._engine.connect() as connection:
            allowed = {fan for fan, enabled in read_choices(connection, (turn.fan for turn in batch)).items() if enabled}
        return tuple(turn for turn in batch if turn.fan in allowed)
