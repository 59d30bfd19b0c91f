"""A local stand-in for Slack: Web API, Socket Mode, Events API (HTTP) and response URLs.

Why: the Slack connector is tested with the real slack-bolt and slack-sdk, which only need
their URLs pointed here (`AsyncWebClient(base_url=standin.api_base_url)`; Socket Mode gets
its ws:// URL from `apps.connections.open`). Users can also try the bot offline with it:
`python -m bot.testing.slack_standin --port 3001`.

What the bot sends is recorded in `sent`, every Web API call in `calls`. Fans' and
moderators' activity is delivered with `send_dm`, `send_mention`, `send_channel_message`,
`send_command` and `click_button`, over the Socket Mode websocket or as signed HTTP POSTs.
Shapes follow the installed slack_sdk / slack_bolt sources and Slack's documentation.
Nothing here logs message text at INFO or above.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Optional
from urllib.parse import urlencode

import aiohttp
from aiohttp import WSCloseCode, WSMsgType, web
from slack_sdk.signature import SignatureVerifier

log = logging.getLogger(__name__)

#: The deprecated verification token Slack still puts in payloads; Bolt ignores it.
VERIFICATION_TOKEN = "standin-verification-token"
#: Slack's own User-Agent on Events API requests.
SLACKBOT_UA = "Slackbot 1.0 (+https://api.slack.com/robots)"
#: Slack rejects longer message text with `msg_too_long`, more blocks with `invalid_blocks`.
MAX_TEXT_CHARS = 40_000
MAX_BLOCKS = 50
MAX_SECTION_TEXT_CHARS = 3_000
#: A response_url takes at most five messages (Slack: "up to 5 times within 30 minutes").
RESPONSE_URL_USES = 5
BOT_SCOPES = "app_mentions:read,channels:history,chat:write,commands,groups:history,im:history,im:write,usergroups:read,users:read"


@dataclass
class SentMessage:
    """One message the bot made visible to someone."""

    method: str  # "chat.postMessage" | "chat.postEphemeral" | "chat.update" | "response_url" | "ack"
    channel: Optional[str]
    text: Optional[str]
    blocks: Optional[list[Any]] = None
    thread_ts: Optional[str] = None
    user: Optional[str] = None  # who sees it: ephemeral target, or the user of a command/click
    ts: Optional[str] = None
    response_type: Optional[str] = None  # response_url / ack: "ephemeral" | "in_channel"
    replace_original: Optional[bool] = None
    delete_original: Optional[bool] = None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass
class Delivery:
    """What happened to one delivery of fan/moderator activity to the bot."""

    kind: str  # "events_api" | "slash_commands" | "interactive"
    mode: str  # "socket" | "http"
    payload: dict[str, Any]  # the event_callback body, the command fields or the interactive payload
    status: int  # HTTP status; 200 when acked over the socket; 0 when not answered within ack_timeout
    body: str = ""  # the HTTP response body, or the socket ack's payload as JSON
    ack_payload: Optional[dict[str, Any]] = None
    event_id: Optional[str] = None
    envelope_id: Optional[str] = None
    latency_ms: Optional[float] = None
    retry: int = 0  # retry number of the last attempt (0: first delivery)
    attempts: int = 1

    @property
    def acked(self) -> bool:
        return 200 <= self.status < 300


class _SlackError(Exception):
    """An `{"ok": false, "error": ...}` answer."""


@dataclass
class _ResponseTarget:
    channel: str
    user: str
    uses_left: int = RESPONSE_URL_USES


@dataclass
class _Socket:
    ws: web.WebSocketResponse
    transport: Optional[asyncio.Transport]


class SlackStandIn:
    """An aiohttp server on 127.0.0.1 that answers like Slack. See the module docstring."""

    def __init__(
        self,
        bot_token: str = "xoxb-test",
        app_token: str = "xapp-test",
        signing_secret: str = "test-signing-secret",
        bot_user_id: str = "UBOT",
        bot_id: str = "BBOT",
        team_id: str = "T0001",
        app_id: str = "A0001",
        *,
        bot_name: str = "fan-assistant",
        team_name: str = "Stand-in Fans",
        team_domain: str = "standin",
        mode: str = "socket",
        http_target: Optional[str] = None,
        ack_timeout: float = 3.0,
        redeliver_unacked: bool = True,
        max_redeliveries: int = 1,
        connect_timeout: float = 10.0,
    ) -> None:
        self.bot_token, self.app_token, self.signing_secret = bot_token, app_token, signing_secret
        self.bot_user_id, self.bot_id, self.team_id, self.app_id = bot_user_id, bot_id, team_id, app_id
        self.bot_name, self.team_name, self.team_domain = bot_name, team_name, team_domain
        self.mode = mode
        self.http_target = http_target
        #: Slack's 3 s: an event not acked by then is redelivered (events only, as Slack does).
        self.ack_timeout = ack_timeout
        self.redeliver_unacked = redeliver_unacked
        self.max_redeliveries = max_redeliveries
        #: How long a Socket Mode delivery waits for a connected client.
        self.connect_timeout = connect_timeout

        self.sent: list[SentMessage] = []
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.rate_limited: list[str] = []
        self.deliveries: list[Delivery] = []
        self.envelopes: list[dict[str, Any]] = []
        #: envelope_id -> the ack's payload (None for a bare ack)
        self.acks: dict[str, Optional[dict[str, Any]]] = {}
        #: Socket Mode connections that got a hello, over the stand-in's life.
        self.socket_connections = 0

        self._users: dict[str, dict[str, Any]] = {}
        self._channels: dict[str, dict[str, Any]] = {}
        self._usergroups: dict[str, list[str]] = {}
        self._history: dict[str, list[dict[str, Any]]] = {}
        self._rate_limits: dict[str, list[int]] = {}  # method -> [calls left to refuse, retry_after]
        self._response_urls: dict[str, _ResponseTarget] = {}
        self._tickets: set[str] = set()
        #: (method, ts) -> the Slack error to answer with: `fail("chat.delete", ts, "cant_delete_message")`
        self._failures: dict[tuple[str, str], str] = {}
        self._refused_dms: dict[str, str] = {}  # user -> conversations.open error (refuse_dm)
        #: (channel, ts) of each message the bot deleted with chat.delete
        self.deleted: list[tuple[str, str]] = []
        self._sockets: list[_Socket] = []
        self._pending_acks: dict[str, asyncio.Future[Optional[dict[str, Any]]]] = {}
        self._ts_count = 0
        self._event_count = 0
        self._changed = asyncio.Event()  # replaced by a fresh one on every change (see _notify)
        self._verifier = SignatureVerifier(signing_secret)
        self._runner: Optional[web.AppRunner] = None
        self._session: Optional[aiohttp.ClientSession] = None
        self._port: Optional[int] = None
        self._methods: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.update": self._chat_update,
            "chat.delete": self._chat_delete,
            "conversations.open": self._conversations_open,
            "conversations.replies": self._conversations_replies,
            "conversations.members": self._conversations_members,
            "usergroups.users.list": self._usergroups_users_list,
            "users.info": self._users_info,
            "apps.connections.open": self._apps_connections_open,
        }
        self.add_user(bot_user_id, bot_name, is_bot=True)

    # ------------------------------------------------------------------ lifecycle

    async def start(self, port: int = 0) -> "SlackStandIn":
        app = web.Application()
        app.add_routes(
            [
                web.route("*", "/api/{method}", self._handle_api),
                web.post("/commands/{key}", self._handle_response_url),
                web.get("/link", self._handle_link),
                web.get("/link/", self._handle_link),
                web.post("/_standin/dm", self._control_dm),
                web.post("/_standin/message", self._control_message),
                web.post("/_standin/command", self._control_command),
                web.get("/_standin/sent", self._control_sent),
            ]
        )
        app.on_shutdown.append(self._close_sockets)
        self._runner = web.AppRunner(app, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self._port = self._runner.addresses[0][1]
        self._session = aiohttp.ClientSession()
        log.info("Slack stand-in listening on %s", self.url)
        return self

    async def aclose(self) -> None:
        for future in self._pending_acks.values():
            future.cancel()
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> "SlackStandIn":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def url(self) -> str:
        if self._port is None:
            raise RuntimeError("the stand-in is not started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def api_base_url(self) -> str:
        """What `AsyncWebClient(base_url=...)` takes; the trailing slash matters (urljoin)."""
        return f"{self.url}/api/"

    # ------------------------------------------------------------------ configuration

    def add_user(self, user_id: str, name: str, is_bot: bool = False) -> None:
        self._users[user_id] = {
            "id": user_id,
            "team_id": self.team_id,
            "name": name,
            "real_name": name,
            "deleted": False,
            "is_bot": is_bot,
            "is_app_user": False,
            "profile": {"real_name": name, "display_name": name, "team": self.team_id},
        }

    def add_channel(self, channel_id: str, members: Optional[list[str]] = None, name: Optional[str] = None) -> None:
        self._channels[channel_id] = {"members": list(members or []), "name": name or channel_id.lower()}

    def add_usergroup(self, group_id: str, members: Optional[list[str]] = None) -> None:
        self._usergroups[group_id] = list(members or [])

    def rate_limit(self, method: str = "chat.postMessage", times: int = 1, retry_after: int = 1) -> None:
        """The next `times` calls to `method` get HTTP 429 with `Retry-After: retry_after`."""
        self._rate_limits[method] = [times, retry_after]

    def refuse_dm(self, user_id: str, error: str = "user_not_visible") -> None:
        """The bot may no longer open a DM with the user: `conversations.open` answers `error`.
        Its reference lists `user_disabled` (a deactivated account), `user_not_found`, and
        `user_not_visible` ("the calling user is restricted from seeing the requested user",
        e.g. a guest or an external Slack Connect member who can still be in a shared channel)."""
        self._refused_dms[user_id] = error

    def fail(self, method: str, ts: str, error: str) -> None:
        """Makes `method` ("chat.delete", "chat.update") answer `error` for the message `ts`,
        as Slack does when, e.g., a workspace's retention or compliance settings forbid it."""
        self._failures[(method, ts)] = error

    def messages_in(self, channel: str) -> list[dict[str, Any]]:
        """What a person would see in the channel now (deleted messages are gone)."""
        return list(self._history.get(channel, []))

    def dm_channel(self, user_id: str) -> str:
        """The bot's DM channel with a user: deterministic, "D" + the id without its U/W."""
        return "D" + (user_id[1:] if user_id[:1] in ("U", "W") else user_id)

    # ------------------------------------------------------------------ recordings

    def clear(self) -> None:
        self.sent.clear()
        self.calls.clear()
        self.rate_limited.clear()
        self.deliveries.clear()
        self.envelopes.clear()
        self.acks.clear()

    async def wait_for_sent(
        self,
        predicate: Callable[[SentMessage], bool] = lambda m: True,
        count: int = 1,
        timeout: float = 10.0,
    ) -> list[SentMessage]:
        """Every sent message matching `predicate`, once there are at least `count` of them."""

        def matching() -> list[SentMessage]:
            return [m for m in self.sent if predicate(m)]

        try:
            await self._wait(lambda: len(matching()) >= count, timeout)
        except asyncio.TimeoutError:
            summary = "\n".join(f"  {m.method} {m.channel} thread={m.thread_ts} text={(m.text or '')[:80]!r}" for m in self.sent)
            raise AssertionError(
                f"waited {timeout:g}s for {count} sent message(s) matching the predicate, "
                f"found {len(matching())}; sent so far ({len(self.sent)}):\n{summary or '  (nothing)'}"
            ) from None
        return matching()

    async def _wait(self, ready: Callable[[], bool], timeout: float) -> None:
        """Until `ready()` holds, rechecked on every change; asyncio.TimeoutError after `timeout`."""
        deadline = time.monotonic() + timeout
        while not ready():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise asyncio.TimeoutError
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                pass

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _record_sent(self, message: SentMessage) -> None:
        self.sent.append(message)
        log.debug("bot sent %s to %s", message.method, message.channel)
        self._notify()

    # ------------------------------------------------------------------ Web API

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args = await _request_args(request)
        token = _bearer(request) or str(args.pop("token", "") or "")
        self.calls.append((method, args))
        log.debug("api call %s", method)
        handler = self._methods.get(method)
        if handler is None:
            return _slack_json({"ok": False, "error": "unknown_method"})
        expected, other = (
            (self.app_token, self.bot_token) if method == "apps.connections.open" else (self.bot_token, self.app_token)
        )
        if not token:
            return _slack_json({"ok": False, "error": "not_authed"})
        if token == other:
            return _slack_json({"ok": False, "error": "not_allowed_token_type"})
        if token != expected:
            return _slack_json({"ok": False, "error": "invalid_auth"})
        limit = self._rate_limits.get(method)
        if limit is not None and limit[0] > 0:
            limit[0] -= 1
            self.rate_limited.append(method)
            return _slack_json({"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": str(limit[1])})
        try:
            answer = {"ok": True, **handler(args)}
        except _SlackError as error:
            answer = {"ok": False, "error": str(error)}
        headers = {"X-OAuth-Scopes": BOT_SCOPES} if token == self.bot_token else {}
        return _slack_json(answer, headers=headers)

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": f"https://{self.team_domain}.slack.com/",
            "team": self.team_name,
            "user": self.bot_name,
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel_arg(args)
        text, blocks = _message_content(args)
        message = self._bot_message(text, blocks, args.get("thread_ts"))
        self._store(channel, message)
        self._record_sent(
            SentMessage("chat.postMessage", channel, text, blocks, args.get("thread_ts"), ts=message["ts"], raw=args)
        )
        return {"channel": channel, "ts": message["ts"], "message": message}

    def _chat_post_ephemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel_arg(args)
        user = args.get("user")
        if not user:
            raise _SlackError("user_not_found")
        members = self._channels.get(channel, {}).get("members")
        if members and user not in members:
            raise _SlackError("user_not_in_channel")
        text, blocks = _message_content(args)
        ts = self._next_ts()
        self._record_sent(
            SentMessage("chat.postEphemeral", channel, text, blocks, args.get("thread_ts"), user, ts, raw=args)
        )
        return {"message_ts": ts}

    def _chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel_arg(args)
        failure = self._failures.get(("chat.update", str(args.get("ts") or "")))
        if failure:
            raise _SlackError(failure)
        message = self._find(channel, str(args.get("ts") or ""))
        if message is None:
            raise _SlackError("message_not_found")
        if message.get("bot_id") != self.bot_id:
            raise _SlackError("cant_update_message")
        text, blocks = _message_content(args)
        message.update(text=text, edited={"user": self.bot_user_id, "ts": self._next_ts()})
        if blocks is not None:
            message["blocks"] = blocks
        self._record_sent(
            SentMessage("chat.update", channel, text, blocks, message.get("thread_ts"), ts=message["ts"], raw=args)
        )
        return {"channel": channel, "ts": message["ts"], "text": text, "message": message}

    def _chat_delete(self, args: dict[str, Any]) -> dict[str, Any]:
        """chat.delete (docs.slack.dev/reference/methods/chat.delete): "When used with a bot
        token, this method may delete only messages posted by that bot" (else
        `cant_delete_message`); an unknown ts is `message_not_found`, an unknown channel
        `channel_not_found`. A deleted parent's replies stay (Slack keeps the thread)."""
        channel = self._channel_arg(args)
        ts = str(args.get("ts") or "")
        if channel not in self._channels and channel not in self._history and not channel.startswith("D"):
            raise _SlackError("channel_not_found")
        failure = self._failures.get(("chat.delete", ts))
        if failure:
            raise _SlackError(failure)
        message = self._find(channel, ts)
        if message is None:
            raise _SlackError("message_not_found")
        if message.get("bot_id") != self.bot_id:
            raise _SlackError("cant_delete_message")
        self._history[channel].remove(message)
        self.deleted.append((channel, ts))
        self._notify()
        return {"channel": channel, "ts": ts}

    def _conversations_open(self, args: dict[str, Any]) -> dict[str, Any]:
        users = [u for u in str(args.get("users") or "").split(",") if u]
        if args.get("channel"):
            return {"channel": {"id": args["channel"]}}
        if not users:
            raise _SlackError("users_list_not_supplied")
        refused = next((self._refused_dms[u] for u in users if u in self._refused_dms), None)
        if refused:
            raise _SlackError(refused)
        if len(users) == 1:
            return {"channel": {"id": self.dm_channel(users[0])}, "no_op": True, "already_open": True}
        digest = hashlib.sha256(",".join(sorted(users)).encode()).hexdigest()[:10].upper()
        return {"channel": {"id": f"G{digest}"}}

    def _conversations_replies(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel_arg(args)
        ts = str(args.get("ts") or "")
        if self._find(channel, ts) is None:
            raise _SlackError("thread_not_found")
        thread = [m for m in self._history.get(channel, []) if m["ts"] == ts or m.get("thread_ts") == ts]
        return {"messages": sorted(thread, key=lambda m: _ts_key(m["ts"])), "has_more": False,
                "response_metadata": {"next_cursor": ""}}

    def _conversations_members(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel_arg(args)
        if channel not in self._channels:
            raise _SlackError("channel_not_found")
        return {"members": list(self._channels[channel]["members"]), "response_metadata": {"next_cursor": ""}}

    def _usergroups_users_list(self, args: dict[str, Any]) -> dict[str, Any]:
        group = str(args.get("usergroup") or "")
        if group not in self._usergroups:
            raise _SlackError("no_such_subteam")
        return {"users": list(self._usergroups[group])}

    def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        user = self._users.get(str(args.get("user") or ""))
        if user is None:
            raise _SlackError("user_not_found")
        return {"user": user}

    def _apps_connections_open(self, args: dict[str, Any]) -> dict[str, Any]:
        ticket = uuid.uuid4().hex
        self._tickets.add(ticket)
        return {"url": f"ws://127.0.0.1:{self._port}/link/?ticket={ticket}&app_id={self.app_id}"}

    def _channel_arg(self, args: dict[str, Any]) -> str:
        """Slack takes a user id as channel for the bot's DM with that user."""
        channel = str(args.get("channel") or "")
        if not channel:
            raise _SlackError("channel_not_found")
        return self.dm_channel(channel) if channel[:1] in ("U", "W") else channel

    def _bot_message(self, text: Optional[str], blocks: Optional[list[Any]], thread_ts: Optional[str]) -> dict[str, Any]:
        message: dict[str, Any] = {
            "type": "message",
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "team": self.team_id,
            "text": text or "",
            "ts": self._next_ts(),
            "bot_profile": {"id": self.bot_id, "app_id": self.app_id, "name": self.bot_name, "team_id": self.team_id},
        }
        if blocks is not None:
            message["blocks"] = blocks
        if thread_ts:
            message["thread_ts"] = str(thread_ts)
        return message

    def _store(self, channel: str, message: dict[str, Any]) -> None:
        thread_ts = message.get("thread_ts")
        if thread_ts and thread_ts != message["ts"]:
            parent = self._find(channel, thread_ts)
            if parent is not None:
                message.setdefault("parent_user_id", parent.get("user"))
                parent["thread_ts"] = thread_ts
                parent["reply_count"] = parent.get("reply_count", 0) + 1
        self._history.setdefault(channel, []).append(message)

    def _find(self, channel: str, ts: str) -> Optional[dict[str, Any]]:
        return next((m for m in self._history.get(channel, []) if m["ts"] == ts), None)

    def _next_ts(self) -> str:
        """Unique, increasing, Slack-shaped: "1700000000.000100", "1700000000.000200", ..."""
        self._ts_count += 1
        micros = 1_700_000_000_000_000 + self._ts_count * 100
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    # ------------------------------------------------------------------ response_url

    def _new_response_url(self, channel: str, user: str) -> str:
        key = uuid.uuid4().hex
        self._response_urls[key] = _ResponseTarget(channel, user)
        return f"{self.url}/commands/{key}"

    async def _handle_response_url(self, request: web.Request) -> web.Response:
        target = self._response_urls.get(request.match_info["key"])
        if target is None:
            return web.json_response({"ok": False, "error": "expired_url"}, status=404)
        if target.uses_left <= 0:
            return web.json_response({"ok": False, "error": "used_url"}, status=404)
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return web.json_response({"ok": False, "error": "invalid_payload"}, status=400)
        target.uses_left -= 1
        text, blocks = body.get("text"), body.get("blocks")
        self._record_sent(
            SentMessage(
                "response_url",
                target.channel,
                text,
                blocks,
                body.get("thread_ts"),
                target.user,
                response_type=body.get("response_type", "ephemeral"),
                replace_original=body.get("replace_original"),
                delete_original=body.get("delete_original"),
                raw=body,
            )
        )
        return web.json_response({"ok": True})

    # ------------------------------------------------------------------ Socket Mode

    async def _handle_link(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("ticket") not in self._tickets:
            raise web.HTTPUnauthorized(text="invalid ticket")
        ws = web.WebSocketResponse(timeout=2.0)  # autoping answers the client's pings
        await ws.prepare(request)
        await ws.send_json(
            {
                "type": "hello",
                "num_connections": len(self._sockets) + 1,
                "debug_info": {"host": "applink-standin", "build_number": 1, "approximate_connection_time": 18060},
                "connection_info": {"app_id": self.app_id},
            }
        )
        socket = _Socket(ws, request.transport)  # type: ignore[arg-type]
        self._sockets.append(socket)
        self.socket_connections += 1
        log.info("Socket Mode client connected (%d open)", len(self._sockets))
        self._notify()
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    self._on_socket_text(message.data)
        finally:
            self._sockets.remove(socket)
            log.info("Socket Mode client disconnected (%d open)", len(self._sockets))
            self._notify()
        return ws

    def _on_socket_text(self, data: str) -> None:
        try:
            ack = json.loads(data)
            envelope_id = ack["envelope_id"]
        except (json.JSONDecodeError, KeyError, TypeError):
            log.warning("Socket Mode client sent something that is not an ack")
            return
        self.acks[envelope_id] = ack.get("payload")
        future = self._pending_acks.pop(envelope_id, None)
        if future is not None and not future.done():
            future.set_result(ack.get("payload"))

    async def wait_for_socket(self, timeout: float = 10.0) -> None:
        """Until a Socket Mode client is connected and has had its hello."""
        try:
            await self._wait(lambda: bool(self._open_sockets()), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"no Socket Mode client connected within {timeout:g}s") from None

    async def drop_socket(self) -> None:
        """Cuts the newest connection without a close frame, as a network failure would;
        the client notices on its next ping and reconnects through apps.connections.open."""
        sockets = self._open_sockets()
        if not sockets:
            raise AssertionError("no Socket Mode connection to drop")
        socket = sockets[-1]
        if socket.transport is not None:
            socket.transport.abort()
        await self._wait(lambda: socket not in self._sockets, 5.0)

    async def send_disconnect(self, reason: str = "refresh_requested") -> None:
        """Slack's polite "please reconnect": the client opens a new connection, then closes this one."""
        sockets = self._open_sockets()
        if not sockets:
            raise AssertionError("no Socket Mode connection to send a disconnect to")
        await sockets[-1].ws.send_json({"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-standin"}})

    def _open_sockets(self) -> list[_Socket]:
        return [s for s in self._sockets if not s.ws.closed]

    async def _close_sockets(self, app: web.Application) -> None:
        for socket in list(self._sockets):
            await socket.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")

    # ------------------------------------------------------------------ deliveries

    async def send_event(
        self,
        event: dict[str, Any],
        *,
        event_id: Optional[str] = None,
        retry: int = 0,
        mode: Optional[str] = None,
        signature: Optional[str] = None,
        timestamp: Optional[str] = None,
    ) -> Delivery:
        """Any Events API event, wrapped in an event_callback like Slack's."""
        if event_id is None:
            self._event_count += 1
            event_id = f"Ev{self._event_count:08d}"
        body = {
            "token": VERIFICATION_TOKEN,
            "team_id": self.team_id,
            "context_team_id": self.team_id,
            "context_enterprise_id": None,
            "api_app_id": self.app_id,
            "event": event,
            "type": "event_callback",
            "event_id": event_id,
            "event_time": int(float(event.get("event_ts") or time.time())),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": self.team_id,
                    "user_id": self.bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": f"4-{event_id}",
        }
        return await self._deliver("events_api", body, mode, retry, signature, timestamp)

    async def send_dm(
        self,
        user_id: str,
        text: str,
        thread_ts: Optional[str] = None,
        event_id: Optional[str] = None,
        retry: int = 0,
        *,
        mode: Optional[str] = None,
        signature: Optional[str] = None,
        timestamp: Optional[str] = None,
    ) -> Delivery:
        """A fan's direct message to the bot (a `message.im` event)."""
        event = self._user_message(user_id, self.dm_channel(user_id), text, thread_ts, channel_type="im")
        return await self.send_event(
            event, event_id=event_id, retry=retry, mode=mode, signature=signature, timestamp=timestamp
        )

    async def send_mention(
        self,
        user_id: str,
        channel_id: str,
        text: str,
        thread_ts: Optional[str] = None,
        event_id: Optional[str] = None,
        retry: int = 0,
        *,
        mode: Optional[str] = None,
        signature: Optional[str] = None,
        timestamp: Optional[str] = None,
    ) -> Delivery:
        """`@bot text` in a channel (an `app_mention` event)."""
        event = self._user_message(user_id, channel_id, f"<@{self.bot_user_id}> {text}", thread_ts, channel_type=None)
        event["type"] = "app_mention"
        return await self.send_event(
            event, event_id=event_id, retry=retry, mode=mode, signature=signature, timestamp=timestamp
        )

    async def send_channel_message(
        self,
        user_id: Optional[str],
        channel_id: str,
        text: str,
        thread_ts: Optional[str] = None,
        bot_id: Optional[str] = None,
        subtype: Optional[str] = None,
        event_id: Optional[str] = None,
        retry: int = 0,
        *,
        mode: Optional[str] = None,
        signature: Optional[str] = None,
        timestamp: Optional[str] = None,
    ) -> Delivery:
        """A plain message in a channel: a moderator's reply in a desk thread, or, with
        `bot_id`, a bot's message (the bot's own, to check it ignores itself)."""
        event = self._user_message(user_id, channel_id, text, thread_ts, channel_type=_channel_type(channel_id))
        if bot_id is not None:
            event.pop("client_msg_id", None)
            event["bot_id"] = bot_id
        if subtype is not None:
            event["subtype"] = subtype
        return await self.send_event(
            event, event_id=event_id, retry=retry, mode=mode, signature=signature, timestamp=timestamp
        )

    async def send_command(
        self,
        command: str,
        text: str,
        user_id: str,
        channel_id: Optional[str] = None,
        *,
        mode: Optional[str] = None,
        signature: Optional[str] = None,
        timestamp: Optional[str] = None,
    ) -> Delivery:
        """A slash command; `channel_id` defaults to the user's DM with the bot. Slack never
        retries commands, so neither does the stand-in."""
        channel_id = channel_id or self.dm_channel(user_id)
        payload = {
            "token": VERIFICATION_TOKEN,
            "team_id": self.team_id,
            "team_domain": self.team_domain,
            "channel_id": channel_id,
            "channel_name": "directmessage" if channel_id.startswith("D") else self._channel_name(channel_id),
            "user_id": user_id,
            "user_name": self._user_name(user_id),
            "command": command,
            "text": text,
            "api_app_id": self.app_id,
            "is_enterprise_install": "false",
            "response_url": self._new_response_url(channel_id, user_id),
            "trigger_id": self._trigger_id(),
        }
        return await self._deliver("slash_commands", payload, mode, 0, signature, timestamp)

    async def click_button(
        self,
        user_id: str,
        action_id: str,
        value: str,
        channel_id: str,
        message_ts: str,
        thread_ts: Optional[str] = None,
        block_id: str = "b",
        *,
        mode: Optional[str] = None,
        signature: Optional[str] = None,
        timestamp: Optional[str] = None,
    ) -> Delivery:
        """A click on a button of a message (a `block_actions` interactive payload)."""
        message = dict(self._find(channel_id, message_ts) or {"type": "message", "ts": message_ts, "text": ""})
        thread_ts = thread_ts or message.get("thread_ts")
        if thread_ts:
            message["thread_ts"] = thread_ts
        payload = {
            "type": "block_actions",
            "user": {"id": user_id, "username": self._user_name(user_id), "name": self._user_name(user_id),
                     "team_id": self.team_id},
            "api_app_id": self.app_id,
            "token": VERIFICATION_TOKEN,
            "container": {"type": "message", "message_ts": message_ts, "channel_id": channel_id, "is_ephemeral": False},
            "trigger_id": self._trigger_id(),
            "team": {"id": self.team_id, "domain": self.team_domain},
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": channel_id, "name": self._channel_name(channel_id)},
            "message": message,
            "state": {"values": {}},
            "response_url": self._new_response_url(channel_id, user_id),
            "actions": [
                {
                    "action_id": action_id,
                    "block_id": block_id,
                    "value": value,
                    "type": "button",
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }
        return await self._deliver("interactive", payload, mode, 0, signature, timestamp)

    async def redeliver(self, delivery: Delivery) -> Delivery:
        """The same payload again, as Slack's retry: same event_id, retry number + 1."""
        return await self._deliver(delivery.kind, delivery.payload, delivery.mode, delivery.retry + 1)

    def _user_message(
        self, user_id: Optional[str], channel: str, text: str, thread_ts: Optional[str], channel_type: Optional[str]
    ) -> dict[str, Any]:
        ts = self._next_ts()
        event: dict[str, Any] = {"type": "message", "text": text, "ts": ts, "team": self.team_id, "channel": channel,
                                 "event_ts": ts}
        if user_id is not None:
            event["user"] = user_id
            event["client_msg_id"] = str(uuid.uuid4())
        if thread_ts:
            event["thread_ts"] = thread_ts
        if channel_type is not None:
            event["channel_type"] = channel_type
        stored = {k: v for k, v in event.items() if k not in ("channel", "event_ts", "channel_type")}
        self._store(channel, stored)
        if "parent_user_id" in stored:
            event["parent_user_id"] = stored["parent_user_id"]
        return event

    def _user_name(self, user_id: str) -> str:
        user = self._users.get(user_id)
        return str(user["name"]) if user else user_id.lower()

    def _channel_name(self, channel_id: str) -> str:
        channel = self._channels.get(channel_id)
        return str(channel["name"]) if channel else channel_id.lower()

    def _trigger_id(self) -> str:
        return f"{int(time.time())}.{self.team_id}.{uuid.uuid4().hex[:20]}"

    async def _deliver(
        self,
        kind: str,
        payload: dict[str, Any],
        mode: Optional[str],
        retry: int,
        signature: Optional[str] = None,
        timestamp: Optional[str] = None,
    ) -> Delivery:
        """One delivery, plus Slack's redelivery of an events_api payload nobody acked in time."""
        mode = mode or self.mode
        if mode not in ("socket", "http"):
            raise ValueError(f"mode must be 'socket' or 'http', not {mode!r}")
        attempts = 0
        while True:
            attempts += 1
            if mode == "socket":
                delivery = await self._deliver_socket(kind, payload, retry)
            else:
                delivery = await self._deliver_http(kind, payload, retry, signature, timestamp)
            delivery.attempts = attempts
            self.deliveries.append(delivery)
            self._record_ack_reply(delivery)
            if delivery.status or kind != "events_api" or not self.redeliver_unacked or attempts > self.max_redeliveries:
                return delivery
            retry += 1

    async def _deliver_socket(self, kind: str, payload: dict[str, Any], retry: int) -> Delivery:
        envelope: dict[str, Any] = {
            "envelope_id": str(uuid.uuid4()),
            "type": kind,
            "payload": payload,
            "accepts_response_payload": kind == "slash_commands",
        }
        if kind == "events_api":  # Slack sends the retry fields with events only
            envelope.update(retry_attempt=retry, retry_reason="" if retry == 0 else "timeout")
        envelope_id = envelope["envelope_id"]
        future: asyncio.Future[Optional[dict[str, Any]]] = asyncio.get_running_loop().create_future()
        self._pending_acks[envelope_id] = future
        started = await self._send_envelope(envelope)
        event_id = payload.get("event_id")
        try:
            ack = await asyncio.wait_for(future, self.ack_timeout)
        except asyncio.TimeoutError:  # a late ack still lands in `acks`
            self._pending_acks.pop(envelope_id, None)
            log.info("envelope %s (%s) not acked within %gs", envelope_id, kind, self.ack_timeout)
            return Delivery(kind, "socket", payload, 0, event_id=event_id, envelope_id=envelope_id, retry=retry)
        latency = (time.monotonic() - started) * 1000
        body = json.dumps(ack) if ack is not None else ""
        return Delivery(kind, "socket", payload, 200, body, ack, event_id, envelope_id, latency, retry)

    async def _send_envelope(self, envelope: dict[str, Any]) -> float:
        """Sends to the newest connection, waiting for one if none is open; returns the send time."""
        deadline = time.monotonic() + self.connect_timeout
        while True:
            try:
                await self._wait(lambda: bool(self._open_sockets()), max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                self._pending_acks.pop(envelope["envelope_id"], None)
                raise AssertionError(f"no Socket Mode client connected within {self.connect_timeout:g}s") from None
            socket = self._open_sockets()[-1]
            started = time.monotonic()
            try:
                await socket.ws.send_str(json.dumps(envelope))
            except (ConnectionError, RuntimeError):
                await socket.ws.close()  # gone under us: wait for the client's next connection
                continue
            self.envelopes.append(envelope)
            log.debug("sent envelope %s (%s)", envelope["envelope_id"], envelope["type"])
            return started

    async def _deliver_http(
        self,
        kind: str,
        payload: dict[str, Any],
        retry: int,
        signature: Optional[str],
        timestamp: Optional[str],
    ) -> Delivery:
        if not self.http_target or self._session is None:
            raise RuntimeError("HTTP mode needs a started stand-in and `http_target`")
        if kind == "events_api":
            body, content_type = json.dumps(payload, ensure_ascii=False).encode(), "application/json"
        elif kind == "slash_commands":
            body, content_type = urlencode(payload).encode(), "application/x-www-form-urlencoded"
        else:
            body = urlencode({"payload": json.dumps(payload, ensure_ascii=False)}).encode()
            content_type = "application/x-www-form-urlencoded"
        timestamp = timestamp or str(int(time.time()))
        headers = {
            "Content-Type": content_type,
            "User-Agent": SLACKBOT_UA,
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": signature or str(self._verifier.generate_signature(timestamp=timestamp, body=body)),
        }
        if retry:
            headers.update({"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"})
        event_id = payload.get("event_id")
        started = time.monotonic()
        try:
            async with self._session.post(
                self.http_target, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=self.ack_timeout)
            ) as response:
                text = await response.text()
                status = response.status
        except asyncio.TimeoutError:
            log.info("%s delivery not answered within %gs", kind, self.ack_timeout)
            return Delivery(kind, "http", payload, 0, event_id=event_id, retry=retry)
        latency = (time.monotonic() - started) * 1000
        ack: Optional[dict[str, Any]] = None
        if text.startswith("{"):
            ack = json.loads(text)
        elif text:
            ack = {"text": text}
        return Delivery(kind, "http", payload, status, text, ack, event_id, None, latency, retry)

    def _record_ack_reply(self, delivery: Delivery) -> None:
        """A slash command's ack with text is shown to the user, like a response_url message."""
        ack = delivery.ack_payload
        if delivery.kind != "slash_commands" or not delivery.acked or not ack:
            return
        if ack.get("text") is None and ack.get("blocks") is None:
            return
        self._record_sent(
            SentMessage(
                "ack",
                delivery.payload.get("channel_id"),
                ack.get("text"),
                ack.get("blocks"),
                user=delivery.payload.get("user_id"),
                response_type=ack.get("response_type", "ephemeral"),
                raw=ack,
            )
        )

    # ------------------------------------------------------------------ control API (offline trials)

    async def _control_dm(self, request: web.Request) -> web.Response:
        body = await request.json()
        delivery = await self.send_dm(body["user"], body["text"], thread_ts=body.get("thread_ts"))
        return web.json_response(_delivery_summary(delivery))

    async def _control_message(self, request: web.Request) -> web.Response:
        body = await request.json()
        delivery = await self.send_channel_message(
            body["user"], body["channel"], body["text"], thread_ts=body.get("thread_ts")
        )
        return web.json_response(_delivery_summary(delivery))

    async def _control_command(self, request: web.Request) -> web.Response:
        body = await request.json()
        delivery = await self.send_command(body["command"], body.get("text", ""), body["user"], body.get("channel"))
        return web.json_response(_delivery_summary(delivery))

    async def _control_sent(self, request: web.Request) -> web.Response:
        return web.json_response([asdict(m) for m in self.sent])


# ---------------------------------------------------------------------- helpers


async def _request_args(request: web.Request) -> dict[str, Any]:
    """Query string plus a JSON or form body, as Slack merges them; JSON-valued form fields decoded."""
    args: dict[str, Any] = dict(request.query)
    if request.method == "POST" and request.can_read_body:
        if request.content_type == "application/json":
            body = await request.json()
            args.update(body if isinstance(body, dict) else {})
        else:
            args.update({k: v for k, v in (await request.post()).items() if isinstance(v, str)})
    for key in ("blocks", "attachments", "metadata"):
        if isinstance(args.get(key), str):
            try:
                args[key] = json.loads(args[key])
            except json.JSONDecodeError:
                pass
    return args


def _bearer(request: web.Request) -> Optional[str]:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _message_content(args: dict[str, Any]) -> tuple[Optional[str], Optional[list[Any]]]:
    text, blocks = args.get("text"), args.get("blocks")
    if not text and not blocks and not args.get("attachments"):
        raise _SlackError("no_text")
    if text is not None and len(str(text)) > MAX_TEXT_CHARS:
        raise _SlackError("msg_too_long")
    if blocks is not None:
        if not isinstance(blocks, list) or len(blocks) > MAX_BLOCKS:
            raise _SlackError("invalid_blocks")
        for block in blocks:
            section_text = block.get("text") if isinstance(block, dict) else None
            if not isinstance(block, dict) or "type" not in block:
                raise _SlackError("invalid_blocks")
            if isinstance(section_text, dict) and len(str(section_text.get("text", ""))) > MAX_SECTION_TEXT_CHARS:
                raise _SlackError("invalid_blocks")
    return (str(text) if text is not None else None), blocks


def _slack_json(body: dict[str, Any], status: int = 200, headers: Optional[dict[str, str]] = None) -> web.Response:
    return web.json_response(body, status=status, headers=headers)


def _channel_type(channel_id: str) -> str:
    return {"D": "im", "G": "group"}.get(channel_id[:1], "channel")


def _ts_key(ts: str) -> tuple[int, int]:
    seconds, _, micros = ts.partition(".")
    return int(seconds), int(micros or 0)


def _delivery_summary(delivery: Delivery) -> dict[str, Any]:
    return {
        "status": delivery.status,
        "event_id": delivery.event_id,
        "envelope_id": delivery.envelope_id,
        "latency_ms": delivery.latency_ms,
        "attempts": delivery.attempts,
    }


# ---------------------------------------------------------------------- command line


async def _serve(args: argparse.Namespace) -> None:
    standin = SlackStandIn(mode="http" if args.http_target else "socket", http_target=args.http_target)
    await standin.start(port=args.port)
    url = standin.url
    print(
        f"Slack stand-in on {url} ({standin.mode} mode). Set, then run the bot:\n"
        f"  export SLACK_API_BASE_URL={standin.api_base_url}\n"
        f"  export SLACK_BOT_TOKEN={standin.bot_token}\n"
        f"  export SLACK_APP_TOKEN={standin.app_token}\n"
        f"  export SLACK_SIGNING_SECRET={standin.signing_secret}\n"
        "Talk to it:\n"
        f"  curl -s {url}/_standin/dm -d '{{\"user\": \"U1\", \"text\": \"hi\"}}'\n"
        f"  curl -s {url}/_standin/command -d '{{\"user\": \"U1\", \"command\": \"/human\", \"text\": \"\"}}'\n"
        f"  curl -s {url}/_standin/message -d '{{\"user\": \"UMOD\", \"channel\": \"CDESK\", \"thread_ts\": \"TS\", \"text\": \"hello\"}}'\n"
        f"  curl -s {url}/_standin/sent\n"
        "Ctrl-C stops it.",
        flush=True,
    )
    try:
        await asyncio.Event().wait()
    finally:
        await standin.aclose()


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bot.testing.slack_standin", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=3001)
    parser.add_argument("--http-target", metavar="URL", help="HTTP mode: POST signed events here (default: Socket Mode)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(_serve(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
