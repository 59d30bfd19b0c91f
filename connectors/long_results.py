"""A private result too long for a couple of messages is delivered as a file, never cut.

A Slack `/my-data` of a fan with 400 stored turns is about 134,000 characters: 7 posts to
the slash command's `response_url`, which takes at most 5 (Slack, "Handling user
interaction": "you can use a response_url five times within 30 minutes"), so the newest
turns would be lost. Both connectors ask here whether a reply goes as a file instead: a
JSON file for `/my-data`, text for anything else, visible to the fan only (Slack: a file in
their DM with the app, with a private note where they asked; Discord: an ephemeral
attachment, or a DM attachment).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

from bot.messages import Kind, Outgoing

#: A private reply that renders to more pieces than this goes as a file.
MAX_PIECES = 2


@dataclass(frozen=True)
class ResultFile:
    filename: str
    content: bytes
    note: str  #: what the fan reads where they asked, in place of the long text

    def notice(self, message: Outgoing) -> Outgoing:
        """The note as a message: prose about the file, so rendered as a notice (a data
        export's code block is for the data itself), private like the result."""
        return replace(message, kind=Kind.PRIVACY_NOTICE, text=self.note)


def as_file(message: Outgoing, pieces: int, where: str) -> Optional[ResultFile]:
    """The file to send instead of `pieces` messages, or None to send the messages.
    `where`: how the fan finds the file ("attached here", "in our direct messages")."""
    if not message.private or pieces <= MAX_PIECES:
        return None
    filename = "my-data.json" if message.kind is Kind.DATA_EXPORT else f"{message.kind.value}.txt"
    what = "Everything I hold about you" if message.kind is Kind.DATA_EXPORT else "My answer"
    note = f"{what} is {len(message.text):,} characters long, too long for messages, so it is a file, {filename}, {where}; only you can see it."
    return ResultFile(filename, message.text.encode("utf-8"), note)
