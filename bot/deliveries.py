"""Platform deliveries already handled, in the database: a platform's retry or second delivery
never produces a second reply, whichever process it reaches (Slack HTTP mode can land a retry
on any worker, up to 5 minutes later).

`first_time` is one `INSERT … ON CONFLICT DO NOTHING`: of two processes offered the same key
at once, exactly one inserts. Keys are stored as an HMAC (no platform id in clear) and kept
`ttl_seconds` (at least 10 minutes: Slack retries for 5), then swept (`sweep`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Optional

from sqlalchemy import delete, text

from bot.privacy.schema import delivery_keys
from bot.privacy.store import StoreUnavailable, TranscriptStore

logger = logging.getLogger(__name__)

#: Slack retries an unacknowledged event for about 5 minutes; an hour leaves a wide margin.
TTL_SECONDS = 3600.0
MIN_TTL_SECONDS = 600.0
#: A `text` statement, compiled once: SQLAlchemy's `on_conflict_do_nothing` construct has no
#: cache key and was compiled anew for every platform event (twice per Slack message). The
#: syntax is the same in SQLite (3.24+) and PostgreSQL (9.5+).
_INSERT_NEW = text(f"INSERT INTO {delivery_keys.name} (key, seen_at) VALUES (:key, :seen_at) ON CONFLICT (key) DO NOTHING")


class DeliveryKeys:
    def __init__(
        self,
        store: TranscriptStore,
        digest: Callable[[str], str],
        ttl_seconds: float = TTL_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if ttl_seconds < MIN_TTL_SECONDS:
            raise ValueError(f"delivery keys must be kept at least {MIN_TTL_SECONDS:g} s (Slack retries for 5 minutes)")
        self._store = store
        self._digest = digest
        self._ttl = ttl_seconds
        self._clock = clock

    async def first_time(self, key: Optional[str]) -> bool:
        """Records the key; True the first time it is seen by any process. A missing key (None
        or "") counts as new, since it cannot repeat. So does any key while the database does
        not answer: a rare second reply during an outage beats silence."""
        if not key:
            return True
        hashed, now = self._digest(key), self._clock()

        def insert() -> bool:
            with self._store.engine.begin() as connection:
                return bool(connection.execute(_INSERT_NEW, {"key": hashed, "seen_at": now}).rowcount)

        try:
            return await self._store.run(insert)
        except StoreUnavailable:
            logger.warning("delivery dedupe skipped: the database did not answer")
            return True

    async def sweep(self) -> int:
        """Deletes keys older than the TTL; returns how many. Run periodically, by one process."""
        cutoff = self._clock() - self._ttl

        def work() -> int:
            with self._store.engine.begin() as connection:
                return int(connection.execute(delete(delivery_keys).where(delivery_keys.c.seen_at < cutoff)).rowcount)

        return await self._store.run(work)
