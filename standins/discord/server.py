"""The Discord stand-in: one local aiohttp server with the gateway and the REST API; tests act as users through it."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Sequence
from typing import Any, Optional, Union

from aiohttp import web

from .control import _ControlMixin
from .gateway import _GatewayMixin
from .interactions import _InteractionsMixin
from .messages import _MessagesMixin
from .model import (
    API_VERSION,
    DEFAULT_APP_ID,
    DEFAULT_CHANNEL_ID,
    DEFAULT_GUILD_ID,
    DEFAULT_OWNER_ID,
    DEFAULT_TOKEN,
    ApiError,
    Json,
    SentMessage,
    _Connection,
    _custom_ids,
    _Guild,
    _Interaction,
    _iso,
    _RateLimit,
    _Session,
)
from .rest import _RestMixin
from .state import _StateMixin

log = logging.getLogger("standins.discord")


# --------------------------------------------------------------------------------------
# The stand-in
# --------------------------------------------------------------------------------------


class DiscordStandIn(_StateMixin, _GatewayMixin, _RestMixin, _MessagesMixin, _InteractionsMixin, _ControlMixin):
    """Discord's gateway and REST API on one local aiohttp server.

    One bot client at a time: the latest IDENTIFY is the session events go to.
    """

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        app_id: int = DEFAULT_APP_ID,
        bot_user_id: Optional[int] = None,
        bot_name: str = "FanBot",
        guild_id: int = DEFAULT_GUILD_ID,
        guild_name: str = "Stand-in Guild",
        channel_id: int = DEFAULT_CHANNEL_ID,
        channel_name: str = "general",
        heartbeat_interval: int = 41250,
        allowed_intents: Optional[int] = None,
        response_deadline: Optional[float] = 3.0,
        host: str = "127.0.0.1",
    ) -> None:
        self.token = token
        self.app_id = app_id
        self.bot_user_id = bot_user_id if bot_user_id is not None else app_id
        self.bot_name = bot_name
        self.heartbeat_interval = heartbeat_interval
        #: Intents the "developer portal" allows; None allows every privileged intent.
        self.allowed_intents = allowed_intents
        #: Seconds a bot has for the first interaction response (Discord: 3); None: no limit.
        self.response_deadline = response_deadline
        self.host = host
        self.port: Optional[int] = None

        # What tests read.
        self.sent: list[SentMessage] = []
        self.threads: list[Json] = []
        self.deleted: list[tuple[int, int]] = []  # (channel_id, message_id)
        self.deleted_channels: list[int] = []  # threads (or channels) the bot deleted
        #: (method, id) -> ApiError to answer with, see `fail`
        self._failures: dict[tuple[str, int], ApiError] = {}
        self.synced: list[Union[str, int]] = []  # "global" or a guild id, per sync call
        self.identifies = 0
        self.resumes = 0
        self.heartbeats = 0
        self.identified_intents: Optional[int] = None
        self.rate_limited = 0
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status)

        self._ids = itertools.count()
        self._last_id = 0
        self._users: dict[int, Json] = {}
        self._guilds: dict[int, _Guild] = {}
        self._channels: dict[int, Json] = {}  # guild channels, threads and DM channels
        self._dm_by_user: dict[int, int] = {}
        self._closed_dms: set[int] = set()
        self._denied: set[tuple[int, int]] = set()  # (channel id, permission bit), see deny()
        self._messages: dict[int, Json] = {}
        self._commands: dict[Optional[int], dict[str, Json]] = {}  # scope (None = global) -> name -> command
        self._command_ids: dict[tuple[Optional[int], str, int], int] = {}
        self._interactions: dict[int, _Interaction] = {}
        self._rate_limits: list[_RateLimit] = []
        self._outages: list[_RateLimit] = []  # `unavailable`: the next matching calls answer 503
        self._lost_answers: list[_RateLimit] = []  # `lose_answers`: done, then answered 503
        self._nonces: dict[str, tuple[int, float]] = {}  # enforced nonce -> (message id, when)
        self._sessions: dict[str, _Session] = {}
        self._session: Optional[_Session] = None
        self._pending: list[tuple[str, Json]] = []
        self._connections: dict[web.WebSocketResponse, _Connection] = {}
        self._waiters: list[asyncio.Future[None]] = []
        self._connected: Optional[asyncio.Event] = None
        self._gateway_open: Optional[asyncio.Event] = None
        self._runner: Optional[web.AppRunner] = None

        self._owner = self._user_payload(DEFAULT_OWNER_ID, "standin-owner")
        self._users[self.bot_user_id] = self._user_payload(self.bot_user_id, bot_name, bot=True)
        self.guild_id = guild_id
        self.channel_id = channel_id
        self.add_guild(guild_id, guild_name)
        self.add_channel(channel_id, channel_name, guild_id=guild_id)
        self._routes = self._build_routes()

    # ---------------------------------------------------------------- lifecycle

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("the stand-in is not started")
        return f"http://{self.host}:{self.port}"

    @property
    def api_base(self) -> str:
        return f"{self.base_url}/api/v{API_VERSION}"

    @property
    def gateway_url(self) -> str:
        return f"ws://{self.host}:{self.port}/gateway"

    async def start(self, port: int = 0, host: Optional[str] = None) -> DiscordStandIn:
        if host is not None:
            self.host = host
        self._connected = asyncio.Event()
        self._gateway_open = asyncio.Event()
        self._gateway_open.set()
        app = web.Application()
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/gateway/", self._gateway)
        app.router.add_route("*", r"/api/v{version:\d+}/{tail:.*}", self._rest)
        app.router.add_post("/_standin/dm", self._control_dm)
        app.router.add_post("/_standin/message", self._control_message)
        app.router.add_post("/_standin/slash", self._control_slash)
        app.router.add_post("/_standin/click", self._control_click)
        app.router.add_get("/_standin/sent", self._control_sent)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, port)
        await site.start()
        server = site._server  # aiohttp keeps the bound socket here
        assert server is not None and server.sockets  # type: ignore[attr-defined]
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        log.info("discord stand-in listening on %s", self.base_url)
        return self

    async def aclose(self) -> None:
        if self._gateway_open is not None:
            self._gateway_open.set()
        for ws in list(self._connections):
            await self._close_ws(ws, 1001, b"stand-in shutting down")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> DiscordStandIn:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ---------------------------------------------------------------- acting as users

    async def wait_until_connected(self, timeout: float = 10.0) -> None:
        """Until a client has identified and received READY and its GUILD_CREATEs."""
        assert self._connected is not None, "start() the stand-in first"
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"no discord client identified within {timeout}s") from None

    async def send_dm(self, user_id: int, content: str, *, reply_to: Optional[int] = None,
                      attachments: Sequence[str] = ()) -> int:
        """A user writes to the bot in their DM channel (MESSAGE_CREATE without guild_id);
        `attachments` are file names (a screenshot with a caption), up to 4,000 characters (Nitro)."""
        session = self._require_session()
        channel_id = self.dm_channel_id(user_id)
        message = self._user_message(user_id, channel_id, content, reply_to=reply_to, attachments=attachments)
        await self._dispatch(session, "MESSAGE_CREATE", message)
        return int(message["id"])

    async def send_guild_message(
        self,
        user_id: int,
        channel_id: Optional[int] = None,
        content: str = "",
        mention_bot: bool = False,
        bot: bool = False,
        *,
        reply_to: Optional[int] = None,
        attachments: Sequence[str] = (),
    ) -> int:
        """A member writes in a guild channel or thread; `mention_bot` prefixes "<@BOT> "."""
        session = self._require_session()
        channel_id = self.channel_id if channel_id is None else channel_id
        channel = self._channel(channel_id)
        if "guild_id" not in channel:
            raise ValueError(f"channel {channel_id} is a DM channel: use send_dm()")
        guild = self._guilds[int(channel["guild_id"])]
        if user_id not in guild.members:
            raise KeyError(f"user {user_id} is not a member of guild {guild.id}: add_member() first")
        if mention_bot:
            content = f"<@{self.bot_user_id}> {content}"
        message = self._user_message(user_id, channel_id, content, as_bot=bot, reply_to=reply_to, attachments=attachments)
        await self._dispatch(session, "MESSAGE_CREATE", message)
        return int(message["id"])

    async def edit_user_message(self, message_id: int, content: str) -> None:
        """A user edits their message: MESSAGE_UPDATE with the new content and edited_timestamp."""
        session = self._require_session()
        message = self._messages[message_id]
        message.update(content=content, edited_timestamp=_iso())
        await self._dispatch(session, "MESSAGE_UPDATE", self._gateway_message(message))

    async def delete_user_message(self, message_id: int) -> None:
        """A user deletes their message: MESSAGE_DELETE carries ids only (Discord docs, Gateway Events)."""
        self._require_session()
        await self._delete(self._messages[message_id])

    def deny(self, channel_id: int, permission: int) -> None:
        """Takes a permission (SEND_MESSAGES, CREATE_PUBLIC_THREADS, ...) from the bot in one
        channel, as a channel overwrite would: the REST calls that need it answer 403 50013."""
        self._denied.add((channel_id, permission))

    async def redeliver(self, message_id: int) -> None:
        """Dispatches a user's MESSAGE_CREATE again, same message id, next sequence number.

        Discord's gateway is at-least-once: after a RESUME it replays every dispatch after the
        client's last acknowledged sequence, and a client that processed an event but had not
        heartbeated its sequence sees it a second time (Discord developer docs, Gateway,
        "Resuming"). Bots must deduplicate by message id.
        """
        session = self._require_session()
        message = self._messages[message_id]
        await self._dispatch(session, "MESSAGE_CREATE", self._gateway_message(message))

    async def send_slash(
        self,
        name: str,
        user_id: int,
        options: Union[None, dict[str, Any], list[Json]] = None,
        channel_id: Optional[int] = None,
        guild: bool = True,
    ) -> int:
        """A user runs a synced slash command (INTERACTION_CREATE type 2); returns the interaction id."""
        session = self._require_session()
        channel_id, guild_id = self._place(user_id, channel_id, guild)
        command = self._find_command(name, guild_id)
        data: Json = {"id": command["id"], "name": name, "type": command.get("type", 1)}
        if "guild_id" in command:
            data["guild_id"] = command["guild_id"]
        opts, resolved = self._command_options(command, options, guild_id)
        if opts:
            data["options"] = opts
        if resolved:
            data["resolved"] = resolved
        interaction = self._new_interaction(2, user_id, channel_id, guild_id, name=name)
        await self._dispatch(session, "INTERACTION_CREATE", self._interaction_payload(interaction, data))
        return interaction.id

    async def click_button(
        self,
        user_id: int,
        custom_id: str,
        message_id: Optional[int] = None,
        channel_id: Optional[int] = None,
        guild: bool = True,
        *,
        component_type: int = 2,
        values: Optional[list[str]] = None,
    ) -> int:
        """A user clicks a component (INTERACTION_CREATE type 3); returns the interaction id.

        With the id of a message the bot sent, the custom_id must be on it. Without one (or
        with an unknown id) a minimal bot message carrying that button stands in, as for a
        button posted by an earlier process (persistent views)."""
        session = self._require_session()
        stored = self._messages.get(message_id) if message_id is not None else None
        if stored is not None:
            if custom_id not in set(_custom_ids(stored.get("components") or [])):
                raise LookupError(f"message {message_id} has no component with custom_id {custom_id!r}")
            channel_id = int(stored["channel_id"])
            guild = "guild_id" in self._channels[channel_id]
        channel_id, guild_id = self._place(user_id, channel_id, guild)
        interaction = self._new_interaction(3, user_id, channel_id, guild_id)
        if stored is None:
            component: Json = {"type": component_type, "custom_id": custom_id}
            component.update({"style": 1, "label": "..."} if component_type == 2 else {"options": [], "min_values": 1})
            stored = self._bot_message(channel_id, {"content": "", "components": [{"type": 1, "components": [component]}]}, [])
            stored["id"] = str(message_id or stored["id"])
            self._store(stored)
        interaction.message_id = int(stored["id"])
        data: Json = {"custom_id": custom_id, "component_type": component_type}
        if values is not None:
            data["values"] = values
        payload = self._interaction_payload(interaction, data)
        payload["message"] = self._gateway_message(stored)
        await self._dispatch(session, "INTERACTION_CREATE", payload)
        return interaction.id

    async def wait_for_sent(
        self,
        predicate: Optional[Callable[[SentMessage], bool]] = None,
        count: int = 1,
        timeout: float = 10.0,
    ) -> list[SentMessage]:
        """Every recorded SentMessage matching `predicate`, once there are at least `count`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = [s for s in self.sent if predicate is None or predicate(s)]
            if len(found) >= count:
                return found
            remaining = deadline - loop.time()
            if remaining <= 0:
                lines = "\n  ".join(s.summary() for s in self.sent) or "(nothing)"
                raise AssertionError(f"waited {timeout}s for {count} matching sent message(s), found "
                                     f"{len(found)}; the bot sent:\n  {lines}")
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, remaining)
            except TimeoutError:
                pass
