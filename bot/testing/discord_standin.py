"""A local stand-in for Discord's gateway and REST API, for the real discord.py client.

It speaks the gateway protocol (HELLO, heartbeats, IDENTIFY -> READY + GUILD_CREATE, RESUME
with a replay buffer) over an aiohttp websocket and answers the REST routes a bot uses
(login, command sync, channel messages, DMs, threads, interaction callbacks and
follow-ups), with Discord's payload shapes as discord.py 2.7.1 parses them. Tests and
developers act as fans through `send_dm`, `send_guild_message`, `send_slash` and
`click_button`, and read what the bot sent from `sent`.

    async with DiscordStandIn() as standin:
        with point_discord_at(standin.api_base, standin.gateway_url):
            ...  # start a discord.Client with standin.token; await standin.send_dm(...)

Run `python -m bot.testing.discord_standin --port 3002` to try the bot by hand.

Nothing here logs message text at INFO or above.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import itertools
import json
import logging
import math
import re
import secrets
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, Iterator, Optional, Sequence, Union

from aiohttp import WSMsgType, web

log = logging.getLogger(__name__)

API_VERSION = 10
DISCORD_EPOCH_MS = 1_420_070_400_000

DEFAULT_TOKEN = "discord-test-token"
DEFAULT_APP_ID = 1_100_000_000_000_000_001
DEFAULT_GUILD_ID = 1_200_000_000_000_000_001
DEFAULT_CHANNEL_ID = 1_200_000_000_000_000_002
DEFAULT_OWNER_ID = 1_000_000_000_000_000_001

# Gateway intents (https://discord.com/developers/docs/events/gateway#gateway-intents).
GUILDS = 1 << 0
GUILD_MEMBERS = 1 << 1
GUILD_PRESENCES = 1 << 8
GUILD_MESSAGES = 1 << 9
DIRECT_MESSAGES = 1 << 12
MESSAGE_CONTENT = 1 << 15
PRIVILEGED_INTENTS = GUILD_MEMBERS | GUILD_PRESENCES | MESSAGE_CONTENT
_INTENT_NAMES = {GUILDS: "guilds", GUILD_MEMBERS: "members", GUILD_MESSAGES: "guild_messages",
                 DIRECT_MESSAGES: "dm_messages", MESSAGE_CONTENT: "message_content"}

# Message flags.
EPHEMERAL = 1 << 6
LOADING = 1 << 7

# Channel types.
GUILD_TEXT, DM, GUILD_NEWS, NEWS_THREAD, PUBLIC_THREAD, PRIVATE_THREAD = 0, 1, 5, 10, 11, 12
THREAD_TYPES = (NEWS_THREAD, PUBLIC_THREAD, PRIVATE_THREAD)

# Permission bits used for @everyone and the bot's managed role.
_EVERYONE_PERMISSIONS = sum(1 << b for b in (0, 6, 10, 11, 14, 15, 16, 18, 26, 31, 35, 36, 38))
_BOT_PERMISSIONS = _EVERYONE_PERMISSIONS | (1 << 13) | (1 << 34)  # + manage messages, manage threads
_ADMINISTRATOR = 1 << 3
_MANAGE_CHANNELS, _MANAGE_MESSAGES, _MANAGE_THREADS = 1 << 4, 1 << 13, 1 << 34
_ALL_PERMISSIONS = (1 << 51) - 1

_NAME_RE = re.compile(r"^[-_\w]{1,32}$")
_USER_MENTION = re.compile(r"<@!?(\d+)>")
_ROLE_MENTION = re.compile(r"<@&(\d+)>")

Json = dict[str, Any]


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(moment: Optional[datetime] = None) -> str:
    return (moment or _now()).isoformat()


# --------------------------------------------------------------------------------------
# Pointing discord.py at the stand-in
# --------------------------------------------------------------------------------------


class DiscordPointer:
    """What `point_discord_at` returns: call it (or leave its `with` block) to restore."""

    def __init__(self, old_base: str, old_gateway: Any) -> None:
        self._old = (old_base, old_gateway)
        self._restored = False

    def restore(self) -> None:
        if self._restored:
            return
        import discord.gateway
        import discord.http

        discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = self._old
        self._restored = True

    __call__ = restore

    def __enter__(self) -> "DiscordPointer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()


def point_discord_at(api_base: str, gateway_url: str) -> DiscordPointer:
    """Send discord.py's REST calls to `api_base` and its gateway connection to `gateway_url`.

    `Route.BASE` is the one REST base: channel messages, interaction callbacks and webhook
    follow-ups (discord/webhook/async_.py builds its URLs with the same `Route`) all use it.
    A plain `Client` connects straight to `DEFAULT_GATEWAY`, then to READY's
    `resume_gateway_url` when it resumes. Process-wide: restore it when done.
    """
    import discord.gateway
    import discord.http
    import yarl

    pointer = DiscordPointer(discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
    discord.http.Route.BASE = api_base.rstrip("/")
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)
    return pointer


# --------------------------------------------------------------------------------------
# Records and internal state
# --------------------------------------------------------------------------------------


@dataclass
class SentMessage:
    """One thing the bot sent: a channel message, an interaction response, a follow-up or an edit."""

    kind: str  # "message" | "interaction_response" | "followup" | "edit"
    channel_id: Optional[int]
    content: Optional[str]
    embeds: list[Json]
    components: list[Json]
    flags: int
    allowed_mentions: Optional[Json]
    message_reference: Optional[Json]
    interaction_id: Optional[int]
    callback_type: Optional[int]
    raw: Json
    message_id: Optional[int] = None
    files: list[str] = field(default_factory=list)

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)

    def summary(self) -> str:
        text = (self.content or "")[:60]
        return (f"{self.kind} channel={self.channel_id} message={self.message_id} interaction={self.interaction_id} "
                f"callback={self.callback_type} flags={self.flags} content={text!r}")

    def to_json(self) -> Json:
        return asdict(self)


@dataclass
class _Guild:
    id: int
    name: str
    owner_id: int
    joined_at: str
    roles: dict[int, Json] = field(default_factory=dict)
    members: dict[int, Json] = field(default_factory=dict)  # member payloads without "user"


@dataclass
class _Session:
    id: str
    intents: int
    shard: Optional[list[int]]
    seq: int = 0
    frames: list[Json] = field(default_factory=list)  # every dispatch, for RESUME replay
    ws: Optional[web.WebSocketResponse] = None
    live: bool = False  # READY or RESUMED has gone out on `ws`
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass
class _Connection:
    ws: web.WebSocketResponse
    request: web.Request
    session: Optional[_Session] = None
    closing: Optional[asyncio.Event] = None  # set once our own close() has finished


@dataclass
class _Interaction:
    id: int
    token: str
    type: int
    channel_id: int
    guild_id: Optional[int]
    user_id: int
    created: float
    name: Optional[str] = None
    message_id: Optional[int] = None  # the clicked message (components)
    response_type: Optional[int] = None
    original_id: Optional[int] = None
    loading: bool = False


@dataclass
class _RateLimit:
    pattern: re.Pattern[str]
    method: Optional[str]
    times: int
    retry_after: float
    is_global: bool


class ApiError(Exception):
    """A Discord error answer: HTTP status plus Discord's JSON error code and message."""

    def __init__(self, status: int, code: int, message: str, errors: Optional[Json] = None) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status, self.code, self.message, self.errors = status, code, message, errors

    def body(self) -> Json:
        body: Json = {"message": self.message, "code": self.code}
        if self.errors:
            body["errors"] = self.errors
        return body


def _form_error(field_name: str, code: str, message: str) -> ApiError:
    return ApiError(400, 50035, "Invalid Form Body", {field_name: {"_errors": [{"code": code, "message": message}]}})


def _json_response(payload: Any, status: int = 200, headers: Optional[dict[str, str]] = None) -> web.Response:
    # discord.py parses a body only when Content-Type is exactly "application/json" (no charset).
    all_headers = {"Content-Type": "application/json"}
    all_headers.update(headers or {})
    return web.Response(status=status, body=json.dumps(payload).encode(), headers=all_headers)


Handler = Callable[..., Awaitable[Any]]


# --------------------------------------------------------------------------------------
# The stand-in
# --------------------------------------------------------------------------------------


