"""Watching the store while the bot runs: a removed or replaced SQLite file, a database
that stops answering or refuses writes is logged as an error once (and its recovery once),
instead of the bot answering into a deleted file as if nothing happened."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Optional

from bot.privacy.store import TranscriptStore

logger = logging.getLogger(__name__)
CHECK_SECONDS = 10.0


async def watch_health(
    store: TranscriptStore, every_seconds: float = CHECK_SECONDS, report: Callable[[Optional[str]], None] = lambda _: None
) -> None:
    """Checks every `every_seconds` until cancelled; logs each change of state, no content.
    `report` gets each result (None: usable), e.g. for `/readyz`."""
    reported: Optional[str] = None
    while True:
        problem = await store.check_health()
        report(problem)
        if problem is not None and problem != reported:
            logger.error("the store is not usable: %s", problem)
        elif problem is None and reported is not None:
            logger.warning("the store is usable again")
        reported = problem
        await asyncio.sleep(every_seconds)
