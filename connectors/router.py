"""Delivery of the bot's replies across platforms.

A reply goes to one of three places: back where the fan just wrote (the connector that
received the message renders it), to a fan somewhere else (a moderator's reply reaches a
Discord fan even when the desk is on Slack), or to the moderator desk. Connectors and
desks only know their own platform; the router knows who is who.
"""

from __future__ import annotations

import logging
from typing import Awaitable, Callable, Iterable, Optional, Protocol

from bot.handoff.desk import ModeratorDesk
from bot.messages import Address, Outgoing

logger = logging.getLogger(__name__)

Answer = Callable[[Outgoing], Awaitable[None]]


class FanChannel(Protocol):
    """A platform's way to reach a fan who is not the one being answered right now."""

    async def send_to(self, address: Address, message: Outgoing) -> None: ...


class Router:
    def __init__(self, desk: Optional[ModeratorDesk] = None) -> None:
        self._platforms: dict[str, FanChannel] = {}
        self.desk = desk

    def add_platform(self, platform: str, channel: FanChannel) -> None:
        self._platforms[platform] = channel

    async def deliver(self, replies: Iterable[Outgoing], answer: Optional[Answer] = None) -> None:
        """Sends each reply in order; `answer` renders a reply for the fan being answered.

        One failed delivery is logged (without content) and does not stop the others.
        """
        for reply in replies:
            try:
                await self._deliver_one(reply, answer)
            except Exception:
                logger.exception("could not deliver a %s message", reply.kind.value)

    async def _deliver_one(self, reply: Outgoing, answer: Optional[Answer]) -> None:
        if reply.to == "desk":
            if self.desk is None:
                logger.warning("a %s message for the moderator desk was dropped: no desk is running", reply.kind.value)
                return
            await self.desk.post(reply)
            return
        if reply.recipient is None and answer is not None:
            await answer(reply)
            return
        if reply.recipient is None:
            logger.warning("a %s message has no recipient and nobody to answer; dropped", reply.kind.value)
            return
        channel = self._platforms.get(reply.recipient.platform)
        if channel is None:
            logger.warning("a %s message for a %s fan was dropped: that connector is not running", reply.kind.value, reply.recipient.platform)
            return
        await channel.send_to(reply.recipient, reply)
