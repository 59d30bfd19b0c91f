"""Slack on slack-bolt's AsyncApp: DMs, mentions, slash commands and buttons.

Socket Mode (no public URL; `SLACK_APP_TOKEN`) or HTTP mode (Events API on a port;
`SLACK_SIGNING_SECRET`), both with `SLACK_BOT_TOKEN`. Fans' DMs and slash commands are
one conversation ("im"); a mention starts a conversation per channel or thread.
Private kinds never appear in a channel: ephemeral there, or in the fan's DM.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Optional

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncConnectionErrorRetryHandler, AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import ConfigError, SlackSettings
from bot.core import STORE_DOWN_TEXT, Bot
from bot.messages import Address, Incoming, Kind, Outgoing
from bot.metrics import METRICS
from bot.privacy.database import StoreUnavailable
from connectors.base import HANDLING_FAILED_TEXT, NETWORK_ERRORS, ConnectorError, replies_to, unreachable
from connectors.dedupe import slack_message_key
from connectors.health import Link
from connectors.intake import BUSY_TEXT, Intake
from connectors.long_results import as_file
from connectors.outbox import Unreachable
from connectors.router import Router
from connectors.slack_desk import SlackDesk
from connectors.slack_errors import check_response_url, delivery_errors
from connectors.slack_render import (
    ANSWER_NO,
    ANSWER_YES,
    CANCEL_ERASURE,
    CLAIM_TICKET,
    CONFIRM_ERASURE,
    CONSENT_NO,
    CONSENT_YES,
    RATE_BAD,
    RATE_GOOD,
    RESOLVE_TICKET,
    render,
)
from connectors.slack_signature import SlackSignature
from connectors.slack_text import display_name, to_plain

logger = logging.getLogger(__name__)

COMMANDS = ("/human", "/forget-me", "/my-data", "/privacy", "/why", "/feedback")
#: Where a fan's DMs and slash commands live: their one direct conversation with the app.
DM = "im"
DM_CHANNEL_CACHE = 5_000
#: How long start-up waits for Slack's API before giving up with one line.
START_TIMEOUT_SECONDS = 30.0
SHUTDOWN_GRACE_SECONDS = 10.0
#: Message subtypes that are not a person writing to us (docs.slack.dev/reference/events/message):
#: edits, deletions, joins and leaves, other integrations' posts, channel notices. Everything
#: else a person sends (plain, file_share, thread_broadcast, me_message, ...) is handled.
IGNORED_SUBTYPES = frozenset({
    "message_changed", "message_deleted", "message_replied", "bot_message",
    "channel_join", "channel_leave", "group_join", "group_leave",
    "channel_topic", "channel_purpose", "channel_name", "channel_archive", "channel_unarchive",
    "group_topic", "group_purpose", "group_name", "group_archive", "group_unarchive",
    "pinned_item", "unpinned_item", "ekm_access_denied", "channel_posting_permissions",
})


#: The one line a fan (or moderator) gets for a click this app cannot use: the same words as on Discord.
UNKNOWN_BUTTON_TEXT = "Sorry, I don't recognise that button (it may be from an older version of me). Please type your request instead."
#: The value each fixed button carries (`slack_render`); ratings and desk buttons carry a token or a ticket number.
FIXED_VALUES = {CONFIRM_ERASURE: "confirm", CANCEL_ERASURE: "cancel", ANSWER_YES: "yes", ANSWER_NO: "no", CONSENT_YES: "yes", CONSENT_NO: "no"}
FREE_VALUES = frozenset({RATE_GOOD, RATE_BAD, CLAIM_TICKET, RESOLVE_TICKET})


@dataclass(frozen=True, slots=True)
class _Taken:
    """A fan's DM or mention while it waits in the intake: what answering it needs, nothing
    more (not Bolt's request, not the event's other fields)."""

    event_id: Optional[str]  # the delivery, for Slack's redeliveries
    key: Optional[str]  # the message (`slack_message_key`), for one message under two event ids
    user: str
    channel: str
    thread: Optional[str]
    text: str  # as Slack sent it (mrkdwn): made plain when its turn comes
    files: int
    mention: bool


def _text(value: Any) -> str:
    """A string field of an event as a string: "" for a missing, null or non-string one."""
    return value if isinstance(value, str) else ""


def usable_actions(body: Any) -> bool:
    """Whether a payload Bolt would dispatch as `block_actions` names a clicked element and a
    user. Bolt reads `body["actions"][0]` eagerly, for every listener matcher and every
    middleware's arguments alike (slack_bolt/request/payload_utils.py `to_action`,
    kwargs_injection/async_utils.py, listener_matcher/builtins.py `_block_action`), so an
    empty `actions` list raises inside `async_dispatch`, which answers 500 and logs a
    traceback at ERROR; an element without a string `action_id` fails the same way."""
    if not isinstance(body, dict) or body.get("type") != "block_actions" or "actions" not in body:
        return True  # not an action (Bolt's `is_block_actions` needs the key): Bolt's own path
    actions, user = body["actions"], body.get("user")
    return (
        isinstance(actions, list) and bool(actions)
        and all(isinstance(action, dict) and isinstance(action.get("action_id"), str) for action in actions)
        and isinstance(user, dict) and isinstance(user.get("id"), str)
    )  # fmt: skip


def one_of_our_clicks(body: Any) -> bool:
    """Whether a payload is not a click, or is a usable click on one of this app's buttons as
    it sent them: one action (a button click carries exactly one), a known action_id, and the
    value that button carries (a fixed word, or a non-empty token / ticket number). Bolt would
    silently drop an unknown action_id (404), and a listener would misread a null value."""
    if not isinstance(body, dict) or body.get("type") != "block_actions" or "actions" not in body:
        return True
    if not usable_actions(body) or len(body["actions"]) != 1:
        return False
    action_id, value = body["actions"][0]["action_id"], body["actions"][0].get("value")
    if action_id in FIXED_VALUES:
        return bool(value == FIXED_VALUES[action_id])
    return action_id in FREE_VALUES and isinstance(value, str) and bool(value)


class _App(AsyncApp):
    """Bolt's app, with malformed or unknown clicks stopped before Bolt reads them. Both modes
    dispatch here (HTTP after our signature check, Socket Mode from its authenticated link):
    such a payload is acknowledged with 200, so Slack does not retry it, logged with one WARNING
    line and no content, and answered with one line where it can be (`refuse_click`)."""

    refuse_click: Optional[Callable[[dict[str, Any]], None]] = None

    async def async_dispatch(self, req: AsyncBoltRequest) -> BoltResponse:
        if not one_of_our_clicks(req.body):
            logger.warning("refused a Slack click that is not one of this app's buttons as sent")
            if self.refuse_click is not None:
                self.refuse_click(req.body)
            return BoltResponse(status=200, body="")
        return await super().async_dispatch(req)


@dataclass(frozen=True)
class SlackTokens:
    bot_token: str
    app_token: str = ""
    signing_secret: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str], settings: SlackSettings) -> Optional[SlackTokens]:
        """None when Slack is not configured; a one-line error when half-configured."""
        bot_token = environ.get("SLACK_BOT_TOKEN", "").strip()
        if not bot_token:
            return None
        tokens = cls(bot_token, environ.get("SLACK_APP_TOKEN", "").strip(), environ.get("SLACK_SIGNING_SECRET", "").strip())
        if settings.mode == "socket" and not tokens.app_token.startswith("xapp-"):
            raise ConfigError("slack.mode is socket: set SLACK_APP_TOKEN to the app-level token (xapp-...), or use mode = \"http\"")
        if settings.mode == "http" and not tokens.signing_secret:
            raise ConfigError("slack.mode is http: set SLACK_SIGNING_SECRET (the app's signing secret)")
        return tokens


def _sdk_logger() -> logging.Logger:
    """slack-bolt logs request bodies at INFO and WARNING (e.g. on a bad signature); keep
    its own logger at ERROR unless we are debugging, and log those cases ourselves."""
    sdk = logging.getLogger("connectors.slack.sdk")
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        sdk.setLevel(logging.ERROR)
    return sdk


class SlackConnector:
    name = "slack"
    #: Slack allows 40,000 characters; the assistant's own limit is tighter.
    max_message_chars = 40_000

    def __init__(
        self,
        settings: SlackSettings,
        tokens: SlackTokens,
        router: Router,
        desk_channel: Optional[str] = None,
        http_host: str = "0.0.0.0",
        ping_interval: float = 10.0,
    ) -> None:
        self._settings = settings
        self._tokens = tokens
        self._router = router
        self._http_host = http_host
        self._ping_interval = ping_interval
        sdk_logger = _sdk_logger()
        self.client = AsyncWebClient(
            token=tokens.bot_token,
            base_url=settings.api_base_url,
            logger=sdk_logger,
            retry_handlers=[
                AsyncConnectionErrorRetryHandler(),
                AsyncRateLimitErrorRetryHandler(max_retry_count=settings.rate_limit_retries),
            ],
        )
        # Bolt's default runner answers Slack only once it sees ack(), polling for it every 10 ms
        # (slack_bolt/listener/asyncio_runner.py): a floor of ~11 ms under every ack, 21-75 ms at
        # p99 under load (docs/benchmarks.md). With process_before_response Bolt answers as soon as
        # the listener returns, and each listener here acks and hands its work on at once (a
        # task, `_acking`; fans' messages to the intake, `_on_message`), so the ack waits on nothing.
        self.app = _App(
            client=self.client, signing_secret=tokens.signing_secret or "socket-mode", logger=sdk_logger,
            process_before_response=True,
        )  # fmt: skip
        self.app.refuse_click = self._refuse_click
        self.desk = SlackDesk(self.client, desk_channel, settings.moderator_usergroup) if desk_channel else None
        self._dm_channels: dict[str, str] = {}
        self._bot_user_id = ""
        self._closed = asyncio.Event()
        self.served = False  # set once serving: a crash after that is restarted (connectors.supervise)
        self._socket: Optional[AsyncSocketModeHandler] = None
        self._runner: Optional[web.AppRunner] = None
        self._bot: Optional[Bot] = None
        self._session: Optional[aiohttp.ClientSession] = None
        self._in_flight: set[asyncio.Task[Any]] = set()
        self._intake: Intake[_Taken] = Intake(self._answer_taken, platform="slack")
        self.http_port: Optional[int] = None  # the bound port in http mode (useful with port 0)
        self._register()

    # Lifecycle ---------------------------------------------------------------------------

    async def run(self, bot: Bot) -> None:
        self._bot = bot
        if self.desk is not None:  # the desk reads ticket locations from the store, and erases its copies
            self.desk.bind(bot.handoff.tickets)
            bot.handoff.use_desk_copies(self.desk)
        # One connection pool for every Web API call (Bolt's per-request clients share it);
        # slack-sdk otherwise opens a new session, and a new connection, per call.
        self._session = aiohttp.ClientSession()
        self.client.session = self._session
        try:  # an API that accepts the connection but never answers must not hang start-up
            await asyncio.wait_for(self._check_token(), START_TIMEOUT_SECONDS)
            if self._settings.mode == "socket":
                self._socket = AsyncSocketModeHandler(self.app, self._tokens.app_token, logger=self.app.logger, ping_interval=self._ping_interval)
                await asyncio.wait_for(self._socket.connect_async(), START_TIMEOUT_SECONDS)
        except NETWORK_ERRORS as error:
            raise unreachable("slack", self._settings.api_base_url, "SLACK_API_BASE_URL ([slack] api_base_url)", error) from None
        if self._settings.mode == "http":
            self._runner = web.AppRunner(self._web_app(), access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, self._http_host, self._settings.http_port)
            try:
                await site.start()
            except OSError as error:
                raise ConnectorError(f"slack: cannot listen on port {self._settings.http_port}: {error.strerror}") from None
            self.http_port = self._runner.addresses[0][1] if self._runner.addresses else self._settings.http_port
        logger.info("slack connector serving in %s mode", self._settings.mode)
        self.served = True
        await self._closed.wait()

    async def aclose(self) -> None:
        """Stops taking events, lets messages taken and replies being worked on go out (for
        `SHUTDOWN_GRACE_SECONDS`), then closes."""
        self._closed.set()
        deadline = time.monotonic() + SHUTDOWN_GRACE_SECONDS
        left = await self._intake.drain(SHUTDOWN_GRACE_SECONDS)
        if left:
            logger.warning("slack: %d message(s) taken were not answered before shutdown", left)
        await self._close_connections(max(0.0, deadline - time.monotonic()))

    async def _close_connections(self, grace: float) -> None:
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=grace)
        if self._socket is not None:
            await self._socket.close_async()
            self._socket = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def reset(self) -> None:
        """After a crash: close what is open, so `run` connects afresh. Messages taken stay in
        the intake and are answered (their replies wait in the outbox until Slack answers)."""
        self._closed.set()
        await self._close_connections(SHUTDOWN_GRACE_SECONDS)
        self._closed = asyncio.Event()

    async def link(self) -> Link:
        """For `/readyz`: listening (HTTP mode), or the Socket Mode connection open."""
        if self._settings.mode == "http":
            return Link(self.served and self._runner is not None)
        socket = self._socket
        return Link(self.served and socket is not None and bool(await socket.client.is_connected()))

    async def _check_token(self) -> None:
        try:
            self._bot_user_id = str((await self.client.auth_test()).get("user_id") or "")
        except SlackApiError as error:
            data, status = error.response.data, error.response.status_code
            if not isinstance(data, dict) or status >= 500:  # an HTML error page from a proxy, a Slack outage
                raise ConnectorError(
                    f"slack: the API at {self._settings.api_base_url} failed auth.test (HTTP {status}); try again later "
                    "or check SLACK_API_BASE_URL"
                ) from None
            raise ConnectorError(f"slack: the bot token was refused ({data.get('error')}); check SLACK_BOT_TOKEN") from None

    def _web_app(self) -> web.Application:
        signature = SlackSignature(self._tokens.signing_secret)

        async def events(request: web.Request) -> web.Response:
            body = await request.read()
            headers = request.headers
            if not signature.valid(body, headers.get("X-Slack-Request-Timestamp"), headers.get("X-Slack-Signature")):
                logger.warning("refused a Slack request: invalid signature or stale timestamp")
                return web.json_response({"error": "invalid request"}, status=401)
            try:
                body.decode("utf-8")
            except UnicodeDecodeError:  # signed, yet not what Slack sends: refuse, do not crash
                logger.warning("refused a signed Slack request whose body is not UTF-8")
                return web.json_response({"error": "invalid request"}, status=400)
            try:
                return await to_aiohttp_response(await self.app.async_dispatch(await to_bolt_request(request)))
            except Exception as error:  # signed, yet not a shape Slack sends (not JSON, a bare array, ...)
                logger.warning("refused a signed Slack request that could not be read (%s)", type(error).__name__)
                return web.json_response({"error": "invalid request"}, status=400)

        app = web.Application(client_max_size=1024**2)
        app.router.add_post(self._settings.http_path, events)
        return app

    # From Slack ------------------------------------------------------------------------------

    def _register(self) -> None:
        self.app.event("message")(self._on_message)  # taken into the intake, acked as it returns
        self.app.event("app_mention")(self._on_mention)
        for command in COMMANDS:
            self.app.command(command)(self._acking(self._on_command))
        for erasure_or_answer in (CONFIRM_ERASURE, CANCEL_ERASURE, ANSWER_YES, ANSWER_NO, CONSENT_YES, CONSENT_NO):  # a click becomes the fan's words
            self.app.action(erasure_or_answer)(self._acking(self._on_erasure_button))
        for rating in (RATE_GOOD, RATE_BAD):
            self.app.action(rating)(self._acking(self._on_rating_button))
        for desk_action in (CLAIM_TICKET, RESOLVE_TICKET):
            self.app.action(desk_action)(self._acking(self._on_desk_button))

    def _acking(self, listener: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
        """`listener` for Bolt: acknowledged at once (events: by Bolt, as soon as this returns),
        its work in a task of its own, tracked so shutdown lets it finish. Bolt passes arguments
        by the listener's parameter names, which `functools.wraps` keeps visible to it."""

        @functools.wraps(listener)
        async def acked(*args: Any, **kwargs: Any) -> None:
            arrived = time.perf_counter()
            ack = kwargs.get("ack")
            if ack is not None:
                await ack()  # commands and clicks; the listener's own ack() after this is a no-op for Slack
            self._spawn(listener(*args, **kwargs))
            METRICS.acked(self.name, time.perf_counter() - arrived)  # events: Bolt acks as this returns

        return acked

    def _refuse_click(self, body: dict[str, Any]) -> None:
        """The one line for a click this app cannot use, to the clicker only (its response_url),
        when the payload names both; in a tracked task, so the 200 goes out at once."""
        user, url = body.get("user"), body.get("response_url")
        if not (isinstance(user, dict) and isinstance(user.get("id"), str) and isinstance(url, str) and url):
            return
        respond = AsyncRespond(response_url=url, proxy=self.client.proxy, ssl=self.client.ssl)
        self._spawn(self._respond(respond, Outgoing(Kind.ERROR, UNKNOWN_BUTTON_TEXT), user["id"]))

    async def _guarded(self, work: Awaitable[Any]) -> None:
        """What fails outside a fan's message (`replies_to` answers those): a desk action, a
        click; logged once, by type only (no content)."""
        try:
            await work
        except Exception as error:
            logger.error("handling a Slack event failed: %s", type(error).__name__)

    async def _first_time(self, key: Optional[str]) -> bool:
        """Whether no process has handled this delivery yet (`bot.deliveries`, in the database)."""
        return self._bot is None or await self._bot.deliveries.first_time(f"slack:{key}" if key else None)

    async def _first_delivery(self, body: Mapping[str, Any]) -> bool:
        """Slack redelivers unacknowledged (or slow) events with the same event_id, in HTTP mode
        to any worker, for up to 5 minutes."""
        return await self._first_time(body.get("event_id"))

    async def _first_message(self, event: Mapping[str, Any]) -> bool:
        """Slack can deliver one message under two event ids (same ts, same client_msg_id)."""
        return await self._first_time(slack_message_key(event))

    async def _plain(self, text: str) -> str:
        return await to_plain(text, lambda user: display_name(self.client, user))

    async def _on_message(self, body: dict[str, Any], event: dict[str, Any]) -> None:
        """Bolt's listener, run before the ack: a fan's DM is taken into the intake (its work
        waits there as a small record, `connectors.intake`); a moderator's reply in a desk
        thread is handled in a task of its own, as before."""
        arrived = time.perf_counter()
        if event.get("bot_id") or event.get("subtype") in IGNORED_SUBTYPES or not _text(event.get("user")):
            return  # other bots, our own echoes, edits, deletions and joins (and no user: not a person)
        channel, thread = event.get("channel", ""), event.get("thread_ts")
        if self.desk is not None and channel == self.desk.channel:
            if thread:
                self._spawn(self._on_desk_reply(body, event))
        elif event.get("channel_type") == "im":  # else channel chatter: the assistant answers mentions only
            files = len(event.get("files") or [])
            self._take(_Taken(body.get("event_id"), slack_message_key(event), event["user"], channel, thread, _text(event.get("text")), files, False))
        METRICS.acked(self.name, time.perf_counter() - arrived)

    async def _on_mention(self, body: dict[str, Any], event: dict[str, Any]) -> None:
        arrived = time.perf_counter()
        if event.get("bot_id") or not _text(event.get("user")):
            return
        channel = event.get("channel", "")
        if self.desk is not None and channel == self.desk.channel:
            return  # the desk is for moderators; their thread replies arrive as messages
        key = slack_message_key({**event, "type": "app_mention"})
        files = len(event.get("files") or [])
        self._take(_Taken(body.get("event_id"), key, event["user"], channel, event.get("thread_ts"), _text(event.get("text")), files, True))
        METRICS.acked(self.name, time.perf_counter() - arrived)

    def _take(self, taken: _Taken) -> None:
        if not self._intake.offer(taken.user, taken):  # full: the fan is told at once, honestly
            logger.warning("slack: the intake is full; a fan was asked to write again later")
            address = Address(self.name, taken.user, self._conversation(taken))
            self._spawn(self._router.deliver([Outgoing(Kind.ERROR, BUSY_TEXT)], self._answer_for(taken), address))

    def _spawn(self, work: Awaitable[Any]) -> None:
        """`work` in a task of its own, failures logged (`_guarded`), tracked so shutdown lets it finish."""
        task = asyncio.ensure_future(self._guarded(work))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    @staticmethod
    def _conversation(taken: _Taken) -> str:
        if not taken.mention:
            return DM
        return f"{taken.channel}/{taken.thread}" if taken.thread else taken.channel

    def _answer_for(self, taken: _Taken) -> Callable[[Outgoing], Awaitable[None]]:
        channel, thread = taken.channel, taken.thread
        if not taken.mention:
            return lambda m: self._post(channel, m, thread)
        user = taken.user

        async def answer(message: Outgoing) -> None:
            if message.private:
                await self._post_ephemeral(channel, user, message, thread)
            else:
                await self._post(channel, message, thread)

        return answer

    async def _answer_taken(self, taken: _Taken) -> None:
        """The intake's turn for a taken message: deduplicated, made plain, answered. A failure
        outside the bot's own funnel (the dedupe, the display names) is logged by type and the
        fan gets the error reply, as on Discord."""
        try:
            if not await self._first_time(taken.event_id) or not await self._first_time(taken.key):
                return  # delivered twice (Slack redelivers, and a message can come under two event ids)
            text = taken.text
            if taken.mention and self._bot_user_id:
                text = text.replace(f"<@{self._bot_user_id}>", "")
            plain = await self._plain(text)
            incoming = Incoming(self.name, taken.user, self._conversation(taken), plain.strip() if taken.mention else plain, taken.files)
            await self._handle(incoming, self._answer_for(taken))
        except Exception as failure:
            logger.error("handling a Slack message event failed: %s", type(failure).__name__)
            reply = Outgoing(Kind.ERROR, STORE_DOWN_TEXT if isinstance(failure, StoreUnavailable) else HANDLING_FAILED_TEXT)
            address = Address(self.name, taken.user, self._conversation(taken))
            await self._router.deliver([reply], self._answer_for(taken), address)

    async def _on_desk_reply(self, body: dict[str, Any], event: dict[str, Any]) -> None:
        if self._bot is None or self.desk is None or not await self._first_delivery(body) or not await self._first_message(event):
            return
        await self.desk.on_thread_reply(self._bot, self._router, event["user"], event.get("text", ""), event["thread_ts"])

    async def _on_command(self, ack: Callable[..., Awaitable[None]], command: dict[str, Any], respond: Callable[..., Awaitable[Any]]) -> None:
        await ack()  # within Slack's 3 seconds, before any slow work
        text = f"{command['command']} {command.get('text', '')}".strip()
        user = command["user_id"]
        await self._handle(Incoming(self.name, user, DM, text), lambda m: self._respond(respond, m, user))

    async def _on_erasure_button(self, ack: Callable[..., Awaitable[None]], body: dict[str, Any], action: dict[str, Any], respond: Callable[..., Awaitable[Any]]) -> None:
        await ack()
        if not await self._first_time(f"action:{body['user']['id']}:{action.get('action_ts')}"):
            return
        action_id = action["action_id"]
        text = {CONFIRM_ERASURE: "/forget-me confirm", CANCEL_ERASURE: "/forget-me cancel", ANSWER_YES: "yes", ANSWER_NO: "no",
                CONSENT_YES: "yes", CONSENT_NO: "no"}[action_id]  # fmt: skip
        answers = "consent" if action_id in (CONSENT_YES, CONSENT_NO) else None
        user = body["user"]["id"]
        await self._handle(Incoming(self.name, user, DM, text, answers=answers), lambda m: self._respond(respond, m, user))

    async def _on_rating_button(
        self, ack: Callable[..., Awaitable[None]], body: dict[str, Any], action: dict[str, Any], respond: Callable[..., Awaitable[Any]]
    ) -> None:
        """"Helpful" / "Not helpful" on an answer: the fan and the conversation come from the
        click (a DM channel id starts with "D"; a thread's answers carry its `thread_ts`), the
        token from the button's value; the bot checks the token belongs to both."""
        await ack()
        if self._bot is None or not await self._first_time(f"action:{body['user']['id']}:{action.get('action_ts')}"):
            return
        user = body["user"]["id"]
        channel = str((body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id", ""))
        thread = (body.get("message") or {}).get("thread_ts")
        conversation = DM if channel.startswith("D") else (f"{channel}/{thread}" if thread else channel)
        address = Address(self.name, user, conversation)
        replies = await self._bot.rate(address, str(action.get("value", "")), "good" if action["action_id"] == RATE_GOOD else "bad")
        await self._router.deliver(replies, lambda m: self._respond(respond, m, user), address, self._bot)

    async def _on_desk_button(
        self, ack: Callable[..., Awaitable[None]], body: dict[str, Any], action: dict[str, Any], respond: Callable[..., Awaitable[Any]]
    ) -> None:
        await ack()
        if self.desk is None or self._bot is None or not await self._first_time(f"action:{body['user']['id']}:{action.get('action_ts')}"):
            return
        message = body.get("message") or {"ts": (body.get("container") or {}).get("message_ts", "")}
        await self.desk.on_button(self._bot, self._router, body["user"]["id"], action["action_id"], action.get("value", ""), message, respond)

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

    # To Slack ---------------------------------------------------------------------------------
    # Every send below turns Slack's refusals into the outbox's terms (`delivery_errors`), so
    # the router retries what may pass later and reports what cannot.

    async def _post(self, channel: str, message: Outgoing, thread: Optional[str] = None) -> None:
        with delivery_errors():
            for piece in render(message):
                await self.client.chat_postMessage(channel=channel, thread_ts=thread, unfurl_links=False, unfurl_media=False, **piece)

    async def _post_ephemeral(self, channel: str, user: str, message: Outgoing, thread: Optional[str] = None) -> None:
        message = await self._long_as_file(user, message)
        with delivery_errors():
            for piece in render(message):
                await self.client.chat_postEphemeral(channel=channel, user=user, thread_ts=thread, **piece)

    async def _respond(self, respond: Callable[..., Awaitable[Any]], message: Outgoing, user: str) -> None:
        """Slash command and button results: only the fan sees them, wherever they typed.
        A result too long for a few posts goes as a file to their DM (`long_results`)."""
        message = await self._long_as_file(user, message)
        with delivery_errors():
            for piece in render(message):
                answer = await respond(response_type="ephemeral", replace_original=False, **piece)
                check_response_url(getattr(answer, "status_code", 200), getattr(answer, "headers", None) or {})

    async def _long_as_file(self, user: str, message: Outgoing) -> Outgoing:
        """Uploads a long private result to the fan's DM with the app (`files.uploadV2`: only
        the fan and the app are in it) and returns the short note to show instead; other
        messages are returned unchanged."""
        result = as_file(message, len(render(message)), "in our direct messages")
        if result is None:
            return message
        with delivery_errors():
            await self.client.files_upload_v2(
                channel=await self._dm_channel(user), filename=result.filename, content=result.content,
                title=result.filename, initial_comment="Here is the file you asked for.",
            )
        return result.notice(message)

    async def send_to(self, address: Address, message: Outgoing) -> None:
        """A message for a fan who is not being answered right now (a moderator's reply, a
        timeout notice): always in their DM, so a handoff never spills into a channel."""
        await self._post(await self._dm_channel(address.user_id), message)

    async def tell_unreachable(self, address: Address, reason: str) -> None:
        """Asks the fan, visible to them only, in the channel where they last mentioned the
        assistant, to write to it directly; a fan who wrote in their DM has no other place."""
        if address.conversation_id == DM:
            raise Unreachable("no_other_place")
        channel, _, thread = address.conversation_id.partition("/")
        notice = Outgoing(Kind.ERROR, UNREACHABLE_TEXT)
        await self._post_ephemeral(channel, address.user_id, notice, thread or None)

    async def _dm_channel(self, user: str) -> str:
        """The DM channel with a fan (`conversations.open`), cached for the most recent
        `DM_CHANNEL_CACHE` fans only: a cache, so memory stays bounded."""
        channel = self._dm_channels.pop(user, None)
        if channel is None:
            with delivery_errors():
                answer = await self.client.conversations_open(users=user)
            channel = str(answer["channel"]["id"])
        self._dm_channels[user] = channel  # most recent last
        while len(self._dm_channels) > DM_CHANNEL_CACHE:
            del self._dm_channels[next(iter(self._dm_channels))]
        return channel


UNREACHABLE_TEXT = (
    "I have a message for you that I couldn't deliver to your direct messages. "
    "Please open a direct message with me (click my name, then Message) so I can reach you."
)
