"""The moderator desk in a Discord channel: a message and a thread per ticket.

The ticket message carries Claim / Resolve buttons; everything about the ticket goes into
its thread, and a moderator's message in the thread reaches the fan on whatever platform
they are. Discord's composer takes a leading "/" for slash commands, so thread lines use
"!": `!unclaim`, `!resolve`, `!transfer @someone [name]`, `!claim [name]`, `!takeover [name]`.

The packet message and thread ids are stored on the ticket row when the packet is posted;
a thread message or a button finds its ticket there (never by a thread's name), and every
message posted about a ticket is recorded so an erasure can delete it, and the thread.
Who may act: members holding `[discord] moderator_role`; this desk's rule only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Optional, Union

import discord

from bot.core import Bot
from bot.handoff.actions import (
    Claim,
    DeskAction,
    DeskLineError,
    ModeratorAction,
    Reply,
    Resolve,
    Takeover,
    Transfer,
    TransferRequest,
    parse_line,
)
from bot.handoff.desk import ERASED_TEXT, DeskUnavailable, Removal
from bot.handoff.locations import DeskLocation, DeskPost
from bot.handoff.states import ACTIVE
from bot.handoff.ticket_store import Ticket, TicketStore
from bot.messages import Kind, Outgoing
from connectors.discord_errors import delivery_errors
from connectors.discord_render import NO_PINGS, buttons, render
from connectors.discord_text import to_plain
from connectors.router import Router
from connectors.slack_desk import closed_text

logger = logging.getLogger(__name__)

DESK = "discord"
PREFIX = "!"
UNKNOWN_MESSAGE, UNKNOWN_CHANNEL = 10008, 10003
#: Messages whose sent pieces are remembered for a retry (each entry is a few hundred bytes).
PROGRESS_KEPT = 256


def _raise_if_transient(error: discord.HTTPException) -> None:
    """A 5xx or a 429 decides nothing about a desk message: the removal is tried again later
    (`DeskUnavailable`) rather than counted as a copy left for good. (A 429 here outlasted
    discord.py's own waiting.)"""
    if error.status >= 500 or error.status == 429 or isinstance(error, discord.RateLimited):
        raise DeskUnavailable(f"discord answered {error.status}") from None


def _thread_name(ticket: Ticket) -> str:
    return f"Ticket #{ticket.id}"


async def send(target: discord.abc.Messageable, text: str, view: Optional[discord.ui.View] = None, nonce: Optional[str] = None) -> discord.Message:
    """`nonce`: discord.py sends it with `enforce_nonce`, so Discord returns the message already
    made with it in the past few minutes instead of a second one (Create Message)."""
    extra: dict[str, Any] = {"view": view} if view is not None else {}
    if nonce is not None:
        extra["nonce"] = nonce
    return await target.send(text, allowed_mentions=NO_PINGS, **extra)


def _packet_nonce(ticket: Ticket) -> str:
    """The same for every try at one ticket's packet, and no other message's (at most 25
    characters, Discord's limit): a try whose answer was lost after Discord made the message
    gets that message back instead of posting a second packet nobody would record."""
    return f"t{ticket.id}-{int(ticket.created_at.timestamp())}"[:25]


class DiscordDesk:
    def __init__(self, client: discord.Client, channel_id: int, moderator_role: Optional[int]) -> None:
        self._client = client
        self.channel_id = channel_id
        self._role = moderator_role
        self._tickets: Optional[TicketStore] = None
        #: id(message) -> (the message, pieces of it sent): see `post`.
        self._progress: dict[int, tuple[Outgoing, int]] = {}

    def bind(self, tickets: TicketStore) -> None:
        """The store the desk reads ticket locations from and records its posts in."""
        self._tickets = tickets

    @property
    def tickets(self) -> TicketStore:
        assert self._tickets is not None, "DiscordDesk.bind() first: the connector does it when it starts"
        return self._tickets

    # What the bot tells moderators -------------------------------------------------------

    async def post(self, message: Outgoing) -> None:
        """Posts `message` at the desk: a new ticket's packet as a message in the desk channel
        with the ticket's thread started from it, everything else into the ticket's thread.
        Discord's refusals come out in the outbox's terms (`delivery_errors`: a 5xx or a network
        failure is retried, not lost). The outbox retries the same `message` object; the pieces
        of it already sent are remembered (`_progress`), so a retry sends only the rest, the
        packet's buttons still on its last piece. Each message is recorded as soon as it is
        sent (an erasure finds it even if a later step fails), and the packet's location before
        its thread is started, so a retry continues the same ticket rather than posting a
        second packet. Nothing about a ticket erased meanwhile goes out but the erasure's notice."""
        number = int(message.ticket) if message.ticket and message.ticket.isdigit() else None
        with delivery_errors():
            ticket = await self.tickets.get(number) if number is not None else None
            if number is not None and ticket is None and message.kind is not Kind.HANDOFF_RESOLVED:
                return  # erased meanwhile (a packet waiting on an outage, say): only "was erased" may follow
            pieces = render(message)
            held = self._progress.get(id(message))
            done = held[1] if held is not None and held[0] is message else 0
            packet = message.kind is Kind.HANDOFF_TICKET and ticket is not None and (ticket.location is None or done > 0)
            if ticket is not None and ticket.location is None and message.kind is Kind.HANDOFF_TICKET:
                channel = await self._desk_channel()
                first = await send(channel, pieces[0], buttons(message) if len(pieces) == 1 else None, nonce=_packet_nonce(ticket))
                # A thread started from a message has that message's id (Discord, "Start Thread from Message").
                await self.tickets.place(ticket.id, DeskLocation(DESK, str(self.channel_id), str(first.id), str(first.id)))
                done = self._sent(message, 1)
                if not await self._recorded(ticket, first):
                    self._progress.pop(id(message), None)
                    return
                target: discord.abc.Messageable = await first.create_thread(name=_thread_name(ticket), auto_archive_duration=1440)
            else:
                target = await self._thread(ticket) or await self._desk_channel()
            for index in range(done, len(pieces)):
                view = buttons(message) if packet and index == len(pieces) - 1 else None
                sent = await send(target, pieces[index], view)
                self._sent(message, index + 1)
                if ticket is not None and not await self._recorded(ticket, sent):
                    break
            self._progress.pop(id(message), None)

    def _sent(self, message: Outgoing, count: int) -> int:
        """Remembers that `count` pieces of `message` went out (for the outbox's retry of it);
        bounded: a message that expired unsent is forgotten after `PROGRESS_KEPT` others."""
        self._progress[id(message)] = (message, count)
        while len(self._progress) > PROGRESS_KEPT:
            del self._progress[next(iter(self._progress))]
        return count

    async def _recorded(self, ticket: Ticket, sent: discord.Message) -> bool:
        """Records a desk message just sent about `ticket`; False (and it is removed at once)
        when the ticket was erased meanwhile."""
        orphans = await self.tickets.posted([DeskPost(ticket.id, DESK, str(sent.channel.id), str(sent.id))], datetime.utcnow())
        if orphans:  # erased while we posted
            await self.remove(orphans)
            return False
        return True

    async def _desk_channel(self) -> discord.TextChannel:
        channel = self._client.get_channel(self.channel_id) or await self._client.fetch_channel(self.channel_id)
        assert isinstance(channel, discord.TextChannel), "the desk must be a text channel"
        return channel

    async def _thread(self, ticket: Optional[Ticket]) -> Optional[discord.Thread]:
        """The ticket's stored thread (after a restart too). A packet whose thread is missing
        (never started because that step failed, or deleted at the desk) gets one now, from
        the packet. None when the ticket has no location, or its thread and packet are gone
        (404); other failures raise (and are retried)."""
        if ticket is None or ticket.location is None or not ticket.location.thread:
            return None
        thread_id = int(ticket.location.thread)
        thread = self._client.get_channel(thread_id)
        if thread is None:
            try:
                thread = await self._client.fetch_channel(thread_id)
            except discord.NotFound:
                if ticket.location.message != ticket.location.thread or ticket.location.channel != str(self.channel_id):
                    return None
                packet = (await self._desk_channel()).get_partial_message(thread_id)  # with its guild, as threads need
                try:
                    return await packet.create_thread(name=_thread_name(ticket), auto_archive_duration=1440)
                except discord.NotFound:  # the packet itself is gone (deleted at the desk)
                    return None
        return thread if isinstance(thread, discord.Thread) else None

    # Erasure ---------------------------------------------------------------------------------

    async def remove(self, posts: Sequence[DeskPost]) -> Removal:
        """Deletes each of the bot's messages (DELETE /channels/{id}/messages/{id}), thread
        messages first, then each ticket thread the bot created (DELETE /channels/{id}: a
        thread started from a message shares that message's id). Where Discord refuses
        (403, Missing Permissions), the message is edited to the erased marker instead."""
        outcome = Removal()
        desk = str(self.channel_id)
        ordered = sorted(posts, key=lambda p: (p.channel == desk, int(p.message) if p.message.isdigit() else 0))
        for post in ordered:
            outcome += await self._remove_one(post) if post.desk == DESK else Removal(failed=1)
        for post in ordered:
            if post.desk == DESK and post.channel == desk and post.message.isdigit():
                await self._delete_thread(int(post.message))
        return outcome

    async def _remove_one(self, post: DeskPost) -> Removal:
        message = self._client.get_partial_messageable(int(post.channel)).get_partial_message(int(post.message))
        try:
            await message.delete()
            return Removal(deleted=1)
        except discord.NotFound:  # 10008 Unknown Message / 10003 Unknown Channel: nothing left there
            return Removal(deleted=1)
        except discord.HTTPException as error:
            _raise_if_transient(error)
            logger.warning("could not delete a desk message: %s %s", error.status, error.code)
        try:
            await message.edit(content=ERASED_TEXT, view=None)
            return Removal(edited=1)
        except discord.HTTPException as error:
            _raise_if_transient(error)
            logger.warning("could not edit a desk message either: %s %s", error.status, error.code)
            return Removal(failed=1)

    async def _delete_thread(self, thread_id: int) -> None:
        try:
            await self._client.http.delete_channel(thread_id, reason="erased at the fan's request")
        except discord.NotFound:
            return  # no thread on that message (a top-level notice), or deleted already
        except discord.HTTPException as error:
            _raise_if_transient(error)
            logger.warning("could not delete a ticket thread: %s %s", error.status, error.code)

    # What moderators do --------------------------------------------------------------------

    def is_moderator(self, member: Union[discord.Member, discord.User, None]) -> bool:
        if self._role is None or not isinstance(member, discord.Member):
            return False
        return any(role.id == self._role for role in member.roles)

    async def on_thread_message(self, bot: Bot, router: Router, message: discord.Message) -> None:
        thread = message.channel
        assert isinstance(thread, discord.Thread)
        if thread.parent_id != self.channel_id:
            return
        ticket = await self.tickets.at_thread(DESK, str(self.channel_id), str(thread.id))
        bot_user = self._client.user
        if ticket is None and (bot_user is None or thread.owner_id != bot_user.id):
            return  # a thread moderators opened themselves: not about a ticket
        if ticket is None or ticket.status not in ACTIVE:
            await self._refuse_privately(message, closed_text(ticket))
            return
        try:
            action = self._typed(parse_line(message.content, PREFIX), message)
        except DeskLineError as error:
            await self._refuse_privately(message, str(error))
            return
        replies = await bot.moderate(ModeratorAction(str(message.author.id), action, ticket.id, self.is_moderator(message.author)))
        refusals = [r for r in replies if r.to == "desk" and r.kind is Kind.REFUSED]
        for refusal in refusals:
            await self._refuse_privately(message, refusal.text)
        await router.deliver([r for r in replies if r not in refusals])

    async def _refuse_privately(self, message: discord.Message, text: str) -> None:
        """Discord has ephemeral messages only for interaction responses (a plain message
        cannot be one: discord.py discussion #7050, Discord's EPHEMERAL flag is an
        interaction response flag), so a refusal of a thread message goes to the moderator's
        DMs, seen by them only; with their DMs closed, as a reply in the thread."""
        text = render(Outgoing(Kind.REFUSED, text, to="desk"))[0]
        try:
            await message.author.send(text, allowed_mentions=NO_PINGS)
            return
        except discord.HTTPException:
            pass
        try:
            await message.reply(text, mention_author=False, allowed_mentions=NO_PINGS)
        except discord.HTTPException as error:
            logger.warning("could not show a refusal at the desk: %s %s", error.status, error.code)

    def _typed(self, parsed: Union[DeskAction, TransferRequest], message: discord.Message) -> DeskAction:
        """Fills in what only Discord knows: display names, the transfer target and its role."""
        if isinstance(parsed, Claim) and not parsed.name:
            return Claim(message.author.display_name[:64])
        if isinstance(parsed, Takeover) and not parsed.name:
            return Takeover(message.author.display_name[:64])
        if isinstance(parsed, TransferRequest):
            raw = parsed.target
            digits = raw.removeprefix("<@").removeprefix("!").removesuffix(">")
            if not (raw.startswith("<@") and raw.endswith(">") and digits.isdigit()) or message.guild is None:
                raise DeskLineError(f"Transfer to a moderator: {PREFIX}transfer @someone [display name].")
            target = message.guild.get_member(int(digits)) or next((m for m in message.mentions if m.id == int(digits)), None)
            name = parsed.name or (target.display_name if target else "A moderator")
            return Transfer(digits, name[:64], self.is_moderator(target))
        if isinstance(parsed, Reply):  # Discord's markup decoded once: the fan sees names, never ids
            return Reply(to_plain(message, parsed.text, self._client))
        return parsed

    async def on_button(
        self, bot: Bot, router: Router, interaction: discord.Interaction, action: str, value: str,
        deferred: Callable[[], None] = lambda: None,
    ) -> None:
        """Claim / Resolve: answered at once (deferred, then `deferred()`: the ack metric); the
        ticket is the one stored at the clicked message (or its thread); refusals only to the
        presser (ephemeral)."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        deferred()
        ticket = None
        if interaction.message is not None:
            ticket = await self.tickets.at_message(DESK, str(self.channel_id), str(interaction.message.id))
        if ticket is None and isinstance(interaction.channel, discord.Thread):
            ticket = await self.tickets.at_thread(DESK, str(self.channel_id), str(interaction.channel.id))
        if ticket is None or str(ticket.id) != value or ticket.status not in ACTIVE:
            shown = ticket if ticket is not None and str(ticket.id) == value else None
            await interaction.followup.send(render(Outgoing(Kind.REFUSED, closed_text(shown), to="desk"))[0], ephemeral=True, allowed_mentions=NO_PINGS)
            return
        typed: DeskAction = Claim(interaction.user.display_name[:64]) if action == "claim" else Resolve()
        replies = await bot.moderate(ModeratorAction(str(interaction.user.id), typed, ticket.id, self.is_moderator(interaction.user)))
        refusals = [r for r in replies if r.to == "desk" and r.kind is Kind.REFUSED]
        for refusal in refusals:
            await interaction.followup.send(render(refusal)[0], ephemeral=True, allowed_mentions=NO_PINGS)
        if not refusals:
            await interaction.followup.send(f"Done: {action} ticket #{ticket.id}.", ephemeral=True)
        await router.deliver([r for r in replies if r not in refusals])
