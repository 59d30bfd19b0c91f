"""Where moderators work: a protocol, so a Discord fan's ticket can be worked from Slack.

`Bot` returns desk-bound messages as `Outgoing(to="desk")`; whoever runs the bot hands
them to the configured desk (`[handoff] desk`). Moderators' lines come back through
`Bot.moderate`. The console desk prints; the Slack and Discord desks post to a channel.
"""

from __future__ import annotations

from typing import Callable, Protocol

from bot.messages import Outgoing


class ModeratorDesk(Protocol):
    async def post(self, message: Outgoing) -> None:
        """Shows a ticket packet, a relayed fan message or an acknowledgement to moderators."""


class ConsoleDesk:
    """The desk on a terminal (or any line sink): one rendered line per message."""

    def __init__(self, write_line: Callable[[Outgoing], None]) -> None:
        self._write_line = write_line

    async def post(self, message: Outgoing) -> None:
        self._write_line(message)
