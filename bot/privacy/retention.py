"""Retention: turns older than the configured age are deleted, in the background too."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from bot.privacy.store import TranscriptStore

logger = logging.getLogger(__name__)


def cutoff(retention_days: float, now: datetime) -> datetime:
    return now - timedelta(days=retention_days)


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
