"""The Slack stand-in: one local aiohttp server answering like Slack; tests act as people through it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Optional

import aiohttp
from aiohttp import web
from slack_sdk.signature import SignatureVerifier

from .control import _ControlMixin
from .delivery import _DeliveryMixin
from .events import _EventsMixin
from .files import _FilesMixin
from .model import Delivery, SentMessage, _ResponseTarget, _Socket
from .socket_mode import _SocketModeMixin
from .state import _StateMixin
from .webapi import _WebApiMixin

log = logging.getLogger("standins.slack")


class SlackStandIn(_StateMixin, _FilesMixin, _WebApiMixin, _SocketModeMixin, _EventsMixin, _DeliveryMixin, _ControlMixin):
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
        self._clock_offset = 0.0
        #: files.getUploadURLExternal's pending uploads: file id -> {filename, length, data}
        self._uploads: dict[str, dict[str, Any]] = {}
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
            "files.getUploadURLExternal": self._files_get_upload_url_external,
            "files.completeUploadExternal": self._files_complete_upload_external,
        }
        self.add_user(bot_user_id, bot_name, is_bot=True)

    # ------------------------------------------------------------------ lifecycle

    async def start(self, port: int = 0) -> SlackStandIn:
        app = web.Application()
        app.add_routes(
            [
                web.route("*", "/api/{method}", self._handle_api),
                web.post("/commands/{key}", self._handle_response_url),
                web.post("/upload/v1/{file_id}", self._handle_upload),
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

    async def __aenter__(self) -> SlackStandIn:
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
