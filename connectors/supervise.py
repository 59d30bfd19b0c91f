"""Each connector under supervision: one platform's crash never stops another.

A connector that fails before it ever served (bad token, unreachable API, port in use) ends
`bot run` with its one-line error: that is a configuration problem. Once it has served,
an unexpected exception (a malformed gateway frame, a bug in an SDK) is logged once, by
type only (never content), and the connector is reset and started again after a backoff
that doubles up to a ceiling; the other connectors keep serving meanwhile. A
`ConnectorError` (the token was revoked, say) is still fatal: restarting cannot fix it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

from bot.core import Bot
from connectors.base import Connector, ConnectorError

logger = logging.getLogger(__name__)

FIRST_DELAY = 1.0
MAX_DELAY = 60.0
#: A run that lasted this long was healthy: the next crash starts the backoff afresh.
STABLE_SECONDS = 120.0


class Restartable(Connector, Protocol):
    #: Set once the connector has served (connected, or listening); a crash before that is fatal.
    served: bool

    async def reset(self) -> None:
        """Closes whatever the crash left open and makes `run` callable again."""


async def supervise(
    connector: Restartable,
    bot: Bot,
    first_delay: float = FIRST_DELAY,
    max_delay: float = MAX_DELAY,
    monotonic: Callable[[], float] = time.monotonic,
) -> None:
    """Runs `connector` until it closes normally; restarts it after crashes (see the module)."""
    delay = first_delay
    while True:
        started = monotonic()
        try:
            await connector.run(bot)
            return
        except (ConnectorError, asyncio.CancelledError):
            raise
        except Exception as error:
            if not connector.served:
                raise
            if monotonic() - started > STABLE_SECONDS:
                delay = first_delay
            logger.error(
                "the %s connector crashed (%s); restarting it in %.0f s, the others keep serving",
                connector.name, type(error).__name__, delay,
            )
            logger.debug("the %s connector's crash", connector.name, exc_info=True)  # developers only: may hold content
        try:
            await connector.reset()
        except Exception as error:  # a half-closed client: the next run starts from scratch anyway
            logger.warning("resetting the %s connector failed (%s)", connector.name, type(error).__name__)
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_delay)
