"""The moderator desk in a Slack channel: a message per ticket, its thread for the rest.

Each new ticket is posted with Claim / Resolve buttons; everything about that ticket
afterwards (relayed fan messages, claims, notices) goes into the ticket's thread, and a
moderator's reply in that thread goes to the fan, whatever platform the fan is on.
Slack's composer takes a leading "/" for its own slash commands, so thread lines use
"!" instead: `!unclaim`, `!resolve`, `!transfer @someone [name]`, `!claim [name]`,
`!takeover [name]`.

Where a ticket lives (channel, thread ts, packet ts) is stored on the ticket row when the
packet is posted; a thread line or a button finds its ticket there, in the database, never
by a message's wording or this process's memory. Every message posted about a ticket is
recorded, so an erasure can delete it (`remove`). Who may act: members of the moderator
user group, or of the desk channel; this desk's rule only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, Optional, Union

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

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
from connectors.router import Router
from connectors.slack_errors import TRANSIENT, delivery_errors
from connectors.slack_render import CLAIM_TICKET, render
from connectors.slack_text import display_name, to_plain

logger = logging.getLogger(__name__)

DESK = "slack"
PREFIX = "!"
MODERATORS_CACHE_SECONDS = 60.0
#: Slack errors meaning "nothing left to delete there" (chat.delete reference).
GONE = frozenset({"message_not_found", "thread_not_found"})
Respond = Callable[..., Awaitable[Any]]


def _raise_if_transient(error: SlackApiError) -> None:
    """Slack's rate limit or its own outage decides nothing about a desk message: the removal
    is tried again later (`DeskUnavailable`) rather than counted as a copy left for good."""
    status = getattr(error.response, "status_code", 200)
    if error.response.get("error") in TRANSIENT or status == 429 or status >= 500:
        raise DeskUnavailable(f"slack answered {error.response.get('error')}") from None


def closed_text(ticket: Optional[Ticket]) -> str:
    if ticket is None:
        return "This thread's ticket is closed or was erased: your message was not sent to anyone."
    return f"Ticket #{ticket.id} is {ticket.status.value}: your message was not sent to anyone."


class SlackDesk:
    def __init__(self, client: AsyncWebClient, channel: str, moderator_usergroup: str = "") -> None:
        self._client = client
        self.channel = channel
        self._usergroup = moderator_usergroup
        self._tickets: Optional[TicketStore] = None
        self._bot_user: Optional[str] = None
        self._moderators: tuple[float, frozenset[str]] = (0.0, frozenset())

    def bind(self, tickets: TicketStore) -> None:
        """The store the desk reads ticket locations from and records its posts in."""
        self._tickets = tickets

    @property
    def tickets(self) -> TicketStore:
        assert self._tickets is not None, "SlackDesk.bind() first: the connector does it when it starts"
        return self._tickets

    # What the bot tells moderators ----------------------------------------------------

    async def post(self, message: Outgoing) -> None:
        number = int(message.ticket) if message.ticket and message.ticket.isdigit() else None
        ticket = await self.tickets.get(number) if number is not None else None
        if number is not None and ticket is None and message.kind is not Kind.HANDOFF_RESOLVED:
            return  # erased meanwhile (a packet waiting on an outage, say): only "was erased" may follow
        thread = ticket.location.thread if ticket is not None and ticket.location is not None else None
        posted: list[str] = []
        for piece in render(message):
            with delivery_errors():  # a rate limit is retried by the router's outbox
                answer = await self._client.chat_postMessage(channel=self.channel, thread_ts=thread, unfurl_links=False, **piece)
            posted.append(str(answer["ts"]))
            if thread is None and ticket is not None and message.kind is Kind.HANDOFF_TICKET:
                thread = posted[0]
                await self.tickets.place(ticket.id, DeskLocation(DESK, self.channel, thread, thread))
        if ticket is not None:
            orphans = await self.tickets.posted([DeskPost(ticket.id, DESK, self.channel, ts) for ts in posted], datetime.utcnow())
            if orphans:  # erased while we posted
                await self.remove(orphans)

    async def refuse(self, moderator_id: str, message: Outgoing, thread_ts: Optional[str], respond: Optional[Respond] = None) -> None:
        """Refusals go only to the person who tried, not to the whole desk: through the
        button's response_url when there is one (it works for non-members of the channel)."""
        for piece in render(message):
            try:
                if respond is not None:
                    await respond(response_type="ephemeral", replace_original=False, **piece)
                else:
                    await self._client.chat_postEphemeral(channel=self.channel, user=moderator_id, thread_ts=thread_ts, **piece)
            except SlackApiError as error:
                logger.warning("could not show a refusal at the desk: %s", error.response.get("error"))

    # Erasure ------------------------------------------------------------------------------

    async def remove(self, posts: Sequence[DeskPost]) -> Removal:
        """chat.delete each of the bot's messages (replies first, the packet last); where
        Slack refuses (`cant_delete_message`), chat.update it to the erased marker."""
        outcome = Removal()
        for post in sorted(posts, key=lambda p: p.message, reverse=True):
            if post.desk != DESK:
                outcome += Removal(failed=1)
                continue
            outcome += await self._remove_one(post)
        return outcome

    async def _remove_one(self, post: DeskPost) -> Removal:
        try:
            await self._client.chat_delete(channel=post.channel, ts=post.message)
            return Removal(deleted=1)
        except SlackApiError as error:
            code = error.response.get("error")
            if code in GONE:
                return Removal(deleted=1)
            _raise_if_transient(error)
            logger.warning("could not delete a desk message: %s", code)
        try:
            await self._client.chat_update(channel=post.channel, ts=post.message, text=ERASED_TEXT, blocks=[])
            return Removal(edited=1)
        except SlackApiError as error:
            _raise_if_transient(error)
            logger.warning("could not edit a desk message either: %s", error.response.get("error"))
            return Removal(failed=1)

    # What moderators do -----------------------------------------------------------------

    async def on_thread_reply(self, bot: Bot, router: Router, user: str, text: str, thread_ts: str) -> None:
        ticket = await self.tickets.at_thread(DESK, self.channel, thread_ts)
        if ticket is None and not await self._bot_thread(thread_ts):
            return  # a thread that is not about a ticket: moderators talking among themselves
        if ticket is None or ticket.status not in ACTIVE:
            await self.refuse(user, Outgoing(Kind.REFUSED, closed_text(ticket), to="desk"), thread_ts)
            return
        try:
            action = await self._typed(parse_line(text, PREFIX), user)
        except DeskLineError as error:
            await self.refuse(user, Outgoing(Kind.REFUSED, str(error), to="desk"), thread_ts)
            return
        await self._act(bot, router, ModeratorAction(user, action, ticket.id, await self.is_moderator(user)), thread_ts)

    async def on_button(
        self, bot: Bot, router: Router, user: str, action_id: str, value: str, message: dict[str, Any], respond: Respond
    ) -> None:
        """Claim / Resolve on a packet: the ticket is the one stored at that message."""
        ticket = await self.tickets.at_message(DESK, self.channel, str(message.get("ts", "")))
        if ticket is None and message.get("thread_ts"):  # a long packet's buttons are on its last piece
            ticket = await self.tickets.at_thread(DESK, self.channel, str(message["thread_ts"]))
        if ticket is None or str(ticket.id) != value or ticket.status not in ACTIVE:
            await self.refuse(user, Outgoing(Kind.REFUSED, closed_text(ticket if ticket and str(ticket.id) == value else None), to="desk"), None, respond)
            return
        action: DeskAction = Claim(await self.display_name(user)) if action_id == CLAIM_TICKET else Resolve()
        thread = ticket.location.thread if ticket.location else None
        await self._act(bot, router, ModeratorAction(user, action, ticket.id, await self.is_moderator(user)), thread, respond)

    async def _typed(self, parsed: Union[DeskAction, TransferRequest], user: str) -> DeskAction:
        """Fills in what only Slack knows: display names, and the transfer target's id and rights."""
        if isinstance(parsed, Claim) and not parsed.name:
            return Claim(await self.display_name(user))
        if isinstance(parsed, TransferRequest):
            target = parsed.target
            if not (target.startswith("<@") and target.endswith(">")):
                raise DeskLineError(f"Transfer to a moderator: {PREFIX}transfer @someone [display name].")
            target_id = target[2:-1].split("|", 1)[0]
            name = parsed.name or await self.display_name(target_id)
            return Transfer(target_id, name, await self.is_moderator(target_id))
        if isinstance(parsed, Takeover) and not parsed.name:
            return Takeover(await self.display_name(user))
        if isinstance(parsed, Reply):  # Slack's markup decoded once: the fan sees names, never ids
            return Reply(await to_plain(parsed.text, lambda who: display_name(self._client, who)))
        return parsed

    async def _act(
        self, bot: Bot, router: Router, action: ModeratorAction, thread_ts: Optional[str], respond: Optional[Respond] = None
    ) -> None:
        replies = await bot.moderate(action)
        refusals = [r for r in replies if r.to == "desk" and r.kind is Kind.REFUSED]
        for refusal in refusals:
            await self.refuse(action.moderator_id, refusal, thread_ts, respond)
        await router.deliver([r for r in replies if r not in refusals])

    async def _bot_thread(self, thread_ts: str) -> bool:
        """Whether the thread hangs off one of the bot's own desk messages (or off a message
        deleted since): a ticket's thread whose ticket is gone. Asks Slack who wrote the
        parent; the parent's wording is never read."""
        try:
            if self._bot_user is None:
                self._bot_user = str((await self._client.auth_test())["user_id"])
            answer = await self._client.conversations_replies(channel=self.channel, ts=thread_ts, limit=1)
        except SlackApiError as error:
            return error.response.get("error") in GONE
        messages: list[dict[str, Any]] = answer.get("messages") or []
        return bool(messages) and messages[0].get("user") == self._bot_user

    async def is_moderator(self, user: str) -> bool:
        """Membership of the moderator user group, or of the desk channel; cached briefly."""
        fetched_at, members = self._moderators
        if time.monotonic() - fetched_at > MODERATORS_CACHE_SECONDS:
            try:
                if self._usergroup:
                    answer = await self._client.usergroups_users_list(usergroup=self._usergroup)
                    members = frozenset(answer.get("users") or [])
                else:
                    answer = await self._client.conversations_members(channel=self.channel, limit=1000)
                    members = frozenset(answer.get("members") or [])
                self._moderators = (time.monotonic(), members)
            except SlackApiError as error:
                logger.warning("could not check the moderator list: %s", error.response.get("error"))
                return False
        return user in members

    async def display_name(self, user: str) -> str:
        """The name the moderator chose in Slack; never their id."""
        try:
            profile = (await self._client.users_info(user=user))["user"].get("profile", {})
        except SlackApiError:
            return "A moderator"
        return str(profile.get("display_name") or profile.get("real_name") or "A moderator")[:64]
