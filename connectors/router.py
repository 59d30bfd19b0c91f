"""Delivery of the bot's replies across platforms, through one outbox.

A reply goes to one of three places: back where the fan just wrote (the connector that
received the message renders it), to a fan somewhere else (a moderator's reply reaches a
Discord fan even when the desk is on Slack), or to the moderator desk. Connectors and
desks only know their own platform; the router knows who is who.

Every delivery goes through the `Outbox` (see connectors/outbox.py): in order per
conversation (per ticket at the desk), retried until delivered or expired. The core learns
each reply's outcome through `Receipts` (the disclosure is kept as shown only once
delivered). A fan the platform refuses for good (closed DMs, a deactivated account) is not
lost silently: the desk is told in the ticket's thread why (no content, no ids), and the fan
is asked, where they last wrote to the assistant, to open their DMs. With several bot
processes, "at most once per interval" holds across them (`share_notices`): the database
decides which process tells, not a map of one process.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable
from typing import Optional, Protocol

from bot.handoff.desk import ModeratorDesk
from bot.messages import Address, Kind, Outgoing
from connectors.outbox import DEFAULT_EXPIRY_SECONDS, Outbox, Outcome, Status, Unreachable, reason_text

logger = logging.getLogger(__name__)

Answer = Callable[[Outgoing], Awaitable[None]]
#: A fan refused for good is asked to open their DMs, and the desk told, at most this often
#: per fan and reason: a moderator typing on gets one notice, not one per line.
NOTICE_INTERVAL_SECONDS = 600.0
#: Records a key and answers True the first time any process offers it (`DeliveryKeys.first_time`).
FirstTime = Callable[[str], Awaitable[bool]]


class FanChannel(Protocol):
    """A platform's way to reach a fan who is not the one being answered right now."""

    async def send_to(self, address: Address, message: Outgoing) -> None: ...

    async def tell_unreachable(self, address: Address, reason: str) -> None:
        """Tells the fan, where they last wrote (`address.conversation_id`), that a message
        for them could not be delivered and how to fix it, without its content. Raises
        `Unreachable` when there is no such place (their DM was it)."""


class Receipts(Protocol):
    """Who wants to know what became of the replies to one fan message (`Bot`)."""

    async def delivered(self, address: Address, reply: Outgoing) -> None: ...

    async def undelivered(self, address: Address, reply: Outgoing) -> None: ...


def _failed(reason: str) -> asyncio.Future[Outcome]:
    future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
    future.set_result(Outcome(Status.FAILED, reason))
    return future


