"""Retention: turns older than the configured age are deleted, in the background too."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import delete

from bot.privacy import events
from bot.privacy.fan_data import Expiring, everything
from bot.privacy.schema import turns
from bot.privacy.store import TranscriptStore

logger = logging.getLogger(__name__)


def cutoff(retention_days: float, now: datetime) -> datetime:
    return now - timedelta(days=retention_days)


async def would_purge(store: TranscriptStore, before: datetime) -> dict[str, int]:
    """`bot purge --dry-run`: what a purge as of `before` would delete, per kind (turns, the
    events of `bot.privacy.events`, every `Expiring` part such as ratings). Counted by running
    the purge's own deletes in a transaction that is rolled back, so the counts cannot drift
    from what `TranscriptStore.purge` deletes."""

    def work() -> dict[str, int]:
        with store.engine.connect() as connection:
            transaction = connection.begin()
            try:
                counts = {"turns": int(connection.execute(delete(turns).where(turns.c.at < before)).rowcount)}
                counts["events"] = events.purge(connection, before, 0, 0.0)
                counts.update({part.name: part.purge(connection, before) for part in everything() if isinstance(part, Expiring)})
                return counts
            finally:
                transaction.rollback()

    return await store.run(work)


async def purge_forever(
    store: TranscriptStore,
    retention_days: float,
    interval_seconds: float,
    clock: Callable[[], datetime] = datetime.utcnow,
) -> None:
    """Purges at start and then every interval, until cancelled; failures are logged, not fatal."""
    while True:
        try:
            await store.resume_erasures()
            purged = await store.purge(cutoff(retention_days, clock()))
            await store.compact_keys()
            logger.info("retention purge removed %d turn(s)", purged)
        except Exception:
            logger.exception("retention purge failed; will retry")
        await asyncio.sleep(interval_seconds)
