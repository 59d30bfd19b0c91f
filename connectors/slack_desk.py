"""The moderator desk in a Slack channel: a message per ticket, its thread for the rest.

Each new ticket is posted with Claim / Resolve buttons; everything about that ticket
afterwards (relayed fan messages, claims, notices) goes into the ticket's thread, and a
moderator's reply in that thread goes to the fan, whatever platform the fan is on.
Slack's composer takes a leading "/" for its own slash commands, so thread lines use
"!" instead: `!unclaim`, `!resolve`, `!transfer @someone [name]`, `!claim [name]`.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any, Awaitable, Callable, Optional

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core import Bot
from bot.handoff.service import ModeratorAction
from bot.messages import Kind, Outgoing
from connectors.router import Router
from connectors.slack_render import CLAIM_TICKET, render

logger = logging.getLogger(__name__)

TICKET_NUMBER = re.compile(r"Ticket #(\d+)")
USER_MENTION = re.compile(r"^<@([A-Z0-9]+)(?:\|[^>]*)?>")
MODERATORS_CACHE_SECONDS = 60.0
Respond = Callable[..., Awaitable[Any]]


class SlackDesk:
    def __init__(self, client: AsyncWebClient, channel: str, moderator_usergroup: str = "") -> None:
        self._client = client
        self.channel = channel
        self._usergroup = moderator_usergroup
        self._threads: dict[str, str] = {}  # ticket number -> thread ts
        self._tickets: dict[str, str] = {}  # thread ts -> ticket number
        self._closed: set[str] = set()  # threads of resolved, cancelled or erased tickets
        self._moderators: tuple[float, frozenset[str]] = (0.0, frozenset())

    # What the bot tells moderators ----------------------------------------------------

    async def post(self, message: Outgoing) -> None:
        ticket = message.ticket
        thread = self._threads.get(ticket) if ticket else None
        for piece in render(message):
            answer = await self._client.chat_postMessage(channel=self.channel, thread_ts=thread, unfurl_links=False, **piece)
            if thread is None and ticket and message.kind is Kind.HANDOFF_TICKET:
                thread = str(answer["ts"])
                self._remember(ticket, thread)
        if ticket and thread and message.kind is Kind.HANDOFF_RESOLVED:
            self._close(ticket, thread)

    def _close(self, ticket: str, thread_ts: str) -> None:
        """A closed ticket's thread stays closed: a later ticket may reuse the number."""
        self._threads.pop(ticket, None)
        self._tickets.pop(thread_ts, None)
        self._closed.add(thread_ts)

    async def refuse(self, moderator_id: str, message: Outgoing, thread_ts: Optional[str], respond: Optional[Respond] = None) -> None:
        """Refusals go only to the person who tried, not to the whole desk: through the
        button's response_url when there is one (it works for non-members of the channel)."""
        for piece in render(message):
            if respond is not None:
                await respond(response_type="ephemeral", replace_original=False, **piece)
            else:
                await self._client.chat_postEphemeral(channel=self.channel, user=moderator_id, thread_ts=thread_ts, **piece)

    def _remember(self, ticket: str, thread_ts: str) -> None:
        self._threads[ticket] = thread_ts
        self._tickets[thread_ts] = ticket

    # What moderators do -----------------------------------------------------------------

    async def on_thread_reply(self, bot: Bot, router: Router, user: str, text: str, thread_ts: str) -> None:
        ticket = await self._ticket_of(thread_ts)
        if ticket is None:
            return  # a thread that is not about a ticket: moderators talking among themselves
        line = "/" + text[1:] if text.startswith("!") else text
        verified = await self.is_moderator(user)
        if line.lower().startswith("/transfer"):
            line, verified = await self._resolve_transfer_target(line, verified)
        elif line.lower().startswith("/claim") and len(line.split()) == 1:
            line = f"/claim {await self.display_name(user)}"
        await self._act(bot, router, ModeratorAction(user, line, int(ticket), verified), thread_ts)

    async def on_button(self, bot: Bot, router: Router, user: str, action_id: str, ticket: str, respond: Respond) -> None:
        if not ticket.isdigit():
            return
        verified = await self.is_moderator(user)
        line = f"/claim {await self.display_name(user)}" if action_id == CLAIM_TICKET else "/resolve"
        await self._act(bot, router, ModeratorAction(user, line, int(ticket), verified), self._threads.get(ticket), respond)

    async def _act(
        self, bot: Bot, router: Router, action: ModeratorAction, thread_ts: Optional[str], respond: Optional[Respond] = None
    ) -> None:
        replies = await bot.moderate(action)
        refusals = [r for r in replies if r.to == "desk" and r.kind is Kind.REFUSED]
        for refusal in refusals:
            try:
                await self.refuse(action.moderator_id, refusal, thread_ts, respond)
            except SlackApiError as error:
                logger.warning("could not show a refusal at the desk: %s", error.response.get("error"))
        await router.deliver([r for r in replies if r not in refusals])

    async def _resolve_transfer_target(self, line: str, verified: bool) -> tuple[str, bool]:
        """`/transfer <@U123> [name]`: the target must be a moderator too."""
        _, _, rest = line.partition(" ")
        mention = USER_MENTION.match(rest.strip())
        if mention is None:
            return "/transfer", verified  # refused by the core with the usage line
        target = mention.group(1)
        name = rest.strip()[mention.end() :].strip() or await self.display_name(target)
        return f"/transfer {target} {name}", verified and await self.is_moderator(target)

    async def _ticket_of(self, thread_ts: str) -> Optional[str]:
        """From memory, or (after a restart) from the ticket message at the top of the thread."""
        if thread_ts in self._tickets:
            return self._tickets[thread_ts]
        if thread_ts in self._closed:
            return None
        try:
            answer = await self._client.conversations_replies(channel=self.channel, ts=thread_ts, limit=1)
        except SlackApiError as error:
            logger.warning("could not read a desk thread: %s", error.response.get("error"))
            return None
        messages: list[dict[str, Any]] = answer.get("messages") or []
        found = TICKET_NUMBER.search(messages[0].get("text", "")) if messages else None
        if found is None:
            return None
        self._remember(found.group(1), thread_ts)
        return found.group(1)

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
