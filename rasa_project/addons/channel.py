"""The bot's door into the model server: a Rasa input channel, served by `rasa run`.

Declared in credentials.yml (`addons.channel.FanAssistantInput:`); Rasa mounts it at
`/webhooks/fan_assistant/` (docs/model-server.md has the routes and the contract). A message
goes the normal Rasa way (`on_new_message` -> `Agent.handle_message`, under the lock store's
lock for the sender); the parse is read from the tracker store, and `addons.decide` applies the
out-of-domain and rescue checks. Nothing a fan writes is logged: bad requests get one WARNING
line naming the problem, never the content, never a traceback.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, Optional, Text, Tuple

from rasa.core.channels.channel import CollectingOutputChannel, InputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from addons.decide import Decider
from addons.quiet import quiet_server
from addons.tracker_store import ExpiringInMemoryTrackerStore

logger = logging.getLogger(__name__)

TOKEN_VARIABLE = "BOT_ENGINE_TOKEN"
MAX_SENDER_CHARS = 128
MAX_TEXT_CHARS = 20_000
#: How often idle trackers are swept out when no message arrives to trigger the expiry.
SWEEP_SECONDS = 60.0


class BadRequest(ValueError):
    """A request the contract refuses with 400; the message names the problem, not the content."""


def _json(status: int, body: Dict[str, Any]) -> HTTPResponse:
    return response.json(body, status=status)


def _object(request: Request) -> Dict[str, Any]:
    try:
        body = json.loads(request.body or b"")
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise BadRequest("body is not JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("body is not a JSON object")
    return body


def _sender(body: Dict[str, Any]) -> str:
    sender = body.get("sender")
    if not isinstance(sender, str):
        raise BadRequest("sender missing or not a string")
    if not sender:
        raise BadRequest("sender is empty")
    if len(sender) > MAX_SENDER_CHARS:
        raise BadRequest(f"sender longer than {MAX_SENDER_CHARS} characters")
    return sender


def _text(body: Dict[str, Any]) -> str:
    text = body.get("text")
    if not isinstance(text, str):
        raise BadRequest("text missing or not a string")
    if len(text) > MAX_TEXT_CHARS:
        raise BadRequest(f"text longer than {MAX_TEXT_CHARS} characters")
    return text


def _trackers(agent: Any) -> Any:
    """The project's store inside the `FailSafeTrackerStore` wrapper `Agent` puts around it."""
    store = agent.tracker_store
    return getattr(store, "_tracker_store", store)


def _drop_fallback(agent: Any, sender: str) -> bool:
    """`FailSafeTrackerStore` saves into a plain in-memory store when ours raises; a fan's
    tracker must not survive there either (it only exists after such an error)."""
    fallback = getattr(agent.tracker_store, "_fallback_tracker_store", None)
    return fallback is not None and fallback.store.pop(sender, None) is not None


