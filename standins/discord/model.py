"""Discord's constants, the stand-in's records and error answers, and small helpers shared by its parts."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Optional

from aiohttp import web

log = logging.getLogger("standins.discord")


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
# discord/permissions.py (discord.py 2.7.1): send_messages 1 << 11, create_public_threads 1 << 35,
# send_messages_in_threads 1 << 38.
SEND_MESSAGES, CREATE_PUBLIC_THREADS, SEND_MESSAGES_IN_THREADS = 1 << 11, 1 << 35, 1 << 38
#: What a bot may send (the API's BASE_TYPE_MAX_LENGTH on `content`) ...
BOT_MESSAGE_CHARS = 2000
#: ... and what a user may send: 2,000, or 4,000 with Nitro (support.discord.com, "Discord Nitro":
#: "Longer messages: up to 4,000 characters"). The gateway delivers them whole to bots.
NITRO_MESSAGE_CHARS = 4000

_NAME_RE = re.compile(r"^[-_\w]{1,32}$")
_USER_MENTION = re.compile(r"<@!?(\d+)>")
_ROLE_MENTION = re.compile(r"<@&(\d+)>")

Json = dict[str, Any]


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: Optional[datetime] = None) -> str:
    return (moment or _now()).isoformat()

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
