"""Where a ticket lives on a moderator desk: stored on the ticket row and in `desk_posts`,
so a restart (or another process) finds a ticket by location, never by a message's wording,
and an erasure can remove every desk copy of a fan's words.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class DeskLocation:
    """A ticket's place at the desk: its packet message and the thread its talk goes to.

    `desk` is "console", "slack" or "discord"; `thread` is a Slack thread ts (the packet's
    own ts) or a Discord thread id; `message` the packet message's ts or id.
    """

    desk: str
    channel: str
    thread: Optional[str] = None
    message: Optional[str] = None


@dataclass(frozen=True)
class DeskPost:
    """One message the bot posted at a desk about a ticket (packet, relay, notice), so an
    erasure can delete it: `channel` is where it is (a Slack channel, a Discord thread or
    channel id), `message` its Slack ts or Discord message id."""

    ticket: int
    desk: str
    channel: str
    message: str
