"""Discord's message markup decoded once, at the edge, into plain text.

User mentions `<@123>` / `<@!123>` become the person's display name (never an id;
`@someone` when Discord did not resolve them), channels `<#123>` `#name`, roles `<@&123>`
`@role name`, custom emoji `<:name:123>` / `<a:name:123>` `:name:`, timestamps `<t:123:R>` a UTC
date (Discord docs, Reference, "Message Formatting").
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import discord

MARKUP = re.compile(r"<(@!?|@&|#)(\d+)>|<a?:(\w+):\d+>|<t:(-?\d+)(?::[tTdDfFR])?>")
SOMEONE = "@someone"


def to_plain(message: discord.Message, text: str | None = None, client: discord.Client | None = None) -> str:
    """`text` (default: the message's content) with its markup resolved through the message's
    own mentions, its guild's roles and channels (in a DM, the client's cached channels)."""
    people = {user.id: user.display_name for user in message.mentions}
    roles = {role.id: role.name for role in message.role_mentions}
    guild = message.guild

    def render(match: re.Match[str]) -> str:
        kind, ident, emoji, stamp = match.groups()
        if emoji is not None:
            return f":{emoji}:"
        if stamp is not None:
            try:
                return datetime.fromtimestamp(int(stamp), UTC).strftime("%Y-%m-%d %H:%M UTC")
            except (OverflowError, OSError, ValueError):  # past year 9999: no date to show, keep what the fan typed
                return match.group(0)
        number = int(ident)
        if kind in ("@", "@!"):
            return f"@{people[number]}" if number in people else SOMEONE
        if kind == "@&":
            role = roles.get(number) or (found.name if guild and (found := guild.get_role(number)) else "")
            return f"@{role}" if role else "@role"
        channel = guild.get_channel_or_thread(number) if guild else (client.get_channel(number) if client else None)
        name = getattr(channel, "name", None)
        return f"#{name}" if name else "#channel"

    return MARKUP.sub(render, message.content if text is None else text)
