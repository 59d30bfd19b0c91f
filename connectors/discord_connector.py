"""Discord on discord.py: DMs, mentions, slash commands (an `app_commands.CommandTree`) and buttons.

Intents are kept small: guilds, guild messages and DMs. Message Content (privileged) is
asked for only when the moderator desk is on Discord, to read moderators' thread replies;
fans reach the bot without it, since Discord always shows a bot DMs and mentions of it.
A fan's DMs and slash commands are one conversation ("dm"); a mention starts one per channel.
"""

from __future__ import annotations

import asyncio
import io
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Optional

import discord
import yarl
from discord import app_commands

from bot.config import DiscordSettings
from bot.core import STORE_DOWN_TEXT, Bot
from bot.messages import Address, Incoming, Kind, Outgoing
from bot.metrics import METRICS
from bot.privacy.database import StoreUnavailable
from connectors.base import HANDLING_FAILED_TEXT, NETWORK_ERRORS, ConnectorError, replies_to, unreachable
from connectors.discord_desk import DiscordDesk
from connectors.discord_errors import delivery_errors
from connectors.discord_render import (
    ANSWER_NO,
    ANSWER_YES,
    CANCEL_ERASURE,
    CONFIRM_ERASURE,
    CONSENT_NO,
    CONSENT_YES,
    NO_PINGS,
    RATE_PREFIX,
    TICKET_ACTION_PREFIX,
    buttons,
    render,
)
from connectors.discord_text import to_plain
from connectors.health import Link
from connectors.intake import BUSY_TEXT, Intake
from connectors.long_results import as_file
from connectors.outbox import Unreachable
from connectors.router import Router

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Taken:
    """A fan's DM or mention while it waits in the intake: what answering it needs, as ids
    (not discord.py's Message, its author and channel objects, and the payload behind them)."""

    message_id: int
    channel_id: int
    guild_id: Optional[int]
    user: str
    conversation: str
    text: str  # already plain (`to_plain`, while the message's mentions were at hand)
    attachments: int
    #: A mention's author, to whom private replies go as a DM; None for a DM.
    author: Optional[discord.User | discord.Member] = None


DM = "dm"
SHUTDOWN_GRACE_SECONDS = 10.0
#: How long start-up waits for Discord's API before giving up with one line.
START_TIMEOUT_SECONDS = 30.0
#: A rate-limit bucket unused this long, with nothing in flight and its window over, is dropped
#: (`release_idle`); discord.py's own rule keeps each for 300 s.
BUCKET_IDLE_SECONDS = 10.0
#: Interaction tokens last 15 minutes; keep a margin.
INTERACTION_TTL_SECONDS = 14 * 60
UNKNOWN_BUTTON_TEXT = "Sorry, I don't recognise that button (it may be from an older version of me). Please type your request instead."
DMS_CLOSED_TEXT = (
    "I couldn't send you that privately because your direct messages are closed. "
    "Use the slash command instead (for example /my-data): its answer is visible only to you."
)


def point_client_at(api_base_url: str, gateway_url: str) -> None:
    """discord.py keeps its endpoints in class attributes; a stand-in replaces them."""
    discord.http.Route.BASE = api_base_url.rstrip("/")
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)