class DiscordStandIn:
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
        self._messages: dict[int, Json] = {}
        self._commands: dict[Optional[int], dict[str, Json]] = {}  # scope (None = global) -> name -> command
        self._command_ids: dict[tuple[Optional[int], str, int], int] = {}
        self._interactions: dict[int, _Interaction] = {}
        self._rate_limits: list[_RateLimit] = []
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

    async def start(self, port: int = 0, host: Optional[str] = None) -> "DiscordStandIn":
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

    async def __aenter__(self) -> "DiscordStandIn":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ---------------------------------------------------------------- world building

    def add_guild(self, guild_id: int, name: str, *, owner_id: int = DEFAULT_OWNER_ID) -> None:
        """A guild the bot is in, with @everyone (id = guild id) and the bot's managed role."""
        guild = _Guild(id=guild_id, name=name, owner_id=owner_id, joined_at=_iso())
        guild.roles[guild_id] = self._role_payload(guild_id, "@everyone", 0, _EVERYONE_PERMISSIONS)
        bot_role = self._snowflake()
        guild.roles[bot_role] = self._role_payload(bot_role, self.bot_name, 1, _BOT_PERMISSIONS, bot_id=self.bot_user_id)
        guild.members[self.bot_user_id] = self._member_payload([bot_role])
        self._guilds[guild_id] = guild
        self._queue_event("GUILD_CREATE", lambda: self._guild_create(guild))

    def add_channel(self, channel_id: int, name: str, guild_id: Optional[int] = None) -> None:
        """A text channel (type 0)."""
        guild = self._guild(guild_id)
        position = sum(1 for c in self._channels.values() if c.get("guild_id") == str(guild.id) and c["type"] == 0)
        self._channels[channel_id] = {
            "id": str(channel_id), "type": GUILD_TEXT, "guild_id": str(guild.id), "name": name,
            "position": position, "parent_id": None, "topic": None, "nsfw": False, "permission_overwrites": [],
            "rate_limit_per_user": 0, "last_message_id": None, "flags": 0, "default_auto_archive_duration": 1440,
        }
        self._queue_event("CHANNEL_CREATE", lambda: dict(self._channels[channel_id]))

    def add_role(self, role_id: int, name: str, *, guild_id: Optional[int] = None, permissions: int = 0) -> None:
        guild = self._guild(guild_id)
        guild.roles[role_id] = self._role_payload(role_id, name, len(guild.roles), permissions)
        self._queue_event("GUILD_ROLE_CREATE", lambda: {"guild_id": str(guild.id), "role": guild.roles[role_id]})

    def add_user(self, user_id: int, username: str, *, bot: bool = False, global_name: Optional[str] = None) -> None:
        """A Discord user who is not (necessarily) in a guild: enough to DM the bot."""
        self._users[user_id] = self._user_payload(user_id, username, bot=bot, global_name=global_name)

    def add_member(
        self,
        user_id: int,
        username: str,
        roles: Sequence[int] = (),
        bot: bool = False,
        *,
        guild_id: Optional[int] = None,
        nick: Optional[str] = None,
    ) -> None:
        """A user who is a member of the guild (the default one unless `guild_id`)."""
        guild = self._guild(guild_id)
        unknown = [r for r in roles if r not in guild.roles]
        if unknown:
            raise KeyError(f"unknown role ids {unknown}: add_role() them first")
        if user_id not in self._users:
            self.add_user(user_id, username, bot=bot)
        guild.members[user_id] = self._member_payload(list(roles), nick=nick)
        self._queue_event("GUILD_MEMBER_ADD", lambda: {**self._member_with_user(guild, user_id), "guild_id": str(guild.id)})

    def close_dms(self, user_id: int) -> None:
        """The user no longer accepts DMs: the bot's messages to their DM channel answer 403 (50007)."""
        self._closed_dms.add(user_id)

    def open_dms(self, user_id: int) -> None:
        self._closed_dms.discard(user_id)

    def rate_limit(
        self,
        path_regex: str = r"/channels/.*/messages",
        times: int = 1,
        retry_after: float = 0.3,
        *,
        method: Optional[str] = None,
        is_global: bool = False,
    ) -> None:
        """The next `times` REST calls whose path (after /api/v10) fully matches answer 429."""
        self._rate_limits.append(_RateLimit(re.compile(path_regex), method, times, retry_after, is_global))

    def dm_channel_id(self, user_id: int) -> int:
        """The DM channel between the bot and a user (created on first use, then stable)."""
        self._user(user_id)
        if user_id not in self._dm_by_user:
            channel_id = self._snowflake()
            self._dm_by_user[user_id] = channel_id
            self._channels[channel_id] = {
                "id": str(channel_id), "type": DM, "last_message_id": None, "flags": 0,
                "recipients": [self._users[user_id]],
            }
        return self._dm_by_user[user_id]

    @property
    def commands(self) -> dict[str, Json]:
        """Synced commands by name; a guild command hides a global one of the same name."""
        merged: dict[str, Json] = {}
        for scope in [None] + [s for s in self._commands if s is not None]:
            merged.update(self._commands.get(scope, {}))
        return merged

    def commands_in(self, guild_id: Optional[int] = None) -> dict[str, Json]:
        """Commands synced to one scope (None: global)."""
        return dict(self._commands.get(guild_id, {}))

    def messages(self, channel_id: Optional[int] = None) -> list[Json]:
        """Every stored message (users' and the bot's), oldest first."""
        return [m for m in self._messages.values() if channel_id is None or int(m["channel_id"]) == channel_id]

    def clear(self) -> None:
        """Forget what was recorded (sent, threads, deletions, rate-limit count and requests)."""
        self.sent.clear()
        self.threads.clear()
        self.deleted.clear()
        self.requests.clear()
        self.rate_limited = 0

    # ---------------------------------------------------------------- acting as users

    async def wait_until_connected(self, timeout: float = 10.0) -> None:
        """Until a client has identified and received READY and its GUILD_CREATEs."""
        assert self._connected is not None, "start() the stand-in first"
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"no discord client identified within {timeout}s") from None

    async def send_dm(self, user_id: int, content: str, *, reply_to: Optional[int] = None) -> int:
        """A user writes to the bot in their DM channel (MESSAGE_CREATE without guild_id)."""
        session = self._require_session()
        channel_id = self.dm_channel_id(user_id)
        message = self._user_message(user_id, channel_id, content, reply_to=reply_to)
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
        message = self._user_message(user_id, channel_id, content, as_bot=bot, reply_to=reply_to)
        await self._dispatch(session, "MESSAGE_CREATE", message)
        return int(message["id"])

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
            except asyncio.TimeoutError:
                pass

    # ---------------------------------------------------------------- gateway control

    async def drop_gateway(self, code: Optional[int] = 4000, *, hold: bool = False) -> None:
        """Close the client's gateway connection (code None: drop TCP without a close frame).

        With a resumable code the client reconnects and RESUMEs; events dispatched in
        between are buffered and replayed. `hold=True` keeps new connections waiting for
        HELLO until `release_gateway()`, so a test can dispatch while the client is away."""
        if hold and self._gateway_open is not None:
            self._gateway_open.clear()
        session = self._session
        if session is None or session.ws is None:
            return
        async with session.lock:
            ws, session.ws, session.live = session.ws, None, False
        log.info("dropping the gateway connection (code %s)", code)
        conn = self._connections.get(ws)
        if code is None:
            transport = conn.request.transport if conn is not None else None
            if transport is not None:
                transport.abort()
        else:
            await self._close_ws(ws, code, b"stand-in drop")

    def release_gateway(self) -> None:
        """Let held connections get HELLO (see `drop_gateway(hold=True)`)."""
        if self._gateway_open is not None:
            self._gateway_open.set()

    async def request_reconnect(self) -> None:
        """Send op 7 RECONNECT: the client closes and resumes."""
        await self._send_op(7, None)

    async def invalidate_session(self, resumable: bool = False) -> None:
        """Send op 9 INVALID_SESSION. Not resumable: discord.py waits 5 s, then IDENTIFYs again."""
        session = self._session
        if session is not None and not resumable:
            self._sessions.pop(session.id, None)
        await self._send_op(9, resumable)

    # ---------------------------------------------------------------- gateway internals

    def _require_session(self) -> _Session:
        if self._session is None:
            raise RuntimeError("no discord client is connected to the stand-in yet "
                               "(in tests: await standin.wait_until_connected())")
        return self._session

    async def _send_op(self, op: int, data: Any) -> None:
        session = self._require_session()
        if session.ws is not None:
            await self._send_frame(session, session.ws, {"op": op, "d": data, "s": None, "t": None})

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        conn = self._connections[ws] = _Connection(ws=ws, request=request)
        try:
            assert self._gateway_open is not None
            await self._gateway_open.wait()
            if ws.closed:
                return ws
            hello = {"op": 10, "d": {"heartbeat_interval": self.heartbeat_interval, "_trace": ["discord-standin"]},
                     "s": None, "t": None}
            await _send_quietly(ws, hello)
            async for msg in ws:
                if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    continue
                try:
                    payload = json.loads(msg.data)
                except (ValueError, UnicodeDecodeError):
                    await self._close_ws(ws, 4002, b"Error while decoding payload.")
                    break
                await self._on_op(conn, payload)
        finally:
            if conn.closing is not None:
                # Returning first would let aiohttp close with 1000 before our code goes out.
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(conn.closing.wait(), 6.0)
            self._connections.pop(ws, None)
            session = conn.session
            if session is not None and session.ws is ws:
                session.ws, session.live = None, False
        return ws

    async def _on_op(self, conn: _Connection, payload: Json) -> None:
        op, data = payload.get("op"), payload.get("d")
        if op == 1:
            self.heartbeats += 1
            await _send_quietly(conn.ws, {"op": 11, "d": None, "s": None, "t": None})
        elif op == 2:
            await self._identify(conn, data or {})
        elif op == 6:
            await self._resume(conn, data or {})
        elif op == 8:
            await self._request_members(conn, data or {})
        elif op in (3, 4):
            log.debug("ignoring gateway op %s", op)
        else:
            log.warning("unknown gateway op %s", op)

    async def _identify(self, conn: _Connection, data: Json) -> None:
        if conn.session is not None:
            await self._close_ws(conn.ws, 4005, b"Already authenticated.")
            return
        if data.get("token") != self.token:
            log.info("IDENTIFY with a wrong token: closing with 4004")
            await self._close_ws(conn.ws, 4004, b"Authentication failed.")
            return
        intents = int(data.get("intents") or 0)
        if self.allowed_intents is not None and intents & PRIVILEGED_INTENTS & ~self.allowed_intents:
            log.info("IDENTIFY asks for privileged intents that are not enabled: closing with 4014")
            await self._close_ws(conn.ws, 4014, b"Disallowed intent(s).")
            return
        self.identifies += 1
        self.identified_intents = intents
        session = _Session(id=secrets.token_hex(16), intents=intents, shard=data.get("shard"), ws=conn.ws)
        conn.session = session
        self._sessions[session.id] = session
        self._session = session
        self._pending.clear()  # READY and GUILD_CREATE carry the current state
        log.info("client identified (intents %s), session %s", intents, session.id[:8])
        async with session.lock:
            ready: Json = {
                "v": API_VERSION, "user": self._bot_user(), "guilds": [{"id": str(g), "unavailable": True} for g in self._guilds],
                "session_id": session.id, "session_type": "normal", "resume_gateway_url": self.gateway_url,
                "application": {"id": str(self.app_id), "flags": self._application_flags()},
                "private_channels": [], "relationships": [], "presences": [], "guild_join_requests": [],
                "user_settings": {}, "geo_ordered_rtc_regions": [], "auth": {}, "_trace": ["discord-standin"],
            }
            if session.shard is not None:
                ready["shard"] = session.shard
            session.live = True
            await self._emit(session, "READY", ready)
            for guild in self._guilds.values():
                await self._emit(session, "GUILD_CREATE", self._guild_create(guild))
        assert self._connected is not None
        self._connected.set()

    async def _resume(self, conn: _Connection, data: Json) -> None:
        if data.get("token") != self.token:
            await self._close_ws(conn.ws, 4004, b"Authentication failed.")
            return
        session = self._sessions.get(str(data.get("session_id")))
        if session is None:
            log.info("RESUME of an unknown session: invalid session")
            await _send_quietly(conn.ws, {"op": 9, "d": False, "s": None, "t": None})
            return
        seq = int(data.get("seq") or 0)
        if seq > session.seq:
            await self._close_ws(conn.ws, 4007, b"Invalid seq.")
            return
        async with session.lock:
            old = session.ws
            session.ws, conn.session, self._session = conn.ws, session, session
            if old is not None and old is not conn.ws:
                asyncio.get_running_loop().create_task(self._close_ws(old, 4000, b"resumed elsewhere"))
            await self._flush_pending(session)
            missed = [frame for frame in session.frames if frame["s"] > seq]
            for frame in missed:
                await self._send_frame(session, conn.ws, frame)
            session.live = True
            self.resumes += 1
            log.info("client resumed session %s, replayed %d event(s)", session.id[:8], len(missed))
            await self._emit(session, "RESUMED", {"_trace": ["discord-standin"]})

    async def _request_members(self, conn: _Connection, data: Json) -> None:
        session = conn.session
        guild = self._guilds.get(int(data.get("guild_id") or 0))
        if session is None or guild is None:
            return
        wanted = {int(u) for u in data.get("user_ids") or []}
        query = str(data.get("query") or "").lower()
        members = [self._member_with_user(guild, uid) for uid in guild.members
                   if (not wanted or uid in wanted) and self._users[uid]["username"].lower().startswith(query)]
        chunk = {"guild_id": str(guild.id), "members": members, "chunk_index": 0, "chunk_count": 1, "not_found": []}
        if data.get("nonce") is not None:
            chunk["nonce"] = data["nonce"]
        async with session.lock:
            await self._emit(session, "GUILD_MEMBERS_CHUNK", chunk)

    async def _dispatch(self, session: _Session, event: str, data: Json) -> bool:
        async with session.lock:
            await self._flush_pending(session)
            return await self._emit(session, event, data)

    async def _dispatch_if_connected(self, event: str, data: Json) -> None:
        if self._session is not None:
            await self._dispatch(self._session, event, data)

    def _queue_event(self, event: str, build: Callable[[], Json]) -> None:
        """World changes after a client connected reach it as events, in order with the rest."""
        if self._session is None:
            return
        self._pending.append((event, build()))
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        session = self._session
        loop.create_task(self._dispatch_pending(session))

    async def _dispatch_pending(self, session: _Session) -> None:
        async with session.lock:
            await self._flush_pending(session)

    async def _flush_pending(self, session: _Session) -> None:
        pending, self._pending = self._pending, []
        for event, data in pending:
            await self._emit(session, event, data)

    async def _emit(self, session: _Session, event: str, data: Json) -> bool:
        """Sequence, buffer and (when connected) send one dispatch. Hold `session.lock`."""
        needed = _required_intent(event, data)
        if needed and not session.intents & needed:
            log.info("not dispatching %s: the client did not ask for the %s intent", event, _INTENT_NAMES[needed])
            return False
        data = self._as_seen_by(session, event, data)
        session.seq += 1
        frame = {"op": 0, "t": event, "s": session.seq, "d": data}
        session.frames.append(frame)
        if session.ws is not None and session.live:
            await self._send_frame(session, session.ws, frame)
        else:
            log.debug("buffered %s (s=%d) for the next RESUME", event, session.seq)
        return True

    async def _send_frame(self, session: _Session, ws: web.WebSocketResponse, frame: Json) -> None:
        try:
            await ws.send_str(json.dumps(frame))
        except Exception as exc:  # the connection went away: the frame stays in the replay buffer
            log.debug("gateway send failed (%s); keeping the event for RESUME", type(exc).__name__)
            if session.ws is ws:
                session.ws, session.live = None, False

    def _as_seen_by(self, session: _Session, event: str, data: Json) -> Json:
        """Without MESSAGE_CONTENT, guild messages lose their content unless they mention the bot."""
        if event not in ("MESSAGE_CREATE", "MESSAGE_UPDATE") or session.intents & MESSAGE_CONTENT:
            return data
        if "guild_id" not in data or int(data.get("author", {}).get("id", 0)) == self.bot_user_id:
            return data
        if any(int(u["id"]) == self.bot_user_id for u in data.get("mentions", [])):
            return data
        return {**data, "content": "", "embeds": [], "attachments": [], "components": []}

    async def _close_ws(self, ws: web.WebSocketResponse, code: int, message: bytes) -> None:
        conn = self._connections.get(ws)
        done = asyncio.Event()
        if conn is not None and conn.closing is None:
            conn.closing = done
        try:
            await asyncio.wait_for(ws.close(code=code, message=message), 5.0)
        except (asyncio.TimeoutError, ConnectionError, RuntimeError):
            pass
        finally:
            done.set()

    # ---------------------------------------------------------------- REST plumbing

    def _build_routes(self) -> list[tuple[str, re.Pattern[str], Handler, bool]]:
        table: list[tuple[str, str, Handler, bool]] = [
            ("GET", r"/users/@me", self._get_me, True),
            ("GET", r"/users/(?P<user_id>\d+)", self._get_user, True),
            ("POST", r"/users/@me/channels", self._create_dm, True),
            ("GET", r"/oauth2/applications/@me", self._get_application, True),
            ("GET", r"/applications/@me", self._get_application, True),
            ("GET", r"/gateway", self._get_gateway, False),
            ("GET", r"/gateway/bot", self._get_gateway_bot, True),
            ("GET", r"/applications/(?P<app>\d+)/commands", self._get_commands, True),
            ("PUT", r"/applications/(?P<app>\d+)/commands", self._put_commands, True),
            ("POST", r"/applications/(?P<app>\d+)/commands", self._post_command, True),
            ("GET", r"/applications/(?P<app>\d+)/guilds/(?P<guild_id>\d+)/commands", self._get_commands, True),
            ("PUT", r"/applications/(?P<app>\d+)/guilds/(?P<guild_id>\d+)/commands", self._put_commands, True),
            ("POST", r"/applications/(?P<app>\d+)/guilds/(?P<guild_id>\d+)/commands", self._post_command, True),
            ("GET", r"/guilds/(?P<guild_id>\d+)", self._get_guild, True),
            ("GET", r"/guilds/(?P<guild_id>\d+)/roles", self._get_roles, True),
            ("GET", r"/guilds/(?P<guild_id>\d+)/channels", self._get_guild_channels, True),
            ("GET", r"/guilds/(?P<guild_id>\d+)/members/(?P<user_id>\d+)", self._get_member, True),
            ("GET", r"/channels/(?P<channel_id>\d+)", self._get_channel, True),
            ("POST", r"/channels/(?P<channel_id>\d+)/messages", self._post_message, True),
            ("GET", r"/channels/(?P<channel_id>\d+)/messages/(?P<message_id>\d+)", self._get_message, True),
            ("PATCH", r"/channels/(?P<channel_id>\d+)/messages/(?P<message_id>\d+)", self._patch_message, True),
            ("DELETE", r"/channels/(?P<channel_id>\d+)/messages/(?P<message_id>\d+)", self._delete_message, True),
            ("POST", r"/channels/(?P<channel_id>\d+)/typing", self._no_content, True),
            ("POST", r"/channels/(?P<channel_id>\d+)/threads", self._post_thread, True),
            ("POST", r"/channels/(?P<channel_id>\d+)/messages/(?P<message_id>\d+)/threads", self._post_thread, True),
            ("DELETE", r"/channels/(?P<channel_id>\d+)", self._delete_channel, True),
            ("PUT", r"/channels/(?P<channel_id>\d+)/thread-members/@me", self._no_content, True),
            ("DELETE", r"/channels/(?P<channel_id>\d+)/thread-members/@me", self._no_content, True),
            ("POST", r"/interactions/(?P<interaction_id>\d+)/(?P<token>[^/]+)/callback", self._callback, False),
            ("POST", r"/webhooks/(?P<app>\d+)/(?P<token>[^/]+)", self._post_followup, False),
            ("GET", r"/webhooks/(?P<app>\d+)/(?P<token>[^/]+)/messages/(?P<message_id>@original|\d+)", self._get_webhook_message, False),
            ("PATCH", r"/webhooks/(?P<app>\d+)/(?P<token>[^/]+)/messages/(?P<message_id>@original|\d+)", self._patch_webhook_message, False),
            ("DELETE", r"/webhooks/(?P<app>\d+)/(?P<token>[^/]+)/messages/(?P<message_id>@original|\d+)", self._delete_webhook_message, False),
        ]
        return [(method, re.compile(pattern), handler, auth) for method, pattern, handler, auth in table]

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        method = request.method
        for route_method, pattern, handler, auth in self._routes:
            match = pattern.fullmatch(path)
            if match and route_method == method:
                break
        else:
            log.warning("stand-in has no route for %s %s", method, path)
            return self._answer(method, path, "unknown", _json_response({"message": "404: Not Found", "code": 0}, 404))
        bucket = hashlib.sha1(f"{method} {pattern.pattern}".encode()).hexdigest()[:16]
        if auth and request.headers.get("Authorization") != f"Bot {self.token}":
            return self._answer(method, path, bucket, _json_response({"message": "401: Unauthorized", "code": 0}, 401))
        limited = self._take_rate_limit(method, path)
        if limited is not None:
            return self._answer(method, path, bucket, self._too_many(limited, bucket))
        try:
            body, files = await _read_body(request)
            result = await handler(request, body, files, **match.groupdict())
        except ApiError as exc:
            response = _json_response(exc.body(), exc.status)
        else:
            if isinstance(result, web.StreamResponse):
                response = result
            elif result is None:
                response = web.Response(status=204)
            else:
                status, payload = result if isinstance(result, tuple) else (200, result)
                response = _json_response(payload, status)
        response.headers.update({
            "X-RateLimit-Bucket": bucket, "X-RateLimit-Limit": "50", "X-RateLimit-Remaining": "49",
            "X-RateLimit-Reset": f"{time.time() + 1:.3f}", "X-RateLimit-Reset-After": "1.000",
        })
        return self._answer(method, path, bucket, response)

    def _answer(self, method: str, path: str, bucket: str, response: web.Response) -> web.Response:
        self.requests.append((method, path, response.status))
        log.debug("REST %s %s -> %d", method, path, response.status)
        return response

    def _take_rate_limit(self, method: str, path: str) -> Optional[_RateLimit]:
        for rule in self._rate_limits:
            if rule.times > 0 and rule.pattern.fullmatch(path) and rule.method in (None, method):
                rule.times -= 1
                self.rate_limited += 1
                return rule
        return None

    def _too_many(self, rule: _RateLimit, bucket: str) -> web.Response:
        # discord.py treats a 429 without `Via` or without a JSON body as a Cloudflare ban.
        headers = {
            "Via": "1.1 google", "Retry-After": str(math.ceil(rule.retry_after)),
            "X-RateLimit-Bucket": bucket, "X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": f"{time.time() + rule.retry_after:.3f}",
            "X-RateLimit-Reset-After": f"{rule.retry_after:.3f}",
            "X-RateLimit-Scope": "global" if rule.is_global else "user",
        }
        if rule.is_global:
            headers["X-RateLimit-Global"] = "true"
        body = {"message": "You are being rate limited.", "retry_after": rule.retry_after, "global": rule.is_global}
        log.info("answering 429 (retry after %.3fs)", rule.retry_after)
        return _json_response(body, 429, headers)

    # ---------------------------------------------------------------- REST: users, app, gateway

    async def _get_me(self, request: web.Request, body: Any, files: list[Json]) -> Json:
        return {**self._bot_user(), "verified": True, "mfa_enabled": False, "email": None, "flags": 0,
                "locale": "en-US", "bio": ""}

    async def _get_user(self, request: web.Request, body: Any, files: list[Json], user_id: str) -> Json:
        if int(user_id) not in self._users:
            raise ApiError(404, 10013, "Unknown User")
        return self._users[int(user_id)]

    async def _create_dm(self, request: web.Request, body: Any, files: list[Json]) -> Json:
        recipient = int((body or {}).get("recipient_id") or 0)
        if recipient not in self._users:
            raise _form_error("recipient_id", "NUMBER_TYPE_COERCE", "Value is not snowflake.")
        return self._channels[self.dm_channel_id(recipient)]

    async def _get_application(self, request: web.Request, body: Any, files: list[Json]) -> Json:
        return {
            "id": str(self.app_id), "name": self.bot_name, "icon": None, "description": "", "summary": "",
            "type": None, "hook": True, "bot_public": True, "bot_require_code_grant": False,
            "verify_key": hashlib.sha256(str(self.app_id).encode()).hexdigest(), "owner": self._owner, "team": None,
            "flags": self._application_flags(), "bot": self._bot_user(), "rpc_origins": [], "redirect_uris": [],
            "interactions_endpoint_url": None, "role_connections_verification_url": None, "tags": [],
            "terms_of_service_url": None, "privacy_policy_url": None, "custom_install_url": None,
            "install_params": {"scopes": ["bot", "applications.commands"], "permissions": str(_BOT_PERMISSIONS)},
            "integration_types_config": {"0": {}}, "approximate_guild_count": len(self._guilds),
        }

    async def _get_gateway(self, request: web.Request, body: Any, files: list[Json]) -> Json:
        return {"url": self.gateway_url}

    async def _get_gateway_bot(self, request: web.Request, body: Any, files: list[Json]) -> Json:
        return {"url": self.gateway_url, "shards": 1, "session_start_limit": {
            "total": 1000, "remaining": 1000 - self.identifies, "reset_after": 86_400_000, "max_concurrency": 1}}

    # ---------------------------------------------------------------- REST: commands

    async def _get_commands(self, request: web.Request, body: Any, files: list[Json], app: str,
                            guild_id: Optional[str] = None) -> list[Json]:
        self._check_app(app)
        return list(self._commands.get(int(guild_id) if guild_id else None, {}).values())

    async def _put_commands(self, request: web.Request, body: Any, files: list[Json], app: str,
                            guild_id: Optional[str] = None) -> list[Json]:
        self._check_app(app)
        scope = self._command_scope(guild_id)
        if not isinstance(body, list):
            raise ApiError(400, 50035, "Invalid Form Body")
        names: set[tuple[str, int]] = set()
        stored: dict[str, Json] = {}
        for index, spec in enumerate(body):
            command = self._command(scope, spec, index)
            key = (command["name"], command["type"])
            if key in names:
                raise _form_error(str(index), "APPLICATION_COMMANDS_DUPLICATE_NAME", "Application command names must be unique")
            names.add(key)
            stored[command["name"]] = command
        self._commands[scope] = stored
        self.synced.append("global" if scope is None else scope)
        log.info("commands synced to %s: %d", "global" if scope is None else f"guild {scope}", len(stored))
        return list(stored.values())

    async def _post_command(self, request: web.Request, body: Any, files: list[Json], app: str,
                            guild_id: Optional[str] = None) -> tuple[int, Json]:
        self._check_app(app)
        scope = self._command_scope(guild_id)
        command = self._command(scope, body or {}, 0)
        self._commands.setdefault(scope, {})[command["name"]] = command
        return 201, command

    def _check_app(self, app: str) -> None:
        if int(app) != self.app_id:
            raise ApiError(403, 50001, "Missing Access")

    def _command_scope(self, guild_id: Optional[str]) -> Optional[int]:
        if guild_id is None:
            return None
        if int(guild_id) not in self._guilds:
            raise ApiError(403, 50001, "Missing Access")
        return int(guild_id)

    def _command(self, scope: Optional[int], spec: Json, index: int) -> Json:
        name, kind = str(spec.get("name") or ""), int(spec.get("type") or 1)
        description = spec.get("description") or ""
        if kind == 1 and (not _NAME_RE.match(name) or name != name.lower()):
            raise _form_error(f"{index}.name", "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")
        if kind == 1 and not 1 <= len(description) <= 100:
            raise _form_error(f"{index}.description", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
        key = (scope, name, kind)
        if key not in self._command_ids:
            self._command_ids[key] = self._snowflake()
        command = {
            "id": str(self._command_ids[key]), "application_id": str(self.app_id), "version": str(self._snowflake()),
            "type": kind, "name": name, "name_localizations": spec.get("name_localizations"),
            "description": description, "description_localizations": spec.get("description_localizations"),
            "options": spec.get("options") or [], "default_member_permissions": spec.get("default_member_permissions"),
            "nsfw": bool(spec.get("nsfw", False)), "contexts": spec.get("contexts"),
            "integration_types": spec.get("integration_types") or [0],
        }
        if "dm_permission" in spec:
            command["dm_permission"] = spec["dm_permission"]
        if scope is not None:
            command["guild_id"] = str(scope)
        return command

    def _find_command(self, name: str, guild_id: Optional[int]) -> Json:
        scopes: list[Optional[int]] = [guild_id, None] if guild_id is not None else [None]
        for scope in scopes:
            command = self._commands.get(scope, {}).get(name)
            if command is not None and command["type"] == 1:
                if guild_id is None and (command.get("dm_permission") is False or 1 not in (command.get("contexts") or [0, 1])):
                    raise LookupError(f"/{name} is synced but not usable in DMs (contexts/dm_permission)")
                return command
        where = f"to guild {guild_id} or globally" if guild_id else "globally (DMs only see global commands)"
        synced = sorted({n for s in self._commands.values() for n in s})
        raise LookupError(f"/{name} was not synced {where}; did the bot call tree.sync()? synced: {synced}")

    def _command_options(self, command: Json, options: Union[None, dict[str, Any], list[Json]],
                         guild_id: Optional[int]) -> tuple[list[Json], Json]:
        if options is None:
            options = {}
        if isinstance(options, list):
            return options, {}
        specs = {o["name"]: o for o in command.get("options") or []}
        missing = [n for n, o in specs.items() if o.get("required") and n not in options]
        if missing:
            raise ValueError(f"/{command['name']} needs option(s) {missing}")
        result: list[Json] = []
        resolved: Json = {}
        for name, value in options.items():
            if name not in specs:
                raise ValueError(f"/{command['name']} has no option {name!r}; it has {sorted(specs)}")
            kind = specs[name]["type"]
            if kind == 6:  # user
                uid = int(value)
                resolved.setdefault("users", {})[str(uid)] = self._user(uid)
                guild = self._guilds.get(guild_id) if guild_id else None
                if guild is not None and uid in guild.members:
                    member = {**guild.members[uid], "permissions": str(self._permissions(guild, uid))}
                    resolved.setdefault("members", {})[str(uid)] = member
                value = str(uid)
            elif kind == 7:  # channel
                channel = self._channel(int(value))
                resolved.setdefault("channels", {})[str(value)] = {**channel, "permissions": str(_ALL_PERMISSIONS)}
                value = str(value)
            elif kind == 8:  # role
                resolved.setdefault("roles", {})[str(value)] = self._guild(guild_id).roles[int(value)]
                value = str(value)
            result.append({"name": name, "type": kind, "value": value})
        return result, resolved

    # ---------------------------------------------------------------- REST: guilds and channels

    async def _get_guild(self, request: web.Request, body: Any, files: list[Json], guild_id: str) -> Json:
        guild = self._guild_or_404(guild_id)
        payload = self._guild_create(guild)
        for key in ("members", "channels", "threads", "presences", "voice_states", "joined_at", "large",
                    "member_count", "unavailable", "stage_instances", "guild_scheduled_events", "soundboard_sounds"):
            payload.pop(key, None)
        return payload

    async def _get_roles(self, request: web.Request, body: Any, files: list[Json], guild_id: str) -> list[Json]:
        return list(self._guild_or_404(guild_id).roles.values())

    async def _get_guild_channels(self, request: web.Request, body: Any, files: list[Json], guild_id: str) -> list[Json]:
        guild = self._guild_or_404(guild_id)
        return [c for c in self._channels.values() if c.get("guild_id") == str(guild.id) and c["type"] not in THREAD_TYPES]

    async def _get_member(self, request: web.Request, body: Any, files: list[Json], guild_id: str, user_id: str) -> Json:
        guild = self._guild_or_404(guild_id)
        if int(user_id) not in guild.members:
            raise ApiError(404, 10007, "Unknown Member")
        return self._member_with_user(guild, int(user_id))

    async def _get_channel(self, request: web.Request, body: Any, files: list[Json], channel_id: str) -> Json:
        return self._channel_or_404(channel_id)

    async def _no_content(self, request: web.Request, body: Any, files: list[Json], channel_id: str) -> None:
        self._channel_or_404(channel_id)
        return None

    # ---------------------------------------------------------------- REST: messages

    async def _post_message(self, request: web.Request, body: Any, files: list[Json], channel_id: str) -> Json:
        channel = self._channel_or_404(channel_id)
        body = body or {}
        if channel["type"] == DM and int(channel["recipients"][0]["id"]) in self._closed_dms:
            raise ApiError(403, 50007, "Cannot send messages to this user")
        message = self._bot_message(int(channel_id), body, files)
        self._store(message)
        self._record("message", int(channel_id), body, message, files)
        await self._dispatch_if_connected("MESSAGE_CREATE", self._gateway_message(message))
        return message

    async def _get_message(self, request: web.Request, body: Any, files: list[Json], channel_id: str, message_id: str) -> Json:
        return self._message_or_404(channel_id, message_id)

    async def _patch_message(self, request: web.Request, body: Any, files: list[Json], channel_id: str, message_id: str) -> Json:
        message = self._message_or_404(channel_id, message_id)
        self._raise_failure("PATCH message", int(message_id))
        if int(message["author"]["id"]) != self.bot_user_id:
            raise ApiError(403, 50005, "Cannot edit a message authored by another user")
        self._edit(message, body or {}, files)
        self._record("edit", int(channel_id), body or {}, message, files)
        await self._dispatch_if_connected("MESSAGE_UPDATE", self._gateway_message(message))
        return message

    async def _delete_message(self, request: web.Request, body: Any, files: list[Json], channel_id: str, message_id: str) -> None:
        """DELETE /channels/{channel.id}/messages/{message.id}: a bot deletes its own messages;
        another user's needs MANAGE_MESSAGES, else 403 with code 50013 Missing Permissions;
        an unknown message is 404 code 10008 Unknown Message (Discord's "Delete Message"
        and JSON error codes docs; discord.py raises NotFound / Forbidden for them)."""
        message = self._message_or_404(channel_id, message_id)
        self._raise_failure("DELETE message", int(message_id))
        if int(message["author"]["id"]) != self.bot_user_id:
            self._require_permission(int(channel_id), _MANAGE_MESSAGES)
        await self._delete(message)
        return None

    async def _delete_channel(self, request: web.Request, body: Any, files: list[Json], channel_id: str) -> Json:
        """DELETE /channels/{channel.id}: for a thread, needs MANAGE_THREADS (else 403, 50013);
        the thread and its messages go, THREAD_DELETE is dispatched; returns the channel."""
        channel = self._channel_or_404(channel_id)
        self._raise_failure("DELETE channel", int(channel_id))
        is_thread = channel["type"] in THREAD_TYPES
        self._require_permission(int(channel_id), _MANAGE_THREADS if is_thread else _MANAGE_CHANNELS)
        for message in [m for m in self._messages.values() if m["channel_id"] == str(channel_id)]:
            del self._messages[int(message["id"])]
        del self._channels[int(channel_id)]
        self.deleted_channels.append(int(channel_id))
        event = {"id": channel["id"], "guild_id": channel.get("guild_id"), "parent_id": channel.get("parent_id"), "type": channel["type"]}
        await self._dispatch_if_connected("THREAD_DELETE" if is_thread else "CHANNEL_DELETE", event if is_thread else channel)
        return channel

    def fail(self, method: str, target_id: int, status: int = 403, code: int = 50013, message: str = "Missing Permissions") -> None:
        """Makes "DELETE message", "PATCH message" or "DELETE channel" on `target_id` answer
        with that Discord error (e.g. a channel permission overwrite taking the bot's rights)."""
        self._failures[(method, int(target_id))] = ApiError(status, code, message)

    def _raise_failure(self, method: str, target_id: int) -> None:
        failure = self._failures.get((method, target_id))
        if failure is not None:
            raise failure

    def _require_permission(self, channel_id: int, permission: int) -> None:
        guild_id = self._channels.get(channel_id, {}).get("guild_id")
        if guild_id is None or not self._permissions(self._guilds[int(guild_id)], self.bot_user_id) & permission:
            raise ApiError(403, 50013, "Missing Permissions")

    async def _delete(self, message: Json) -> None:
        del self._messages[int(message["id"])]
        channel_id, message_id = int(message["channel_id"]), int(message["id"])
        self.deleted.append((channel_id, message_id))
        event: Json = {"id": str(message_id), "channel_id": str(channel_id)}
        guild_id = self._channels.get(channel_id, {}).get("guild_id")
        if guild_id:
            event["guild_id"] = guild_id
        await self._dispatch_if_connected("MESSAGE_DELETE", event)

    # ---------------------------------------------------------------- REST: threads

    async def _post_thread(self, request: web.Request, body: Any, files: list[Json], channel_id: str,
                           message_id: Optional[str] = None) -> tuple[int, Json]:
        parent = self._channel_or_404(channel_id)
        body = body or {}
        if parent["type"] not in (GUILD_TEXT, GUILD_NEWS):
            raise ApiError(400, 50024, "Cannot execute action on this channel type")
        name = str(body.get("name") or "")
        if not 1 <= len(name) <= 100:
            raise _form_error("name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
        starter: Optional[Json] = None
        if message_id is not None:
            starter = self._message_or_404(channel_id, message_id)
            if "thread" in starter:
                raise ApiError(400, 160004, "A thread has already been created for this message")
            thread_id = int(message_id)  # a thread started from a message shares its id
            kind = NEWS_THREAD if parent["type"] == GUILD_NEWS else PUBLIC_THREAD
        else:
            thread_id = self._snowflake()
            kind = int(body.get("type") or PRIVATE_THREAD)  # API v10 default: private
            if kind not in (PUBLIC_THREAD, PRIVATE_THREAD, NEWS_THREAD):
                raise _form_error("type", "BASE_TYPE_CHOICES", "Value must be one of {10, 11, 12}.")
        now = _iso()
        thread: Json = {
            "id": str(thread_id), "type": kind, "guild_id": parent["guild_id"], "parent_id": parent["id"],
            "owner_id": str(self.bot_user_id), "name": name, "last_message_id": None, "message_count": 0,
            "member_count": 1, "rate_limit_per_user": body.get("rate_limit_per_user") or 0, "flags": 0,
            "total_message_sent": 0, "thread_metadata": {
                "archived": False, "auto_archive_duration": int(body.get("auto_archive_duration") or 1440),
                "archive_timestamp": now, "locked": False, "create_timestamp": now,
            },
            "member": {"id": str(thread_id), "user_id": str(self.bot_user_id), "join_timestamp": now, "flags": 0},
        }
        if kind == PRIVATE_THREAD:
            thread["thread_metadata"]["invitable"] = bool(body.get("invitable", True))
        self._channels[thread_id] = thread
        self.threads.append(thread)
        if starter is not None:
            starter["thread"] = thread
        log.info("thread %s created in channel %s (type %d)", thread_id, channel_id, kind)
        await self._dispatch_if_connected("THREAD_CREATE", {**thread, "newly_created": True})
        if starter is None and kind == PUBLIC_THREAD:
            # Discord announces a public thread made without a starter message in its parent.
            notice = self._bot_message(int(channel_id), {"content": name}, [], kind=18)
            notice["message_reference"] = {"type": 0, "channel_id": str(thread_id), "guild_id": parent["guild_id"]}
            self._store(notice)
            await self._dispatch_if_connected("MESSAGE_CREATE", self._gateway_message(notice))
        return 201, thread

    # ---------------------------------------------------------------- REST: interactions

    async def _callback(self, request: web.Request, body: Any, files: list[Json], interaction_id: str, token: str) -> Any:
        interaction = self._interactions.get(int(interaction_id))
        if interaction is None or interaction.token != token:
            raise ApiError(404, 10062, "Unknown interaction")
        if interaction.response_type is not None:
            raise ApiError(400, 40060, "Interaction has already been acknowledged.")
        if self.response_deadline is not None and time.monotonic() - interaction.created > self.response_deadline:
            log.info("interaction %s answered after the %.1fs deadline", interaction_id, self.response_deadline)
            raise ApiError(404, 10062, "Unknown interaction")
        body = body or {}
        kind = int(body.get("type") or 0)
        data = body.get("data") or {}
        message: Optional[Json] = None
        if kind == 4:  # CHANNEL_MESSAGE_WITH_SOURCE
            message = self._bot_message(interaction.channel_id, data, files, interaction=interaction)
            interaction.original_id = int(message["id"])
        elif kind == 5:  # DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE: a "thinking..." message
            flags = LOADING | (int(data.get("flags") or 0) & EPHEMERAL)
            message = self._bot_message(interaction.channel_id, {"content": "", "flags": flags}, [], interaction=interaction)
            interaction.original_id, interaction.loading = int(message["id"]), True
        elif kind in (6, 7):  # DEFERRED_UPDATE_MESSAGE / UPDATE_MESSAGE (components)
            if interaction.message_id is None:
                raise ApiError(400, 40060 if kind == 6 else 50035, "Interaction has no message to update")
            interaction.original_id = interaction.message_id
        elif kind not in (1, 8, 9, 10, 12):
            raise _form_error("type", "BASE_TYPE_CHOICES", "Value must be a valid interaction callback type.")
        interaction.response_type = kind
        if message is not None:
            self._store(message)
            if not message["flags"] & EPHEMERAL:
                await self._dispatch_if_connected("MESSAGE_CREATE", self._gateway_message(message))
        elif kind == 7 and interaction.original_id in self._messages:
            message = self._messages[interaction.original_id]
            self._edit(message, data, files)
            await self._dispatch_if_connected("MESSAGE_UPDATE", self._gateway_message(message))
        self._record("interaction_response", interaction.channel_id, data, message, files,
                     interaction_id=interaction.id, callback_type=kind,
                     message_id=interaction.original_id, raw=body)
        if request.query.get("with_response", "").lower() not in ("1", "true"):
            return None
        flags = int((message or {}).get("flags") or data.get("flags") or 0)
        answer: Json = {"interaction": {
            "id": str(interaction.id), "type": interaction.type,
            "response_message_loading": kind == 5, "response_message_ephemeral": bool(flags & EPHEMERAL),
        }}
        if interaction.original_id is not None and kind in (4, 5, 7):
            answer["interaction"]["response_message_id"] = str(interaction.original_id)
        if kind in (4, 5, 6, 7, 9):
            answer["resource"] = {"type": kind}
            if kind in (4, 7) and message is not None:
                answer["resource"]["message"] = message
        return answer

    def _interaction_by_token(self, app: str, token: str) -> _Interaction:
        if int(app) != self.app_id:
            raise ApiError(404, 10015, "Unknown Webhook")
        for interaction in self._interactions.values():
            if interaction.token == token:
                if time.monotonic() - interaction.created > 15 * 60:
                    raise ApiError(401, 50027, "Invalid Webhook Token")
                if interaction.response_type is None:
                    raise ApiError(404, 10015, "Unknown Webhook")  # no initial response yet
                return interaction
        raise ApiError(404, 10015, "Unknown Webhook")

    async def _post_followup(self, request: web.Request, body: Any, files: list[Json], app: str, token: str) -> Any:
        interaction = self._interaction_by_token(app, token)
        body = body or {}
        original = self._messages.get(interaction.original_id or 0)
        if interaction.loading and original is not None:
            # The first follow-up after a defer fills in the "thinking..." message (same id);
            # whether it is ephemeral was decided by the defer.
            interaction.loading = False
            self._edit(original, {**body, "flags": int(body.get("flags") or 0) & ~(LOADING | EPHEMERAL)}, files)
            message = original
            event = "MESSAGE_UPDATE"
        else:
            message = self._bot_message(interaction.channel_id, body, files, interaction=interaction)
            self._store(message)
            event = "MESSAGE_CREATE"
        self._record("followup", interaction.channel_id, body, message, files, interaction_id=interaction.id)
        if not message["flags"] & EPHEMERAL:
            await self._dispatch_if_connected(event, self._gateway_message(message))
        if request.query.get("wait", "").lower() in ("1", "true"):
            return message
        return None

    def _webhook_message(self, interaction: _Interaction, message_id: str) -> Json:
        target = interaction.original_id if message_id == "@original" else int(message_id)
        message = self._messages.get(target or 0)
        if message is None:
            raise ApiError(404, 10008, "Unknown Message")
        return message

    async def _get_webhook_message(self, request: web.Request, body: Any, files: list[Json], app: str, token: str,
                                   message_id: str) -> Json:
        return self._webhook_message(self._interaction_by_token(app, token), message_id)

    async def _patch_webhook_message(self, request: web.Request, body: Any, files: list[Json], app: str, token: str,
                                     message_id: str) -> Json:
        interaction = self._interaction_by_token(app, token)
        message = self._webhook_message(interaction, message_id)
        if int(message["id"]) == interaction.original_id:
            interaction.loading = False
        self._edit(message, body or {}, files)
        self._record("edit", int(message["channel_id"]), body or {}, message, files, interaction_id=interaction.id)
        if not message["flags"] & EPHEMERAL:
            await self._dispatch_if_connected("MESSAGE_UPDATE", self._gateway_message(message))
        return message

    async def _delete_webhook_message(self, request: web.Request, body: Any, files: list[Json], app: str, token: str,
                                      message_id: str) -> None:
        interaction = self._interaction_by_token(app, token)
        await self._delete(self._webhook_message(interaction, message_id))
        return None

    # ---------------------------------------------------------------- control API (for the CLI)

    async def _control_dm(self, request: web.Request) -> web.Response:
        return await self._control(request, "message_id", lambda body, user: self.send_dm(user, _text(body)))

    async def _control_message(self, request: web.Request) -> web.Response:
        return await self._control(request, "message_id", lambda body, user: self.send_guild_message(
            user, int(body.get("channel") or self.channel_id), _text(body), mention_bot=bool(body.get("mention_bot"))))

    async def _control_slash(self, request: web.Request) -> web.Response:
        return await self._control(request, "interaction_id", lambda body, user: self.send_slash(
            str(body.get("name") or body.get("command") or "").lstrip("/"), user, body.get("options"),
            guild=bool(body.get("guild", True))))

    async def _control_click(self, request: web.Request) -> web.Response:
        return await self._control(request, "interaction_id", lambda body, user: self.click_button(
            user, str(body["custom_id"]), int(body["message_id"]) if body.get("message_id") else None,
            guild=bool(body.get("guild", True))))

    async def _control_sent(self, request: web.Request) -> web.Response:
        return web.json_response([s.to_json() for s in self.sent])

    async def _control(self, request: web.Request, key: str,
                       action: Callable[[Json, int], Awaitable[int]]) -> web.Response:
        """Act as a user for the control API; unknown user ids join the default guild."""
        try:
            body = await request.json()
            user_id = int(body.get("user") or 4242)
            if user_id not in self._guild(None).members:
                self.add_member(user_id, str(body.get("username") or f"fan{user_id}"))
            value = await action(body, user_id)
        except (LookupError, ValueError, TypeError, RuntimeError, AttributeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({key: str(value)})

    # ---------------------------------------------------------------- payload builders

    def _snowflake(self) -> int:
        ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
        candidate = (ms << 22) | (1 << 17) | (next(self._ids) & 0xFFF)
        self._last_id = max(candidate, self._last_id + 1)
        return self._last_id

    @staticmethod
    def _user_payload(user_id: int, username: str, *, bot: bool = False, global_name: Optional[str] = None) -> Json:
        user: Json = {"id": str(user_id), "username": username, "discriminator": "0", "global_name": global_name,
                      "avatar": None, "avatar_decoration_data": None, "public_flags": 0}
        if bot:
            user["bot"] = True
        return user

    @staticmethod
    def _role_payload(role_id: int, name: str, position: int, permissions: int, *, bot_id: Optional[int] = None) -> Json:
        role: Json = {"id": str(role_id), "name": name, "color": 0,
                      "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
                      "hoist": False, "icon": None, "unicode_emoji": None, "position": position,
                      "permissions": str(permissions), "managed": bot_id is not None, "mentionable": False, "flags": 0}
        if bot_id is not None:
            role["tags"] = {"bot_id": str(bot_id)}
        return role

    @staticmethod
    def _member_payload(roles: list[int], *, nick: Optional[str] = None) -> Json:
        return {"roles": [str(r) for r in roles], "nick": nick, "avatar": None, "banner": None,
                "joined_at": _iso(), "premium_since": None, "deaf": False, "mute": False, "pending": False,
                "flags": 0, "communication_disabled_until": None}

    def _bot_user(self) -> Json:
        return self._users[self.bot_user_id]

    def _application_flags(self) -> int:
        allowed = PRIVILEGED_INTENTS if self.allowed_intents is None else self.allowed_intents
        flags = 0
        if allowed & GUILD_PRESENCES:
            flags |= 1 << 13  # GATEWAY_PRESENCE_LIMITED
        if allowed & GUILD_MEMBERS:
            flags |= 1 << 15  # GATEWAY_GUILD_MEMBERS_LIMITED
        if allowed & MESSAGE_CONTENT:
            flags |= 1 << 19  # GATEWAY_MESSAGE_CONTENT_LIMITED
        return flags

    def _user(self, user_id: int) -> Json:
        try:
            return self._users[user_id]
        except KeyError:
            raise KeyError(f"unknown user {user_id}: add_user() or add_member() first") from None

    def _guild(self, guild_id: Optional[int]) -> _Guild:
        try:
            return self._guilds[self.guild_id if guild_id is None else guild_id]
        except KeyError:
            raise KeyError(f"unknown guild {guild_id}: add_guild() first") from None

    def _guild_or_404(self, guild_id: str) -> _Guild:
        if int(guild_id) not in self._guilds:
            raise ApiError(404, 10004, "Unknown Guild")
        return self._guilds[int(guild_id)]

    def _channel(self, channel_id: int) -> Json:
        try:
            return self._channels[channel_id]
        except KeyError:
            raise KeyError(f"unknown channel {channel_id}: add_channel() first") from None

    def _channel_or_404(self, channel_id: str) -> Json:
        if int(channel_id) not in self._channels:
            raise ApiError(404, 10003, "Unknown Channel")
        return self._channels[int(channel_id)]

    def _message_or_404(self, channel_id: str, message_id: str) -> Json:
        self._channel_or_404(channel_id)
        message = self._messages.get(int(message_id))
        if message is None or message["channel_id"] != str(channel_id):
            raise ApiError(404, 10008, "Unknown Message")
        return message

    def _permissions(self, guild: _Guild, user_id: int) -> int:
        if user_id == guild.owner_id:
            return _ALL_PERMISSIONS
        value = int(guild.roles[guild.id]["permissions"])
        for role_id in guild.members.get(user_id, {}).get("roles", []):
            value |= int(guild.roles[int(role_id)]["permissions"])
        return _ALL_PERMISSIONS if value & _ADMINISTRATOR else value

    def _member_with_user(self, guild: _Guild, user_id: int) -> Json:
        return {**guild.members[user_id], "user": self._users[user_id]}

    def _guild_create(self, guild: _Guild) -> Json:
        gid = str(guild.id)
        channels = [{k: v for k, v in c.items() if k != "guild_id"} for c in self._channels.values()
                    if c.get("guild_id") == gid and c["type"] not in THREAD_TYPES]
        threads = [t for t in self._channels.values()
                   if t.get("guild_id") == gid and t["type"] in THREAD_TYPES and not t["thread_metadata"]["archived"]]
        return {
            "id": gid, "name": guild.name, "icon": None, "splash": None, "discovery_splash": None, "banner": None,
            "owner_id": str(guild.owner_id), "application_id": None, "afk_channel_id": None, "afk_timeout": 300,
            "verification_level": 0, "default_message_notifications": 0, "explicit_content_filter": 0,
            "roles": list(guild.roles.values()), "emojis": [], "stickers": [], "features": [], "mfa_level": 0,
            "system_channel_id": None, "system_channel_flags": 0, "rules_channel_id": None,
            "public_updates_channel_id": None, "safety_alerts_channel_id": None, "max_members": 500000,
            "vanity_url_code": None, "description": None, "premium_tier": 0, "premium_subscription_count": 0,
            "preferred_locale": "en-US", "nsfw_level": 0, "premium_progress_bar_enabled": False,
            "joined_at": guild.joined_at, "large": False, "unavailable": False, "lazy": True,
            "member_count": len(guild.members), "voice_states": [], "presences": [],
            "members": [self._member_with_user(guild, uid) for uid in guild.members],
            "channels": channels, "threads": threads, "stage_instances": [], "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }

    def _mentions(self, content: str, guild_id: Optional[str]) -> tuple[list[Json], list[str]]:
        guild = self._guilds.get(int(guild_id)) if guild_id else None
        users: list[Json] = []
        seen: set[int] = set()
        for raw in _USER_MENTION.findall(content):
            uid = int(raw)
            if uid in seen or uid not in self._users:
                continue
            seen.add(uid)
            mention = dict(self._users[uid])
            if guild is not None and uid in guild.members:
                mention["member"] = dict(guild.members[uid])
            users.append(mention)
        roles = [r for r in _ROLE_MENTION.findall(content) if guild is not None and int(r) in guild.roles]
        return users, roles

    def _base_message(self, channel_id: int, author: Json, content: str, *, kind: int = 0) -> Json:
        channel = self._channels[channel_id]
        mentions, role_mentions = self._mentions(content, channel.get("guild_id"))
        return {
            "id": str(self._snowflake()), "channel_id": str(channel_id), "type": kind, "content": content,
            "author": author, "timestamp": _iso(), "edited_timestamp": None, "tts": False,
            "mention_everyone": False, "mentions": mentions, "mention_roles": role_mentions,
            "attachments": [], "embeds": [], "components": [], "pinned": False, "flags": 0,
        }

    def _user_message(self, user_id: int, channel_id: int, content: str, *, as_bot: bool = False,
                      reply_to: Optional[int] = None) -> Json:
        author = dict(self._user(user_id))
        if as_bot:
            author["bot"] = True
        message = self._base_message(channel_id, author, content)
        if reply_to is not None:
            self._reference(message, {"message_id": reply_to})
        self._store(message)
        return self._gateway_message(message)

    def _bot_message(self, channel_id: int, body: Json, files: list[Json], *, kind: int = 0,
                     interaction: Optional[_Interaction] = None) -> Json:
        content = body.get("content") or ""
        if len(content) > 2000:
            raise _form_error("content", "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.")
        if not (content or body.get("embeds") or files or body.get("components") or body.get("sticker_ids")
                or body.get("poll") or int(body.get("flags") or 0) & LOADING or kind == 18):
            raise ApiError(400, 50006, "Cannot send an empty message")
        message = self._base_message(channel_id, self._bot_user(), content, kind=kind)
        message.update({"embeds": body.get("embeds") or [], "components": body.get("components") or [],
                        "flags": int(body.get("flags") or 0), "tts": bool(body.get("tts")),
                        "attachments": self._attachments(channel_id, files)})
        if body.get("nonce") is not None:
            message["nonce"] = body["nonce"]
        if body.get("message_reference"):
            self._reference(message, body["message_reference"])
        if interaction is not None:
            message["webhook_id"] = str(self.app_id)
            message["application_id"] = str(self.app_id)
            user = self._users[interaction.user_id]
            owners = {"0": str(interaction.guild_id)} if interaction.guild_id else {"0": "0"}
            message["interaction_metadata"] = {"id": str(interaction.id), "type": interaction.type, "user": user,
                                               "authorizing_integration_owners": owners}
            if interaction.type == 2:
                message["type"] = 20  # CHAT_INPUT_COMMAND
                message["interaction"] = {"id": str(interaction.id), "type": 2, "name": interaction.name, "user": user}
            else:
                message["interaction_metadata"]["interacted_message_id"] = str(interaction.message_id)
        return message

    def _reference(self, message: Json, reference: Json) -> None:
        target_id = int(reference.get("message_id") or 0)
        target = self._messages.get(target_id)
        if target is None and reference.get("fail_if_not_exists", True):
            raise _form_error("message_reference", "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "Unknown message")
        channel = self._channels[int(message["channel_id"])]
        ref: Json = {"type": 0, "message_id": str(target_id), "channel_id": message["channel_id"]}
        if channel.get("guild_id"):
            ref["guild_id"] = channel["guild_id"]
        message["message_reference"] = ref
        message["referenced_message"] = target
        message["type"] = 19  # REPLY

    def _attachments(self, channel_id: int, files: list[Json]) -> list[Json]:
        result = []
        for f in files:
            aid = self._snowflake()
            url = f"{self.base_url}/attachments/{channel_id}/{aid}/{f['filename']}"
            result.append({"id": str(aid), "filename": f["filename"], "size": f["size"], "url": url,
                           "proxy_url": url, "content_type": f["content_type"]})
        return result

    def _edit(self, message: Json, body: Json, files: list[Json]) -> None:
        if "content" in body:
            content = body["content"] or ""
            if len(content) > 2000:
                raise _form_error("content", "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.")
            message["content"] = content
            message["mentions"], message["mention_roles"] = self._mentions(
                content, self._channels.get(int(message["channel_id"]), {}).get("guild_id"))
        for key in ("embeds", "components"):
            if key in body:
                message[key] = body[key] or []
        if "flags" in body:
            message["flags"] = int(body["flags"] or 0) | (message["flags"] & EPHEMERAL)
        if "content" in body or "embeds" in body or "components" in body:
            message["flags"] &= ~LOADING
        if files:
            message["attachments"] = self._attachments(int(message["channel_id"]), files)
        elif "attachments" in body:
            keep = {str(a.get("id")) for a in body["attachments"] or []}
            message["attachments"] = [a for a in message["attachments"] if a["id"] in keep]
        message["edited_timestamp"] = _iso()

    def _store(self, message: Json) -> None:
        self._messages[int(message["id"])] = message
        channel = self._channels.get(int(message["channel_id"]))
        if channel is not None:
            channel["last_message_id"] = message["id"]
            if channel["type"] in THREAD_TYPES:
                channel["message_count"] += 1
                channel["total_message_sent"] += 1

    def _gateway_message(self, message: Json) -> Json:
        """A stored message as MESSAGE_CREATE carries it: plus guild_id and the author's member."""
        channel = self._channels.get(int(message["channel_id"]), {})
        payload = dict(message)
        if channel.get("guild_id"):
            payload["guild_id"] = channel["guild_id"]
            guild = self._guilds[int(channel["guild_id"])]
            author_id = int(message["author"]["id"])
            if author_id in guild.members and "webhook_id" not in message:
                payload["member"] = dict(guild.members[author_id])
        return payload

    def _record(self, kind: str, channel_id: Optional[int], body: Json, message: Optional[Json], files: list[Json],
                *, interaction_id: Optional[int] = None, callback_type: Optional[int] = None,
                message_id: Optional[int] = None, raw: Optional[Json] = None) -> None:
        sent = SentMessage(
            kind=kind, channel_id=channel_id, content=body.get("content"), embeds=body.get("embeds") or [],
            components=body.get("components") or [], flags=int(body.get("flags") or 0),
            allowed_mentions=body.get("allowed_mentions"), message_reference=body.get("message_reference"),
            interaction_id=interaction_id, callback_type=callback_type, raw=raw if raw is not None else body,
            message_id=message_id if message_id is not None else (int(message["id"]) if message else None),
            files=[f["filename"] for f in files],
        )
        self.sent.append(sent)
        length = len(sent.content or "")
        log.info("bot sent %s to channel %s (%d chars)", kind, channel_id, length)
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _place(self, user_id: int, channel_id: Optional[int], guild: bool) -> tuple[int, Optional[int]]:
        """Where an interaction happens: (channel id, guild id or None for a DM)."""
        self._user(user_id)
        if not guild:
            return (self.dm_channel_id(user_id) if channel_id is None else channel_id), None
        channel_id = self.channel_id if channel_id is None else channel_id
        channel = self._channel(channel_id)
        if "guild_id" not in channel:
            raise ValueError(f"channel {channel_id} is not a guild channel (guild=False for DMs)")
        guild_id = int(channel["guild_id"])
        if user_id not in self._guilds[guild_id].members:
            raise KeyError(f"user {user_id} is not a member of guild {guild_id}: add_member() first")
        return channel_id, guild_id

    def _new_interaction(self, kind: int, user_id: int, channel_id: int, guild_id: Optional[int],
                         *, name: Optional[str] = None) -> _Interaction:
        interaction = _Interaction(id=self._snowflake(), token=f"standin-{secrets.token_urlsafe(24)}", type=kind,
                                   channel_id=channel_id, guild_id=guild_id, user_id=user_id,
                                   created=time.monotonic(), name=name)
        self._interactions[interaction.id] = interaction
        return interaction

    def _interaction_payload(self, interaction: _Interaction, data: Json) -> Json:
        channel = dict(self._channels[interaction.channel_id])
        payload: Json = {
            "id": str(interaction.id), "application_id": str(self.app_id), "type": interaction.type, "data": data,
            "channel_id": str(interaction.channel_id), "token": interaction.token, "version": 1,
            "locale": "en-US", "entitlements": [], "entitlement_sku_ids": [], "attachment_size_limit": 10 * 1024 * 1024,
        }
        if interaction.guild_id is not None:
            guild = self._guilds[interaction.guild_id]
            member = {**self._member_with_user(guild, interaction.user_id),
                      "permissions": str(self._permissions(guild, interaction.user_id))}
            channel["permissions"] = member["permissions"]
            payload.update({
                "guild_id": str(guild.id), "guild": {"id": str(guild.id), "locale": "en-US", "features": []},
                "guild_locale": "en-US", "member": member, "context": 0,
                "app_permissions": str(self._permissions(guild, self.bot_user_id)),
                "authorizing_integration_owners": {"0": str(guild.id)},
            })
        else:
            payload.update({"user": self._users[interaction.user_id], "context": 1,
                            "app_permissions": str(_EVERYONE_PERMISSIONS),
                            "authorizing_integration_owners": {"0": "0"}})
        payload["channel"] = channel
        return payload


async def _send_quietly(ws: web.WebSocketResponse, payload: Json) -> None:
    """Send one gateway frame; a connection going away is the client's business, not an error."""
    try:
        await ws.send_str(json.dumps(payload))
    except (ConnectionError, RuntimeError):
        log.debug("gateway frame not sent: the connection is closing")


def _text(body: Json) -> str:
    """A control request's message text: "content" (Discord's word) or "text" (the Slack stand-in's)."""
    return str(body.get("content", body.get("text", "")))


def _required_intent(event: str, data: Json) -> int:
    if event.startswith("MESSAGE_") and not event.startswith("MESSAGE_REACTION"):
        return GUILD_MESSAGES if "guild_id" in data else DIRECT_MESSAGES
    if event in ("GUILD_CREATE", "CHANNEL_CREATE", "THREAD_CREATE", "GUILD_ROLE_CREATE"):
        return GUILDS
    if event == "GUILD_MEMBER_ADD":
        return GUILD_MEMBERS
    return 0


def _custom_ids(components: list[Json]) -> Iterator[str]:
    for component in components:
        if "custom_id" in component:
            yield component["custom_id"]
        yield from _custom_ids(component.get("components") or [])


async def _read_body(request: web.Request) -> tuple[Any, list[Json]]:
    """JSON, or multipart with `payload_json` plus `files[n]` (what discord.py sends with files)."""
    if request.content_type.startswith("multipart/"):
        form = await request.post()
        body = json.loads(str(form.get("payload_json") or "{}"))
        files = []
        for value in form.values():
            if isinstance(value, web.FileField):
                data = value.file.read()
                files.append({"filename": value.filename, "size": len(data), "content_type": value.content_type})
        return body, files
    raw = await request.read()
    if not raw:
        return None, []
    try:
        return json.loads(raw), []
    except ValueError:
        raise ApiError(400, 50109, "The request body contains invalid JSON.") from None


# --------------------------------------------------------------------------------------
# Command line: a stand-in to point a real bot process at
# --------------------------------------------------------------------------------------


def _print_banner(standin: DiscordStandIn) -> None:
    base = standin.base_url
    print(f"Discord stand-in listening on {base}", flush=True)
    print("Point the bot at it (then `make run` or `bot run`):")
    print(f"  export DISCORD_TOKEN={standin.token}")
    print(f"  export DISCORD_API_BASE_URL={standin.api_base}")
    print(f"  export DISCORD_GATEWAY_URL={standin.gateway_url}")
    print(f"  export BOT_DISCORD_GUILD_ID={standin.guild_id}   # slash commands sync to the stand-in guild")
    print("Then be a fan (user ids are made up; unknown ones join the guild):")
    print(f"""  curl -s -X POST {base}/_standin/dm -d '{{"user": 4242, "content": "hi"}}'""")
    print(f"""  curl -s -X POST {base}/_standin/message -d '{{"user": 4242, "content": "hi", "mention_bot": true}}'""")
    print(f"""  curl -s -X POST {base}/_standin/slash -d '{{"user": 4242, "name": "human"}}'""")
    print(f"""  curl -s -X POST {base}/_standin/click -d '{{"user": 4242, "custom_id": "...", "message_id": "..."}}'""")
    print(f"  curl -s {base}/_standin/sent     # what the bot sent", flush=True)


async def _serve(args: argparse.Namespace) -> None:
    standin = DiscordStandIn(token=args.token, heartbeat_interval=args.heartbeat_interval,
                             response_deadline=None if args.no_deadline else 3.0)
    await standin.start(port=args.port, host=args.host)
    _print_banner(standin)
    shown = 0
    try:
        while True:
            await asyncio.sleep(0.2)
            if args.echo:
                for item in standin.sent[shown:]:
                    print(f"[bot -> {item.kind} channel {item.channel_id}] {item.content or ''}", flush=True)
            shown = len(standin.sent)
    finally:
        await standin.aclose()


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.testing.discord_standin",
                                     description="A local stand-in for Discord's gateway and REST API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3002)
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    parser.add_argument("--heartbeat-interval", type=int, default=41250, help="milliseconds")
    parser.add_argument("--echo", action="store_true", help="print what the bot sends (message text) to stdout")
    parser.add_argument("--no-deadline", action="store_true", help="no 3 s limit for the first interaction response")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(_serve(args))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
