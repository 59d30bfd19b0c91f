"""Where moderators work: a protocol, so a Discord fan's ticket can be worked from Slack.

`Bot` returns desk-bound messages as `Outgoing(to="desk")`; whoever runs the bot hands
them to the configured desk (`[handoff] desk`). Moderators' lines come back through
`Bot.moderate`. The console desk prints; the Slack and Discord desks post to a channel.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from bot.handoff.locations import DeskPost
from bot.messages import Outgoing


class ModeratorDesk(Protocol):
    async def post(self, message: Outgoing) -> None:
        """Shows a ticket packet, a relayed fan message or an acknowledgement to moderators."""


class ConsoleDesk:
    """The desk on a terminal (or any line sink): one rendered line per message. A terminal
    keeps no messages the bot could delete, so it records none and removes none."""

    def __init__(self, write_line: Callable[[Outgoing], None]) -> None:
        self._write_line = write_line

    async def post(self, message: Outgoing) -> None:
        self._write_line(message)

    async def remove(self, posts: Sequence[DeskPost]) -> Removal:
        return Removal(failed=len(posts))


ERASED_TEXT = "[erased at the fan's request]"


@dataclass(frozen=True)
class Removal:
    """What became of a fan's desk copies on erasure."""

    deleted: int = 0  #: gone from the desk (deleted now, or already gone)
    edited: int = 0  #: could not be deleted: replaced by ERASED_TEXT
    failed: int = 0  #: could be neither deleted nor edited: still there as posted
    pending: int = 0  #: the desk did not answer (outage, rate limit): still queued, deleted at the next try

    def __add__(self, other: Removal) -> Removal:
        return Removal(self.deleted + other.deleted, self.edited + other.edited, self.failed + other.failed, self.pending + other.pending)

    @property
    def left(self) -> int:
        """Messages not deleted (edited or untouched)."""
        return self.edited + self.failed


class DeskUnavailable(Exception):
    """The desk's platform did not answer a removal (an outage, a rate limit, the network):
    nothing is decided about the copies, which stay queued for the next try."""


class DeskCopies(Protocol):
    async def remove(self, posts: Sequence[DeskPost]) -> Removal:
        """Deletes the bot's own desk messages (a Discord ticket thread too); where a message
        cannot be deleted, edits it to ERASED_TEXT; says how many of each and how many failed.
        Posts of another desk are counted as failed (this desk cannot reach them)."""