class FanAssistantInput(InputChannel):
    """One request in, one JSON answer out: replies, intent, confidence, guess, ranking."""

    @classmethod
    def name(cls) -> Text:
        return "fan_assistant"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> "FanAssistantInput":
        """The token comes from the environment, never from a file; without it, no server."""
        token = os.environ.get(TOKEN_VARIABLE, "")
        if not token.strip():
            print(f"model server: {TOKEN_VARIABLE} is not set: the bot passes it; set it to the same secret as the bot's BOT_ENGINE_TOKEN", file=sys.stderr)
            raise SystemExit(2)
        quiet_server()
        return cls(token)

    def __init__(self, token: str) -> None:
        self._token = token.encode("utf-8")
        self._decider: Optional[Decider] = None
        self._sweeper: "Optional[asyncio.Task[None]]" = None

    @property
    def ready(self) -> bool:
        return self._decider is not None

    def _authorised(self, request: Request) -> bool:
        scheme, _, presented = (request.headers.get("authorization") or "").partition(" ")
        # compare_digest: the time taken does not tell how much of the token was right.
        return scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode("utf-8", "replace"), self._token)

    async def _prepare(self, app: Any) -> None:
        """After Rasa loaded the agent: the checks around it, then the idle sweep; only then ready."""
        agent = getattr(app.ctx, "agent", None)
        if agent is None or not agent.is_ready():
            logger.error("model server: no model loaded (check --model; `python -m addons.train` trains it)")
            app.stop()
            return
        trackers = _trackers(agent)
        if not isinstance(trackers, ExpiringInMemoryTrackerStore):
            # Rasa falls back to a plain in-memory store (no expiry) when the configured one fails
            # to import; a fan's dialogue would then be kept for the life of the process.
            logger.error("model server: endpoints.yml must declare tracker_store type addons.tracker_store.ExpiringInMemoryTrackerStore")
            app.stop()
            return
        model_path = Path(agent.processor.model_path)
        if model_path.is_dir():  # `--model DIR`: Rasa took the newest model in it
            model_path = model_path / agent.processor.model_filename
        self._decider = Decider.load(model_path, agent.domain.responses)
        if not self._decider.checked:
            logger.warning("model server: no vocabulary or embeddings beside %s: out-of-domain checks are off (train with `python -m addons.train`)", model_path.name)
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep(trackers))

    @staticmethod
    async def _sweep(trackers: ExpiringInMemoryTrackerStore) -> None:
        while True:
            await asyncio.sleep(min(SWEEP_SECONDS, trackers.idle_seconds / 2))
            trackers.expire_idle()

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        webhook = Blueprint("fan_assistant_webhook", __name__)

        @webhook.listener("before_server_start")
        async def warm_encoder(app: Any, _loop: Any) -> None:
            # Registered before Rasa's own agent loading, so it runs first: the sentence encoder's
            # weights and compiled graphs (seconds) are ready before the server listens.
            from addons.encoder import shared_encoder

            shared_encoder()

        @webhook.listener("after_server_start")
        async def prepare(app: Any, _loop: Any) -> None:
            await self._prepare(app)

        @webhook.listener("before_server_stop")
        async def stop_sweeping(app: Any, _loop: Any) -> None:
            if self._sweeper is not None:
                self._sweeper.cancel()

        @webhook.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            return _json(200, {"status": "ok"}) if self.ready else _json(503, {"status": "loading"})

        @webhook.route("/message", methods=["POST"])
        async def message(request: Request) -> HTTPResponse:
            parsed = self._checked(request, want_text=True)
            if isinstance(parsed, HTTPResponse):
                return parsed
            sender, text = parsed
            try:
                return _json(200, await self._respond(request.app.ctx.agent, on_new_message, sender, text))
            except Exception as error:  # noqa: BLE001  # the class only: its message may quote the fan
                logger.error("model server: a message failed (%s)", type(error).__name__)
                return _json(500, {"error": "the model failed on this message"})

        @webhook.route("/forget", methods=["POST"])
        async def forget(request: Request) -> HTTPResponse:
            parsed = self._checked(request, want_text=False)
            if isinstance(parsed, HTTPResponse):
                return parsed
            sender, _ = parsed
            agent = request.app.ctx.agent
            async with agent.lock_store.lock(sender):  # not while a message of theirs is in flight
                dropped = _trackers(agent).drop(sender)
                dropped = _drop_fallback(agent, sender) or dropped
            return _json(200, {"dropped": int(dropped)})

        return webhook

    def _checked(self, request: Request, want_text: bool) -> "HTTPResponse | Tuple[str, str]":
        """The token first, then the body; a refusal is a JSON error and one content-free line."""
        if not self._authorised(request):
            logger.warning("model server: refused a request without the right token (%s)", request.path)
            return _json(401, {"error": "missing or wrong token"})
        try:
            body = _object(request)
            sender = _sender(body)
            text = _text(body) if want_text else ""
        except BadRequest as problem:
            logger.warning("model server: bad request to %s: %s", request.path, problem)
            return _json(400, {"error": str(problem)})
        if not self.ready:
            return _json(503, {"error": "the model server is still loading"})
        return sender, text

    async def _respond(self, agent: Any, on_new_message: Callable[[UserMessage], Awaitable[Any]], sender: str, text: str) -> Dict[str, Any]:
        assert self._decider is not None
        collector = CollectingOutputChannel()
        pending = self._decider.neighbours_soon(text)  # the encoder beside Rasa, on the other core
        try:
            await on_new_message(UserMessage(text, collector, sender, input_channel=self.name()))
        finally:
            near = await pending if pending is not None else None
        parse = _trackers(agent).latest_parse.get(sender, {})
        return self._decider.decide(text, collector.messages, parse, near).as_json()
