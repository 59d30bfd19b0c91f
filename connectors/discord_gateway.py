"""The Discord gateway in exactly one worker: the holder of the `discord-gateway` lock.

Discord delivers DMs to shard 0 only, so one gateway session serves every fan's DMs; two
workers connected with the same token would each receive (and answer) every event. Each
worker configured for Discord runs this wrapper: it connects the real connector once this
process holds the lock (`bot.leader`), and stands by otherwise, trying every poll interval,
so it takes over within seconds when the holder dies (its database connection closes and
PostgreSQL releases the lock). On SQLite the single process always holds it.

A standby still sends: a message for a Discord fan or for a Discord desk that reaches it (a
moderator's reply arriving here from the Slack desk, a claim notice, a ticket packet) goes out
through a second client of its own that is logged in for Discord's REST API only
(`DiscordConnector.open_rest`, at the first such message), never connected to the gateway, so
it receives no events and answers nothing twice. Sending needs no gateway session: discord.py
sends every message over REST. What needs the gateway's state stays with the holder: the
ephemeral follow-up through a fan's latest slash command (its interaction lives in the
holder's memory), so a standby reports a fan with closed DMs as unreachable. An erasure handled
here removes the fan's desk messages over REST too; if that fails they stay queued for the jobs
leader.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Optional

from bot.core import Bot
from bot.handoff.desk import Removal
from bot.handoff.locations import DeskPost
from bot.leader import Leadership
from bot.messages import Address, Outgoing
from connectors.base import ConnectorError
from connectors.discord_connector import DiscordConnector
from connectors.discord_desk import DiscordDesk
from connectors.health import Link
from connectors.outbox import Retry

logger = logging.getLogger(__name__)

#: The outbox's reasons while a standby cannot send (logged if the message expires).
STANDBY = "discord gateway held by another worker"
REST_LOGIN_FAILED = "discord gateway held by another worker and the REST login failed"
STANDBY_NOTE = "standby: another worker holds the Discord gateway"
#: After the lock is lost, how long closing the client may take before it is abandoned.
CLOSE_SECONDS = 15.0


class GatewayHolder:
    """A `DiscordConnector` run only while this worker holds `lock` (see the module)."""

    name = "discord"

    def __init__(self, connector: DiscordConnector, lock: Leadership, rest: Optional[DiscordConnector] = None) -> None:
        """`rest`: a second connector with the same settings, used only through `open_rest`
        while this worker stands by; None: a standby sends nothing (retried until it holds)."""
        self.connector = connector
        self.lock = lock
        self.rest = rest
        self.max_message_chars = connector.max_message_chars
        self.desk: Optional[_StandbyAwareDesk] = _StandbyAwareDesk(self) if connector.desk is not None else None
        self._closing = False
        self._bot: Optional[Bot] = None
        self._rest_login = asyncio.Lock()

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
        self._bot = bot
        while not self._closing:
            if self.desk is not None:  # erasures here remove desk copies over REST while standing by
                bot.handoff.use_desk_copies(self.desk)  # (the connector puts its own desk while it serves)
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

    def release_idle(self) -> int:
        """Both clients' idle rate-limit buckets (`DiscordConnector.release_idle`)."""
        return self.connector.release_idle() + (self.rest.release_idle() if self.rest is not None else 0)

    async def aclose(self) -> None:
        self._closing = True
        await self.connector.aclose()
        if self.rest is not None:
            await self.rest.aclose()

    async def link(self) -> Link:
        if not self.holding:
            return Link(False, standby=True, note=STANDBY_NOTE)
        return await self.connector.link()

    async def sender(self) -> DiscordConnector:
        """The connector to send through now: the gateway's while this worker holds it and is
        logged in, otherwise the REST-only one (logged in at its first use). Raises `Retry`
        (the outbox tries again later) when neither can send."""
        if self.holding and self.connector.logged_in:
            return self.connector
        rest, bot = self.rest, self._bot
        if rest is None or bot is None:
            raise Retry(STANDBY)
        async with self._rest_login:
            if not rest.logged_in:
                try:
                    await rest.open_rest(bot)
                except ConnectorError as error:
                    logger.warning("%s (REST login of a worker without the gateway; the message is retried)", error)
                    await rest.reset()  # a clean client for the next try
                    raise Retry(REST_LOGIN_FAILED) from None
                logger.info("discord: the gateway is not connected in this worker; sending through Discord's REST API")
        return rest

    async def send_to(self, address: Address, message: Outgoing) -> None:
        await (await self.sender()).send_to(address, message)

    async def tell_unreachable(self, address: Address, reason: str) -> None:
        await (await self.sender()).tell_unreachable(address, reason)


class _StandbyAwareDesk:
    """The Discord desk as the router sees it: posted through whichever connector can send."""

    def __init__(self, holder: GatewayHolder) -> None:
        self._holder = holder

    async def post(self, message: Outgoing) -> None:
        await (await self._desk()).post(message)

    async def remove(self, posts: Sequence[DeskPost]) -> Removal:
        """An erasure's desk copies; raises `Retry` when no connector can send (the copies
        then stay queued for the next try, `HandoffService.remove_desk_copies`)."""
        return await (await self._desk()).remove(posts)

    async def _desk(self) -> DiscordDesk:
        desk = (await self._holder.sender()).desk
        assert desk is not None, "both connectors are built with the same desk channel"
        return desk
