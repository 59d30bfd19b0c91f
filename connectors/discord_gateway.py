"""The Discord gateway in exactly one worker: the holder of the `discord-gateway` lock.

Discord delivers DMs to shard 0 only, so one gateway session serves every fan's DMs; two
workers connected with the same token would each receive (and answer) every event. Each
worker configured for Discord runs this wrapper: it connects the real connector once this
process holds the lock (`bot.leader`), and stands by otherwise, trying every poll interval,
so it takes over within seconds when the holder dies (its database connection closes and
PostgreSQL releases the lock). On SQLite the single process always holds it.

A standby sends nothing to Discord: a message for a Discord fan or for a Discord desk that
reaches it (a moderator's reply arriving here from the Slack desk, say) is retried by the
outbox until it expires ([assistant] reply_expiry_seconds), and is delivered only if this
worker takes the gateway over within that time. Sending from standbys over REST is not built.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Optional

from bot.core import Bot
from bot.handoff.desk import ModeratorDesk
from bot.leader import Leadership
from bot.messages import Address, Outgoing
from connectors.discord_connector import DiscordConnector
from connectors.health import Link
from connectors.outbox import Retry

logger = logging.getLogger(__name__)

#: The outbox's reason while this worker stands by (logged if the message expires).
STANDBY = "discord gateway held by another worker"
STANDBY_NOTE = "standby: another worker holds the Discord gateway"
#: After the lock is lost, how long closing the client may take before it is abandoned.
CLOSE_SECONDS = 15.0


class GatewayHolder:
    """A `DiscordConnector` run only while this worker holds `lock` (see the module)."""

    name = "discord"

    def __init__(self, connector: DiscordConnector, lock: Leadership) -> None:
        self.connector = connector
        self.lock = lock
        self.max_message_chars = connector.max_message_chars
        self.desk: Optional[ModeratorDesk] = _StandbyAwareDesk(self, connector.desk) if connector.desk is not None else None
        self._closing = False

    @property
    def served(self) -> bool:
        """For `connectors.supervise`: a crash before the connector ever served is fatal."""
        return self.connector.served

    @property
    def holding(self) -> bool:
        return self.lock.leading

    async def run(self, bot: Bot) -> None:
        """Stands by until this worker holds the gateway lock, then serves Discord; if the
        lock is lost (the database connection failed) it disconnects and stands by again."""
        while not self._closing:
            await self.lock.wait_until_leading()
            logger.info("discord: this worker holds the gateway; connecting")
            serving = asyncio.ensure_future(self.connector.run(bot))
            try:
                while True:
                    done, _ = await asyncio.wait({serving}, timeout=self.lock.poll_seconds)
                    if done:
                        serving.result()  # a crash goes to `connectors.supervise`
                        return
                    if not await self.lock.still_leading():
                        break
                logger.error("discord: lost the gateway lock; disconnecting so that only one worker is connected")
                await asyncio.wait_for(self.connector.reset(), CLOSE_SECONDS)
            finally:
                if not serving.done():
                    serving.cancel()
                await asyncio.gather(serving, return_exceptions=True)

    async def reset(self) -> None:
        await self.connector.reset()

    async def aclose(self) -> None:
        self._closing = True
        await self.connector.aclose()

    async def link(self) -> Link:
        if not self.holding:
            return Link(False, standby=True, note=STANDBY_NOTE)
        return await self.connector.link()

    def _require_gateway(self) -> None:
        if not (self.holding and self.connector.logged_in):
            raise Retry(STANDBY)

    async def send_to(self, address: Address, message: Outgoing) -> None:
        self._require_gateway()
        await self.connector.send_to(address, message)

    async def tell_unreachable(self, address: Address, reason: str) -> None:
        self._require_gateway()
        await self.connector.tell_unreachable(address, reason)


class _StandbyAwareDesk:
    """The Discord desk as the router sees it: posts wait (`Retry`) while this worker stands by."""

    def __init__(self, holder: GatewayHolder, desk: Any) -> None:
        self._holder = holder
        self._desk = desk

    async def post(self, message: Outgoing) -> None:
        self._holder._require_gateway()  # noqa: SLF001 - its own module
        await self._desk.post(message)
