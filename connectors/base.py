"""The connector contract: a platform is one module that runs the bot and closes cleanly."""

from __future__ import annotations

from typing import Protocol

from bot.core import Bot


class ConnectorError(RuntimeError):
    """A platform refused to start (bad token, port in use); one line, no secrets."""


class Connector(Protocol):
    name: str
    #: The platform's message length limit; longer fan messages get an `error` reply.
    max_message_chars: int

    async def run(self, bot: Bot) -> None:
        """Serves fans until the platform closes or `aclose` is called."""

    async def aclose(self) -> None:
        """Stops serving; safe to call more than once."""
