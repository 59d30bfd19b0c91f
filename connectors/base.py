"""The connector contract: a platform is one module that runs the bot and closes cleanly."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from typing import Optional, Protocol

import aiohttp

from bot.core import Bot
from bot.messages import Incoming, Kind, Outgoing
from connectors.health import Link

logger = logging.getLogger(__name__)

#: What `unreachable` turns into one line: the network failing under an SDK's HTTP call.
#: Both SDKs speak HTTP through aiohttp.
NETWORK_ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientError, OSError, asyncio.TimeoutError)


#: The fan's answer when handling their message failed in a way the bot did not foresee.
HANDLING_FAILED_TEXT = (
    "Sorry, something went wrong on my side with that message. Please try again in a minute, "
    "or type /human to reach a person."
)


async def replies_to(bot: Bot, incoming: Incoming, max_chars: int, receipts: bool = False) -> list[Outgoing]:
    """The one error funnel of every connector: the bot's replies to a fan's message, or, when
    handling it raised, one `error` reply, so a fan is never left without an answer (nor a
    Discord command "thinking…"). Logged once, by the error's type: never the text or an id."""
    try:
        return await bot.handle(incoming, max_chars, receipts=receipts)
    except Exception as error:
        logger.error("handling a %s message failed: %s", incoming.platform, type(error).__name__)
        return [Outgoing(Kind.ERROR, HANDLING_FAILED_TEXT)]


class ConnectorError(RuntimeError):
    """A platform refused to start (bad token, port in use, API unreachable); one line, no secrets."""


def _cause(error: BaseException) -> str:
    """The network's reason in a few words, from the error or what it wraps."""
    seen: Optional[BaseException] = error
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError):
            return "connection refused"
        if isinstance(seen, socket.gaierror):
            return "host name not found"
        if isinstance(seen, (TimeoutError, asyncio.TimeoutError)):
            return "timed out"
        if isinstance(seen, ssl.SSLError):
            return f"TLS failed: {seen.reason or seen.strerror}"
        seen = getattr(seen, "os_error", None) or seen.__cause__
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def unreachable(platform: str, url: str, variable: str, error: BaseException) -> ConnectorError:
    """A platform API that cannot be reached at start-up, as one line (exit 2 in `bot`):
    which platform, where, why, and what to check; no traceback."""
    return ConnectorError(f"{platform}: cannot reach the API at {url} ({_cause(error)}); check the network or {variable}")


class Connector(Protocol):
    name: str
    #: The platform's message length limit; longer fan messages get an `error` reply.
    max_message_chars: int

    async def run(self, bot: Bot) -> None:
        """Serves fans until the platform closes or `aclose` is called."""

    async def aclose(self) -> None:
        """Stops serving; safe to call more than once."""

    async def link(self) -> Link:
        """Whether it is connected to its platform now, for `/readyz`."""