class DiscordConnector:
    name = "discord"
    #: What a fan may send: Discord lets Nitro users write 4,000 characters (the 2,000 limit is
    #: for what the bot sends, see discord_render); the core also applies [assistant] max_message_chars.
    max_message_chars = 4000

    def __init__(
        self,
        settings: DiscordSettings,
        token: str,
        router: Router,
        desk_channel: Optional[str] = None,
        guild_ready_timeout: float = 2.0,
    ) -> None:
        point_client_at(settings.api_base_url, settings.gateway_url)
        self._settings = settings
        self._token = token
        self._router = router
        intents = discord.Intents.none()
        intents.guilds = True
        intents.guild_messages = True
        intents.dm_messages = True
        intents.message_content = desk_channel is not None
        # The assistant never joins voice: discord.py's start-up warnings that the voice
        # libraries (PyNaCl, davey) are missing would be the only lines an operator sees.
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
        # No message cache (discord.py keeps the last 1,000 by default, fans' words included): each
        # message is handled as it arrives and never looked up again.
        self.client = discord.Client(
            intents=intents, allowed_mentions=NO_PINGS, guild_ready_timeout=guild_ready_timeout, max_messages=None
        )
        _guard_parsers(self.client)
        self.served = False  # set at the first READY: a crash after that is restarted (connectors.supervise)
        self.tree = app_commands.CommandTree(self.client)
        role = int(settings.moderator_role) if settings.moderator_role.isdigit() else None
        self.desk = DiscordDesk(self.client, int(desk_channel), role) if desk_channel else None
        self._interactions: dict[int, tuple[float, discord.Interaction]] = {}  # fan id -> their latest
        self._interactions_swept = time.monotonic()
        self._bot: Optional[Bot] = None
        self._in_flight: set[asyncio.Task[Any]] = set()
        self._intake: Intake[_Taken] = Intake(self._answer_taken, platform="discord")
        self._synced = False
        self._sync_task: Optional[asyncio.Future[None]] = None
        self.ready = asyncio.Event()
        self._register()

    # Lifecycle -----------------------------------------------------------------------------

    async def run(self, bot: Bot) -> None:
        self._bot = bot
        if self.desk is not None:  # the desk reads ticket locations from the store, and erases its copies
            self.desk.bind(bot.handoff.tickets)
            bot.handoff.use_desk_copies(self.desk)
        await self._login()
        try:
            await self.client.connect(reconnect=True)
        except discord.LoginFailure:
            raise ConnectorError("discord: the token was refused; check DISCORD_TOKEN") from None
        except discord.PrivilegedIntentsRequired:
            raise ConnectorError(
                "discord: the Message Content intent is not enabled for this bot; enable it in the developer "
                "portal (it is needed to read moderators' replies in desk threads)"
            ) from None

    async def open_rest(self, bot: Bot) -> None:
        """Logs in for Discord's REST API only, without a gateway session: how a standby worker
        (`connectors.discord_gateway`) sends to fans and to the desk while another worker holds
        the gateway. Every send below is a REST call (DMs: `POST /users/@me/channels`, then
        `POST /channels/{id}/messages`; the desk's messages and threads the same way), so it
        needs no gateway state; a REST client receives no events, so nothing here is answered
        twice. Raises `ConnectorError` (one line) when the API or the token fails."""
        self._bot = bot
        if self.desk is not None:
            self.desk.bind(bot.handoff.tickets)
        await self._login()

    async def _login(self) -> None:
        """`Client.login`: `GET /users/@me` with the token; one-line `ConnectorError`s."""
        try:
            # An API that accepts the connection but never answers must not hang start-up.
            await asyncio.wait_for(self.client.login(self._token), START_TIMEOUT_SECONDS)
        except NETWORK_ERRORS as error:
            raise unreachable("discord", self._settings.api_base_url, "DISCORD_API_BASE_URL ([discord] api_base_url)", error) from None
        except discord.DiscordServerError as error:
            raise ConnectorError(f"discord: the API at {self._settings.api_base_url} failed the login (HTTP {error.status}); try again later") from None
        except discord.LoginFailure:
            raise ConnectorError("discord: the token was refused; check DISCORD_TOKEN") from None

    async def aclose(self) -> None:
        """Lets messages taken and replies being worked on go out (for `SHUTDOWN_GRACE_SECONDS`),
        then closes the client."""
        if self._sync_task is not None:
            self._sync_task.cancel()
        deadline = time.monotonic() + SHUTDOWN_GRACE_SECONDS
        left = await self._intake.drain(SHUTDOWN_GRACE_SECONDS)
        if left:
            logger.warning("discord: %d message(s) taken were not answered before shutdown", left)
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=max(0.0, deadline - time.monotonic()))
        if not self.client.is_closed():
            await self.client.close()

    async def link(self) -> Link:
        """For `/readyz`: the gateway session is up (READY received, socket open)."""
        client = self.client
        return Link(client.is_ready() and not client.is_closed() and client.ws is not None and client.ws.open)

    @property
    def logged_in(self) -> bool:
        """Whether REST calls can be made: logged in (the gateway may be reconnecting)."""
        return self.client.user is not None and not self.client.is_closed()

    def release_idle(self, idle_seconds: float = BUCKET_IDLE_SECONDS) -> int:
        """Drops discord.py's rate-limit buckets nobody used for `idle_seconds`; returns how
        many. discord.py keeps one per route and channel written to (a DM: one per fan) until
        300 s after its last request, and looks for old ones only when it makes a new one past
        256 (discord/http.py, `HTTPClient.get_ratelimit`, `Ratelimit.is_inactive`): after a
        burst of 2,500 fans they stayed, scattered over the allocator's arenas (bench/soak.py).
        A bucket with a request in flight or waiting, or whose rate-limit window is still
        running, is kept; a dropped one is made afresh by the next request (limit 1 until
        Discord's headers say more), as for a channel never written to."""
        http = self.client.http
        over = getattr(http, "_global_over", None)  # an Event once logged in (discord.utils.MISSING before)
        if not isinstance(over, asyncio.Event) or not over.is_set():  # not logged in, or a global rate limit
            return 0
        now = asyncio.get_running_loop().time()
        idle = [
            key for key, bucket in http._buckets.items()
            if bucket.outgoing == 0 and not bucket._pending_requests and not bucket._sleeping.locked()
            and (bucket.expires is None or bucket.expires < now) and now - bucket._last_request >= idle_seconds
        ]  # fmt: skip
        for key in idle:
            del http._buckets[key]
        return len(idle)

    async def reset(self) -> None:
        """After a crash: close the client and clear its state, so `run` logs in afresh
        (discord.py's `Client.clear` makes a closed client reusable)."""
        if not self.client.is_closed():
            await self.client.close()
        self.client.clear()
        # Closing the HTTP session closed its TCPConnector too, and `HTTPClient.static_login`
        # would reuse that closed connector ("Session is closed"); MISSING makes it create one.
        self.client.http.connector = discord.utils.MISSING
        # `close` also set the client's loop to MISSING, and `login` re-initialises it only
        # from its first-use sentinel: initialise it again the way `login` would.
        await self.client._async_setup_hook()  # noqa: SLF001

    def _register(self) -> None:
        self.client.event(self.on_ready)
        self.client.event(self.on_message)
        self.client.event(self.on_interaction)
        self.client.event(self.on_error)  # replaces discord.py's default: see `on_error`
        tree = self.tree
        tree.error(self._command_failed)

        @tree.command(name="human", description="Talk to a human moderator (or: cancel)")
        @app_commands.describe(action="cancel: go back to the AI assistant")
        @app_commands.choices(action=[app_commands.Choice(name="cancel", value="cancel")])
        async def human(interaction: discord.Interaction, action: Optional[str] = None) -> None:
            await self._slash(interaction, f"/human {action or ''}")

        @tree.command(name="forget-me", description="Erase everything the assistant keeps about you")
        async def forget_me(interaction: discord.Interaction) -> None:
            await self._slash(interaction, "/forget-me")

        @tree.command(name="my-data", description="See everything the assistant keeps about you (only you see it)")
        async def my_data(interaction: discord.Interaction) -> None:
            await self._slash(interaction, "/my-data")

        @tree.command(name="privacy", description="What the assistant keeps, and turning logging on or off")
        @app_commands.describe(logging="on or off: whether your conversation is kept (redacted, encrypted)")
        @app_commands.choices(logging=[app_commands.Choice(name="on", value="on"), app_commands.Choice(name="off", value="off")])
        async def privacy(interaction: discord.Interaction, logging: Optional[str] = None) -> None:
            await self._slash(interaction, f"/privacy {logging or ''}")

        @tree.command(name="why", description="Why the assistant gave its last answer")
        async def why(interaction: discord.Interaction) -> None:
            await self._slash(interaction, "/why")

        @tree.command(name="feedback", description="Rate the assistant's last answer (only the rating is kept, never the text)")
        @app_commands.describe(rating="good or bad")
        @app_commands.choices(rating=[app_commands.Choice(name="good", value="good"), app_commands.Choice(name="bad", value="bad")])
        async def feedback(interaction: discord.Interaction, rating: str) -> None:
            await self._slash(interaction, f"/feedback {rating}")

    async def on_ready(self) -> None:
        """Serving from here. The slash commands are synced once per process (READY comes again
        after a full reconnect), before serving as always; a sync Discord refuses for now (a
        5xx, a rate limit, the network) no longer keeps the connector from serving (DMs and
        mentions work without it) and is tried again in the background, not forgotten."""
        if not self._synced and (self._sync_task is None or self._sync_task.done()) and not await self._sync_once():
            self._sync_task = asyncio.ensure_future(self._sync_again())
        self.served = True
        self.ready.set()

    async def _sync_once(self) -> bool:
        """True when the commands are synced, or Discord refused them for good (logged)."""
        try:
            if self._settings.guild_id:
                guild = discord.Object(id=int(self._settings.guild_id))
                self.tree.copy_global_to(guild=guild)
                await self.tree.sync(guild=guild)
            else:
                await self.tree.sync()
        except Exception as error:
            status = error.status if isinstance(error, discord.HTTPException) else None
            if status is not None and status < 500 and status != 429:
                logger.error("discord: syncing slash commands was refused (HTTP %s); the commands may be out of date", status)
                self._synced = True  # trying again cannot help
                return True
            if status is None and not isinstance(error, NETWORK_ERRORS):
                raise
            logger.warning("discord: syncing slash commands failed (%s); trying again in the background", status or type(error).__name__)
            return False
        self._synced = True
        logger.info("discord connector ready; slash commands synced")
        return True

    async def _sync_again(self, first_wait: float = 5.0) -> None:
        wait = first_wait
        while not self.client.is_closed():
            await asyncio.sleep(wait)
            if await self._sync_once():
                return
            wait = min(wait * 2, 300.0)

    # From Discord ------------------------------------------------------------------------------

    async def on_message(self, message: discord.Message) -> None:
        """A fan's DM or mention is taken into the intake as a small record and this returns,
        so discord.py's Message is freed at once (`connectors.intake`); a moderator's message
        in a desk thread is handled here, as before."""
        if message.author.bot:
            return  # our own messages and other bots
        if self._at_the_desk(message):
            if self._bot is not None and self.desk is not None and await self._bot.deliveries.first_time(f"discord:message:{message.id}"):
                await self.desk.on_thread_message(self._bot, self._router, message)
            return
        attachments = len(message.attachments)
        if message.guild is None:
            text = to_plain(message, client=self.client)
            taken = _Taken(message.id, message.channel.id, None, str(message.author.id), DM, text, attachments)
        elif self.client.user is not None and self.client.user in message.mentions:
            text = message.content
            for form in (f"<@{self.client.user.id}>", f"<@!{self.client.user.id}>"):
                text = text.replace(form, "")
            plain = to_plain(message, text, self.client).strip()
            channel = message.channel.id
            taken = _Taken(message.id, channel, message.guild.id, str(message.author.id), str(channel), plain, attachments, message.author)
        else:
            return  # channel chatter: the assistant answers mentions only
        if not self._intake.offer(taken.user, taken):  # full: the fan is told at once, honestly
            logger.warning("discord: the intake is full; a fan was asked to write again later")
            await self._router.deliver([Outgoing(Kind.ERROR, BUSY_TEXT)], self._answer_for(taken), Address(self.name, taken.user, taken.conversation))

    def _replying_to(self, taken: _Taken) -> discord.PartialMessage:
        """The fan's message to reply to, from its ids alone (no API call)."""
        kind = discord.ChannelType.private if taken.guild_id is None else None
        return self.client.get_partial_messageable(taken.channel_id, guild_id=taken.guild_id, type=kind).get_partial_message(taken.message_id)

    def _answer_for(self, taken: _Taken) -> Callable[[Outgoing], Awaitable[None]]:
        author = taken.author
        if author is None:
            return lambda reply: self._reply(self._replying_to(taken), reply)

        async def answer(reply: Outgoing) -> None:  # a mention: private kinds go to the fan's DMs
            if not reply.private:
                await self._reply(self._replying_to(taken), reply)
            elif not await self._dm(author, reply):
                await self._replying_to(taken).reply(render(Outgoing(reply.kind, DMS_CLOSED_TEXT))[0], mention_author=False, allowed_mentions=NO_PINGS)

        return answer

    async def _answer_taken(self, taken: _Taken) -> None:
        """The intake's turn for a taken message: deduplicated and answered. A failure outside
        the bot's own funnel is logged by type and the fan gets the error reply, as `on_error`
        does for events."""
        try:
            if self._bot is not None and not await self._bot.deliveries.first_time(f"discord:message:{taken.message_id}"):
                return  # delivered twice
            incoming = Incoming(self.name, taken.user, taken.conversation, taken.text, taken.attachments)
            await self._handle(incoming, self._answer_for(taken))
        except Exception as failure:
            logger.error("handling a discord message event failed: %s", type(failure).__name__)
            reply = Outgoing(Kind.ERROR, STORE_DOWN_TEXT if isinstance(failure, StoreUnavailable) else HANDLING_FAILED_TEXT)
            await self._tell_failure(self._reply(self._replying_to(taken), reply))

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """Button clicks (slash commands are the tree's): erasure confirmation, yes/no answers,
        ratings and the desk. Every click is answered within Discord's 3 seconds (an unanswered
        one shows the clicker "This interaction failed"), one whose custom_id this bot does not
        understand with a one-line ephemeral error."""
        if interaction.type is not discord.InteractionType.component or interaction.data is None:
            return
        arrived = time.perf_counter()
        custom_id = str(interaction.data.get("custom_id", ""))
        rating, _, token = custom_id.removeprefix(RATE_PREFIX).partition(":")
        desk_action = custom_id.split(":")
        if custom_id in (CONFIRM_ERASURE, CANCEL_ERASURE):
            await self._slash(interaction, "/forget-me confirm" if custom_id == CONFIRM_ERASURE else "/forget-me cancel", arrived=arrived)
        elif custom_id in (ANSWER_YES, ANSWER_NO):  # the fan's answer to a pending yes/no question
            await self._slash(interaction, "yes" if custom_id == ANSWER_YES else "no", arrived=arrived)
        elif custom_id in (CONSENT_YES, CONSENT_NO):  # the consent question's own buttons (bot.consent)
            await self._slash(interaction, "yes" if custom_id == CONSENT_YES else "no", answers="consent", arrived=arrived)
        elif custom_id.startswith(RATE_PREFIX) and rating in ("good", "bad") and token:  # "Helpful" / "Not helpful"
            await self._rate(interaction, rating, token, arrived)
        elif len(desk_action) == 3 and custom_id.startswith(TICKET_ACTION_PREFIX) and self.desk is not None and self._bot is not None:
            await self.desk.on_button(self._bot, self._router, interaction, desk_action[1], desk_action[2],
                                      deferred=lambda: METRICS.acked(self.name, time.perf_counter() - arrived))
        else:  # a button of another version or app, or a forged custom_id: never "interaction failed"
            await interaction.response.send_message(UNKNOWN_BUTTON_TEXT, ephemeral=True)
            METRICS.acked(self.name, time.perf_counter() - arrived)

    async def _rate(self, interaction: discord.Interaction, rating: str, token: str, arrived: float) -> None:
        """Deferred at once, ephemeral (flags 64): the acknowledgement reaches only the fan who
        clicked. The conversation is the DM or the channel the answer is in, as for messages."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        METRICS.acked(self.name, time.perf_counter() - arrived)
        if self._bot is None:
            return
        conversation = DM if interaction.guild_id is None else str(interaction.channel_id)
        address = Address(self.name, str(interaction.user.id), conversation)
        replies = await self._bot.rate(address, token, rating)
        await self._router.deliver(replies, lambda reply: self._followup(interaction, reply), address, self._bot)

    async def _slash(
        self, interaction: discord.Interaction, text: str, answers: Optional[str] = None, arrived: Optional[float] = None
    ) -> None:
        """Deferred at once (within Discord's 3 seconds); results follow, visible to the fan only."""
        arrived = time.perf_counter() if arrived is None else arrived
        await interaction.response.defer(ephemeral=True, thinking=True)
        METRICS.acked(self.name, time.perf_counter() - arrived)
        self._remember_interaction(interaction)
        incoming = Incoming(self.name, str(interaction.user.id), DM, text.strip(), answers=answers)
        await self._handle(incoming, lambda reply: self._followup(interaction, reply))

    def _remember_interaction(self, interaction: discord.Interaction) -> None:
        """A fan's latest slash command, to reach them if their DMs are closed. Its token is
        valid for 15 minutes (Discord, "Receiving and Responding"), so older entries are
        useless and are dropped: the map stays bounded by recent activity."""
        now = time.monotonic()
        self._interactions[interaction.user.id] = (now, interaction)
        if len(self._interactions) % 256 == 0 or now - self._interactions_swept > 60:
            self._interactions_swept = now
            for user, (at, _) in list(self._interactions.items()):
                if now - at > INTERACTION_TTL_SECONDS:
                    del self._interactions[user]

    async def _handle(self, incoming: Incoming, answer: Callable[[Outgoing], Awaitable[None]]) -> None:
        if self._bot is None:
            return
        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
        try:
            replies = await replies_to(self._bot, incoming, self.max_message_chars, receipts=True)
            await self._router.deliver(replies, answer, incoming.address, self._bot)
        finally:
            self._in_flight.discard(task)

    # Failures outside the funnel ----------------------------------------------------------------
    # `replies_to` answers failures in the bot itself; these answer failures in the connector
    # around it (building the message, the dedupe, a click's own parsing, a deferral).

    async def on_error(self, event_method: str, /, *args: Any, **kwargs: Any) -> None:
        """Replaces discord.py's default handler (`Client.on_error`: a traceback at ERROR, which
        may quote the fan's words, and no answer): logged once by type, and the fan who wrote
        or clicked gets the `error` reply where they still can."""
        failure = sys.exc_info()[1]
        logger.error("handling a discord %s event failed: %s", event_method.removeprefix("on_"), type(failure).__name__)
        target = args[0] if args else None
        reply = Outgoing(Kind.ERROR, STORE_DOWN_TEXT if isinstance(failure, StoreUnavailable) else HANDLING_FAILED_TEXT)
        if isinstance(target, discord.Interaction):
            await self._answer_failure(target, reply)
        elif isinstance(target, discord.Message) and self._from_a_fan_to_us(target):
            await self._tell_failure(self._reply(target, reply))

    async def _command_failed(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        """The same for slash commands, whose errors go to `CommandTree.on_error` instead."""
        cause = error.original if isinstance(error, app_commands.CommandInvokeError) else error
        logger.error("handling a discord command event failed: %s", type(cause).__name__)
        await self._answer_failure(interaction, Outgoing(Kind.ERROR, HANDLING_FAILED_TEXT))

    async def _answer_failure(self, interaction: discord.Interaction, reply: Outgoing) -> None:
        """Not acknowledged yet: the `error` reply is the response. Deferred with "thinking…":
        a follow-up ends it. Otherwise the fan already has their answer."""
        if not interaction.response.is_done():
            await self._tell_failure(interaction.response.send_message(render(reply)[0], ephemeral=True, allowed_mentions=NO_PINGS))
        elif interaction.response.type is discord.InteractionResponseType.deferred_channel_message:
            await self._tell_failure(self._followup(interaction, reply))

    def _from_a_fan_to_us(self, message: discord.Message) -> bool:
        """A message the assistant would have answered: a fan's DM or mention (not a bot's, not
        a moderator's in a desk thread)."""
        if message.author.bot or self._at_the_desk(message):
            return False
        return message.guild is None or (self.client.user is not None and self.client.user in message.mentions)

    def _at_the_desk(self, message: discord.Message) -> bool:
        return isinstance(message.channel, discord.Thread) and self.desk is not None and message.channel.parent_id == self.desk.channel_id

    @staticmethod
    async def _tell_failure(sending: Awaitable[Any]) -> None:
        try:
            await sending
        except Exception as error:  # the platform refused too: nothing more to try
            logger.warning("the error reply could not be sent either: %s", type(error).__name__)

    # To Discord ----------------------------------------------------------------------------------
    # Every send below turns Discord's refusals into the outbox's terms (`delivery_errors`), so
    # the router retries what may pass later and reports what cannot.

    async def _reply(self, message: discord.Message | discord.PartialMessage, reply: Outgoing) -> None:
        pieces = render(reply)
        view = buttons(reply)
        with delivery_errors():
            for index, piece in enumerate(pieces):
                extra: dict[str, Any] = {"view": view} if view is not None and index == len(pieces) - 1 else {}
                await message.reply(piece, mention_author=False, allowed_mentions=NO_PINGS, **extra)

    @staticmethod
    async def _followup(interaction: discord.Interaction, reply: Outgoing) -> None:
        pieces = render(reply)
        view = buttons(reply)
        result = as_file(reply, len(pieces), "attached here")
        with delivery_errors():
            if result is not None:  # ephemeral follow-ups may carry files: only the fan sees it
                note = render(result.notice(reply))[0]
                await interaction.followup.send(note, file=discord.File(io.BytesIO(result.content), filename=result.filename),
                                                ephemeral=True, allowed_mentions=NO_PINGS)
                return
            for index, piece in enumerate(pieces):
                extra: dict[str, Any] = {"view": view} if view is not None and index == len(pieces) - 1 else {}
                await interaction.followup.send(piece, ephemeral=True, allowed_mentions=NO_PINGS, **extra)

    async def _dm(self, user: discord.User | discord.Member, reply: Outgoing) -> bool:
        """False when the fan's DMs are closed (logged without content)."""
        try:
            with delivery_errors():
                channel = user.dm_channel or await user.create_dm()
                pieces = render(reply)
                view = buttons(reply)
                result = as_file(reply, len(pieces), "attached here")
                if result is not None:
                    note = render(result.notice(reply))[0]
                    await channel.send(note, file=discord.File(io.BytesIO(result.content), filename=result.filename), allowed_mentions=NO_PINGS)
                    return True
                for index, piece in enumerate(pieces):
                    extra: dict[str, Any] = {"view": view} if view is not None and index == len(pieces) - 1 else {}
                    await channel.send(piece, allowed_mentions=NO_PINGS, **extra)
            return True
        except Unreachable as refused:
            if refused.reason != "dms_closed":
                raise
            logger.warning("a fan's direct messages are closed; a %s message could not be sent there", reply.kind.value)
            return False

    async def send_to(self, address: Address, message: Outgoing) -> None:
        """A message for a fan not being answered right now (a moderator's reply, a timeout
        notice): in their DM; with DMs closed, ephemerally through their latest slash command
        while its token lasts; otherwise `Unreachable` (the router tells the desk and the fan)."""
        user_id = int(address.user_id)
        with delivery_errors():
            user = self.client.get_user(user_id) or await self.client.fetch_user(user_id)
        if await self._dm(user, message):
            return
        at, interaction = self._interactions.get(user_id, (0.0, None))
        if interaction is None or time.monotonic() - at >= INTERACTION_TTL_SECONDS:
            raise Unreachable("dms_closed")
        await self._followup(interaction, message)

    async def tell_unreachable(self, address: Address, reason: str) -> None:
        """Asks the fan, in the channel where they last mentioned the assistant (pinging only
        them), to open their DMs; no word of the message itself. A fan who wrote only by DM
        or slash command has no such channel."""
        if not address.conversation_id.isdigit():
            raise Unreachable("no_other_place")
        text = DMS_CLOSED_NOTICE if reason == "dms_closed" else UNDELIVERABLE_NOTICE
        header, _, body = render(Outgoing(Kind.ERROR, text))[0].partition("\n")
        only_them = discord.AllowedMentions(everyone=False, roles=False, users=[discord.Object(int(address.user_id))], replied_user=False)
        with delivery_errors():
            channel = self.client.get_partial_messageable(int(address.conversation_id))
            await channel.send(f"{header}\n<@{int(address.user_id)}> {body}", allowed_mentions=only_them)


DMS_CLOSED_NOTICE = (
    "I have a message for you, but your direct messages are closed so I can't deliver it. "
    "Please allow direct messages from this server (server name > Privacy Settings > Direct Messages), "
    "then send me any message."
)
UNDELIVERABLE_NOTICE = "I have a message for you that I couldn't deliver privately. Please send me a direct message."


def _guard_parsers(client: discord.Client) -> None:
    """A malformed dispatch (a MESSAGE_CREATE without `channel_id`, an INTERACTION_CREATE
    missing a field after an API change, a bad GUILD_CREATE) is dropped and logged once per
    event type, by type only, instead of raising out of discord.py's gateway loop and taking
    the connection down. discord.py has no public hook for this (`on_error` covers only our
    event handlers), so its parser table is wrapped: `ConnectionState.parsers` maps each
    dispatch name to its parser and is what the gateway calls (discord/gateway.py,
    `received_message`)."""
    parsers = client._connection.parsers  # noqa: SLF001 - see the docstring
    reported: set[str] = set()
    for event, parse in list(parsers.items()):
        parsers[event] = _guarded(event, parse, reported)


def _guarded(event: str, parse: Callable[[Any], None], reported: set[str]) -> Callable[[Any], None]:
    def guarded(data: Any) -> None:
        try:
            parse(data)
        except Exception as error:
            if event not in reported:
                reported.add(event)
                logger.error("dropped a malformed %s dispatch from Discord (%s); later ones are dropped quietly", event, type(error).__name__)
            else:
                logger.debug("dropped a malformed %s dispatch (%s)", event, type(error).__name__)

    return guarded