class Router:
    def __init__(self, desk: Optional[ModeratorDesk] = None, *, expiry_seconds: float = DEFAULT_EXPIRY_SECONDS) -> None:
        self._platforms: dict[str, FanChannel] = {}
        self.desk = desk
        self.outbox = Outbox(expiry_seconds)
        self._noticed: dict[Hashable, float] = {}
        self._notices: set[asyncio.Task[None]] = set()
        self._first_time: Optional[FirstTime] = None
        #: Told (platform, reason) once per ticket and window when a handoff's fan cannot be reached.
        self.on_unreachable: Optional[Callable[[str, str], None]] = None

    def share_notices(self, first_time: FirstTime) -> None:
        """Undeliverable notices are throttled across processes by `first_time` (the database;
        its keys are kept past the interval): at most one per interval window of all processes."""
        self._first_time = first_time

    def add_platform(self, platform: str, channel: FanChannel) -> None:
        self._platforms[platform] = channel

    async def deliver(
        self,
        replies: Iterable[Outgoing],
        answer: Optional[Answer] = None,
        origin: Optional[Address] = None,
        receipts: Optional[Receipts] = None,
    ) -> list[Outcome]:
        """Queues each reply, in order, and waits until each is delivered or given up on.

        `answer` renders a reply for the fan being answered, whose address is `origin` (their
        replies share one queue with moderators' messages to them); `receipts` hears each
        reply's outcome. One failed delivery is logged (without content) and stops no other.
        """
        futures = [self._queue(reply, answer, origin, receipts) for reply in replies]  # no await: order kept
        return list(await asyncio.gather(*futures)) if futures else []

    async def aclose(self) -> None:
        await self.outbox.aclose()
        for task in list(self._notices):
            task.cancel()

    def _queue(
        self, reply: Outgoing, answer: Optional[Answer], origin: Optional[Address], receipts: Optional[Receipts]
    ) -> asyncio.Future[Outcome]:
        kind = reply.kind.value
        if reply.to == "desk":
            desk = self.desk
            if desk is None:
                logger.warning("a %s message for the moderator desk was dropped: no desk is running", kind)
                return _failed("no_desk")
            return self.outbox.put(("desk", reply.ticket), lambda: desk.post(reply), reply.kind)
        if reply.recipient is None:
            if answer is None:
                logger.warning("a %s message has no recipient and nobody to answer; dropped", kind)
                return _failed("no_recipient")
            respond = answer

            async def answered(outcome: Outcome) -> None:
                if origin is not None and receipts is not None:
                    await (receipts.delivered if outcome.delivered else receipts.undelivered)(origin, reply)
                if outcome.status is Status.UNREACHABLE and origin is not None:
                    self._unreachable(origin, reply, outcome.reason, ask_fan=False)

            key: Hashable = ("fan", origin) if origin is not None else ("answer", id(answer))
            return self.outbox.put(key, lambda: respond(reply), reply.kind, answered)
        address = reply.recipient
        channel = self._platforms.get(address.platform)
        if channel is None:
            logger.warning("a %s message for a %s fan was dropped: that connector is not running", kind, address.platform)
            return _failed("no_connector")

        async def pushed(outcome: Outcome) -> None:
            if outcome.status is Status.UNREACHABLE:
                self._unreachable(address, reply, outcome.reason, ask_fan=True)

        return self.outbox.put(("fan", address), lambda: channel.send_to(address, reply), reply.kind, pushed)

    # A fan who cannot be reached ----------------------------------------------------------

    def _unreachable(self, address: Address, reply: Outgoing, reason: str, ask_fan: bool) -> None:
        """Tells the desk (when the message was about a ticket) and, for a message pushed to
        the fan's DM, the fan where they last wrote; each at most once per interval."""
        ask_fan = ask_fan and self._first_notice(("fan", address, reason))
        ticket = reply.ticket if reply.ticket and self.desk is not None and self._first_notice(("desk", reply.ticket, reason)) else None
        if not ask_fan and ticket is None:
            return
        task = asyncio.create_task(self._notify_once(address, reason, ask_fan, ticket), name="undeliverable-notice")
        self._notices.add(task)
        task.add_done_callback(self._notices.discard)

    def _first_notice(self, key: Hashable) -> bool:
        now = time.monotonic()
        for old in [k for k, at in self._noticed.items() if now - at > NOTICE_INTERVAL_SECONDS]:
            del self._noticed[old]
        if key in self._noticed:
            return False
        self._noticed[key] = now
        return True

    async def _notify_once(self, address: Address, reason: str, ask_fan: bool, ticket: Optional[str]) -> None:
        """This process's throttle said yes; with several processes, the shared one decides."""
        if self._first_time is not None:
            window = int(time.time() // NOTICE_INTERVAL_SECONDS)
            ask_fan = ask_fan and await self._first_time(f"unreachable:fan:{address.platform}:{address.user_id}:{reason}:{window}")
            if ticket is not None and not await self._first_time(f"unreachable:desk:{ticket}:{reason}:{window}"):
                ticket = None
            if not ask_fan and ticket is None:
                return
        if ticket is not None and self.on_unreachable is not None:
            self.on_unreachable(address.platform, reason)
        await self._notify(address, reason, ask_fan, ticket)

    async def _notify(self, address: Address, reason: str, ask_fan: bool, ticket: Optional[str]) -> None:
        told = False
        channel = self._platforms.get(address.platform)
        if ask_fan and channel is not None:
            outcome = await self.outbox.put(("notice", address), lambda: channel.tell_unreachable(address, reason), Kind.ERROR)
            told = outcome.delivered
        if ticket is not None and self.desk is not None:
            desk = self.desk
            notice = Outgoing(Kind.ERROR, unreachable_text(ticket, reason, told), to="desk", ticket=ticket)
            await self.outbox.put(("desk", ticket), lambda: desk.post(notice), notice.kind)


def unreachable_text(ticket: str, reason: str, told: bool) -> str:
    """The desk's notice: why the fan cannot be reached, and whether they were asked to fix it."""
    asked = (
        "I've asked them, where they last wrote to me, to open their direct messages."
        if told
        else "I could not tell them anywhere else."
    )
    return f"Ticket #{ticket}: your messages are not reaching the fan: {reason_text(reason)}. {asked}"


__all__ = ["Answer", "FanChannel", "Receipts", "Router", "Unreachable", "unreachable_text"]
