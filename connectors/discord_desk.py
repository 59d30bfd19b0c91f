"""The moderator desk in a Discord channel: a message and a thread per ticket.

The ticket message carries Claim / Resolve buttons; everything about the ticket goes into
its thread, and a moderator's message in the thread reaches the fan on whatever platform
they are. Discord's composer takes a leading "/" for slash commands, so thread lines use
"!": `!unclaim`, `!resolve`, `!transfer @someone [name]`, `!claim [name]`.
"""

from __future__ import annotations

import logging
import re
from typing import Optional, Union

import discord

from bot.core import Bot
from bot.handoff.service import ModeratorAction
from bot.messages import Kind, Outgoing
from connectors.discord_render import NO_PINGS, buttons, render
from connectors.router import Router

logger = logging.getLogger(__name__)

TICKET_NUMBER = re.compile(r"Ticket #(\d+)")
USER_MENTION = re.compile(r"^<@!?(\d+)>")


async def send(target: discord.abc.Messageable, text: str, view: Optional[discord.ui.View] = None) -> discord.Message:
    if view is None:
        return await target.send(text, allowed_mentions=NO_PINGS)
    return await target.send(text, view=view, allowed_mentions=NO_PINGS)


class DiscordDesk:
    def __init__(self, client: discord.Client, channel_id: int, moderator_role: Optional[int]) -> None:
        self._client = client
        self.channel_id = channel_id
        self._role = moderator_role
        self._threads: dict[str, int] = {}  # ticket number -> thread id
        self._closed: set[int] = set()  # threads of resolved, cancelled or erased tickets

    # What the bot tells moderators -------------------------------------------------------

    async def post(self, message: Outgoing) -> None:
        ticket = message.ticket
        thread = await self._thread(ticket) if ticket else None
        pieces = render(message)
        if thread is None and ticket and message.kind is Kind.HANDOFF_TICKET:
            channel = self._client.get_channel(self.channel_id) or await self._client.fetch_channel(self.channel_id)
            assert isinstance(channel, discord.TextChannel), "the desk must be a text channel"
            first = await send(channel, pieces[0], buttons(message) if len(pieces) == 1 else None)
            thread = await first.create_thread(name=f"Ticket #{ticket}", auto_archive_duration=1440)
            self._threads[ticket] = thread.id
            for index, piece in enumerate(pieces[1:], start=2):
                await send(thread, piece, buttons(message) if index == len(pieces) else None)
            return
        target = thread or self._client.get_channel(self.channel_id) or await self._client.fetch_channel(self.channel_id)
        for piece in pieces:
            await send(target, piece)  # type: ignore[arg-type]
        if ticket and thread is not None and message.kind is Kind.HANDOFF_RESOLVED:
            # A closed ticket's thread stays closed: a later ticket may reuse the number.
            self._threads.pop(ticket, None)
            self._closed.add(thread.id)

    async def _thread(self, ticket: str) -> Optional[discord.Thread]:
        thread_id = self._threads.get(ticket)
        if thread_id is None:
            return None
        thread = self._client.get_channel(thread_id)
        if thread is None:
            try:
                thread = await self._client.fetch_channel(thread_id)
            except discord.HTTPException:
                return None
        return thread if isinstance(thread, discord.Thread) else None

    def ticket_of(self, thread: discord.Thread) -> Optional[str]:
        """From memory, or (after a restart) from the thread's name."""
        if thread.parent_id != self.channel_id or thread.id in self._closed:
            return None
        for ticket, thread_id in self._threads.items():
            if thread_id == thread.id:
                return ticket
        found = TICKET_NUMBER.fullmatch(thread.name or "")
        if found:
            self._threads[found.group(1)] = thread.id
            return found.group(1)
        return None

    # What moderators do --------------------------------------------------------------------

    def is_moderator(self, member: Union[discord.Member, discord.User, None]) -> bool:
        if self._role is None or not isinstance(member, discord.Member):
            return False
        return any(role.id == self._role for role in member.roles)

    async def on_thread_message(self, bot: Bot, router: Router, message: discord.Message) -> None:
        assert isinstance(message.channel, discord.Thread)
        ticket = self.ticket_of(message.channel)
        if ticket is None:
            return
        text = message.content.strip()
        line = "/" + text[1:] if text.startswith("!") else text
        verified = self.is_moderator(message.author)
        if line.lower().startswith("/transfer"):
            line, verified = self._transfer_line(message, line, verified)
        elif line.lower().startswith("/claim") and len(line.split()) == 1:
            line = f"/claim {message.author.display_name}"
        replies = await bot.moderate(ModeratorAction(str(message.author.id), line, int(ticket), verified))
        for refusal in [r for r in replies if r.to == "desk" and r.kind is Kind.REFUSED]:
            await message.reply(render(refusal)[0], allowed_mentions=NO_PINGS)
        await router.deliver([r for r in replies if not (r.to == "desk" and r.kind is Kind.REFUSED)])

    def _transfer_line(self, message: discord.Message, line: str, verified: bool) -> tuple[str, bool]:
        _, _, rest = line.partition(" ")
        mention = USER_MENTION.match(rest.strip())
        if mention is None or message.guild is None:
            return "/transfer", verified
        target = message.guild.get_member(int(mention.group(1)))
        named = next((m for m in message.mentions if m.id == int(mention.group(1))), None)
        name = rest.strip()[mention.end() :].strip() or (named.display_name if named else "A moderator")
        return f"/transfer {mention.group(1)} {name}", verified and self.is_moderator(target or named)

    async def on_button(self, bot: Bot, router: Router, interaction: discord.Interaction, action: str, ticket: str) -> None:
        """Claim / Resolve: answered at once (deferred), refusals only to the presser."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        verified = self.is_moderator(interaction.user)
        line = f"/claim {interaction.user.display_name}" if action == "claim" else "/resolve"
        replies = await bot.moderate(ModeratorAction(str(interaction.user.id), line, int(ticket), verified))
        refusals = [r for r in replies if r.to == "desk" and r.kind is Kind.REFUSED]
        for refusal in refusals:
            await interaction.followup.send(render(refusal)[0], ephemeral=True, allowed_mentions=NO_PINGS)
        if not refusals:
            await interaction.followup.send(f"Done: {action} ticket #{ticket}.", ephemeral=True)
        await router.deliver([r for r in replies if r not in refusals])
