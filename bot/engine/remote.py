"""The dialogue engine as one or more model servers (`rasa run` with the project's input
channel, docs/model-server.md), reached over HTTP.

Why a client of our own rather than Rasa's REST API: the channel answers in one request with
the replies, the intent, the confidence and the ranking, and the REST API (which can read
every tracker) stays switched off. Fans are routed by pseudonym (`bot.engine.ring`), so a
fan's dialogue context stays on one server; when that server cannot be reached, the next one
on the ring answers (the fan's dialogue context is lost there, the bot's conversation state
is not, since that lives in the bot).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import ssl
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Optional

import aiohttp

from bot.engine import EngineResult, EngineStarting, EngineUnavailable
from bot.engine.ring import HashRing

logger = logging.getLogger(__name__)

CHANNEL_PATH = "/webhooks/fan_assistant"
#: A server that refused a connection is skipped this long before it is tried again.
RETRY_DOWN_SECONDS = 5.0
#: Messages sent to one server at once. A model server works through one message at a time
#: (one Sanic worker, CPU-bound), so more would only queue inside it, where the wait counts
#: against the timeout: in a burst of 5,000 fans most then got the error reply
#: (bench/soak.py). Beyond this many, messages wait in the bot, at most `queue_seconds`.
MAX_IN_FLIGHT = 4
QUEUE_SECONDS = 60.0


def _result(body: Any) -> EngineResult:
    """The channel's JSON as an `EngineResult`; `ValueError` when it is not the contract's shape
    (docs/model-server.md)."""
    if not isinstance(body, dict):
        raise ValueError("not a JSON object")
    texts, intent, confidence, guess = body.get("texts"), body.get("intent"), body.get("confidence"), body.get("guess")
    ranking = body.get("ranking", [])
    if not isinstance(texts, list) or not all(isinstance(text, str) for text in texts):
        raise ValueError("texts is not a list of strings")
    for name, value in (("intent", intent), ("guess", guess)):
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{name} is not a string")
    if confidence is not None and (
        isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0.0 <= confidence <= 1.0
    ):
        raise ValueError("confidence is not a number in [0, 1]")
    if not isinstance(ranking, list):
        raise ValueError("ranking is not a list")
    scores: list[tuple[str, float]] = []
    for entry in ranking:
        score = entry.get("confidence") if isinstance(entry, dict) else None
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not isinstance(score, (int, float)) or isinstance(score, bool) or not math.isfinite(score):
            raise ValueError("ranking entries need a name and a confidence")
        scores.append((entry["name"], float(score)))
    return EngineResult(
        texts=tuple(texts),
        intent=intent,
        confidence=None if confidence is None else float(confidence),
        guess=guess,
        ranking=tuple(scores),
    )


class ModelServerEngine:
    """`DialogueEngine` over model servers. `urls`: base URLs (`http://127.0.0.1:5005`);
    `token`: the shared secret (`BOT_ENGINE_TOKEN`); `timeout_seconds`: per request, after
    which the fan gets the honest error rather than a long wait. Raises `EngineUnavailable`."""

    def __init__(
        self,
        urls: Sequence[str],
        token: str,
        timeout_seconds: float = 10.0,
        ssl_context: Optional[ssl.SSLContext] = None,
        monotonic: Callable[[], float] = time.monotonic,
        max_in_flight: int = MAX_IN_FLIGHT,
        queue_seconds: float = QUEUE_SECONDS,
    ) -> None:
        self._ring = HashRing([url.rstrip("/") for url in urls])
        self._max_in_flight = max_in_flight
        self._queue_seconds = queue_seconds
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._headers = {"Authorization": f"Bearer {token}"}
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._monotonic = monotonic
        self._down_until: dict[str, float] = {}
        #: Erasures a server could not be told about yet: sent before its next message.
        self._pending_forgets: dict[str, set[str]] = {}
        self._session: Optional[aiohttp.ClientSession] = None
        #: Set by the embedded server's supervisor while the model loads.
        self.starting = False

    @property
    def servers(self) -> tuple[str, ...]:
        return self._ring.servers

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # No cookies, no proxies from the environment: the token only goes where configured.
            self._session = aiohttp.ClientSession(timeout=self._timeout, cookie_jar=aiohttp.DummyCookieJar())
        return self._session

    async def _post(self, server: str, route: str, body: dict[str, Any]) -> Any:
        """POSTs to one server. Raises `ConnectionError` when it cannot be reached (so another
        may be tried) and `EngineUnavailable` for any other fault."""
        try:
            async with self._client().post(f"{server}{CHANNEL_PATH}/{route}", json=body, headers=self._headers, ssl=self._ssl) as response:
                raw = await response.read()
                status = response.status
        except TimeoutError:
            raise EngineUnavailable(f"model server {server} did not answer within {self._timeout.total:g} s") from None
        except (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError) as error:
            raise ConnectionError(f"model server {server} unreachable: {type(error).__name__}") from None
        except aiohttp.ClientError as error:
            raise EngineUnavailable(f"model server {server}: {type(error).__name__}") from None
        if status == 401:
            raise EngineUnavailable(f"model server {server} refused the token (BOT_ENGINE_TOKEN differs)")
        if status != 200:
            raise EngineUnavailable(f"model server {server} answered HTTP {status}")
        try:
            return json.loads(raw)
        except (UnicodeDecodeError, ValueError):
            raise EngineUnavailable(f"model server {server} answered something that is not JSON") from None

    def _candidates(self, pseudonym: str) -> list[str]:
        """The fan's servers in ring order, those that refused a connection recently last."""
        now = self._monotonic()
        order = self._ring.order(pseudonym)
        return [s for s in order if self._down_until.get(s, 0.0) <= now] + [s for s in order if self._down_until.get(s, 0.0) > now]

    async def respond(self, pseudonym: str, text: str) -> EngineResult:
        unreachable: list[str] = []
        for server in self._candidates(pseudonym):
            try:
                await self._flush_forgets(server)
                async with self._slot(server):
                    body = await self._post(server, "message", {"sender": pseudonym, "text": text})
            except ConnectionError:
                self._down_until[server] = self._monotonic() + RETRY_DOWN_SECONDS
                unreachable.append(server)
                continue
            self._down_until.pop(server, None)
            try:
                return _result(body)
            except ValueError as error:
                raise EngineUnavailable(f"model server {server} answered outside the contract: {error}") from None
        if self.starting:
            raise EngineStarting("the model server is still loading the model")
        raise EngineUnavailable(f"no model server reachable ({len(unreachable)} tried)")

    @contextlib.asynccontextmanager
    async def _slot(self, server: str) -> AsyncIterator[None]:
        """One of the server's `max_in_flight` places; `EngineUnavailable` (busy) after waiting
        `queue_seconds` for one. The wait in a connector's intake before the pipeline is not
        counted: a burst's last fans get a late answer rather than an error (issue 11's soak:
        counted from arrival, a third of 5,000 fans got the error on a busy machine)."""
        slots = self._slots.setdefault(server, asyncio.Semaphore(self._max_in_flight))
        try:
            await asyncio.wait_for(slots.acquire(), self._queue_seconds)
        except TimeoutError:
            raise EngineUnavailable(f"model server {server} busy: no place within {self._queue_seconds:g} s") from None
        try:
            yield
        finally:
            slots.release()

    async def forget(self, pseudonym: str) -> int:
        """Tells every server to drop the fan's tracker (a fan may have been served by any of
        them after a failover). A server that cannot be reached is told before its next
        message; until then its copy expires with its idle limit (in memory only)."""
        results = await asyncio.gather(*(self._forget_on(server, pseudonym) for server in self.servers))
        return sum(results)

    async def _forget_on(self, server: str, pseudonym: str) -> int:
        try:
            body = await self._post(server, "forget", {"sender": pseudonym})
        except (ConnectionError, EngineUnavailable) as error:
            self._pending_forgets.setdefault(server, set()).add(pseudonym)
            logger.warning("erasure not yet delivered to a model server (retried before its next message): %s", error)
            return 0
        dropped = body.get("dropped") if isinstance(body, dict) else None
        return dropped if isinstance(dropped, int) and not isinstance(dropped, bool) else 0

    async def _flush_forgets(self, server: str) -> None:
        pending = self._pending_forgets.pop(server, set())
        while pending:
            pseudonym = pending.pop()
            try:
                await self._post(server, "forget", {"sender": pseudonym})
            except (ConnectionError, EngineUnavailable):
                self._pending_forgets.setdefault(server, set()).update(pending | {pseudonym})
                raise

    async def ready(self, server: Optional[str] = None) -> bool:
        """Whether `server` (default: any) answers its health route."""
        for candidate in (server,) if server else self.servers:
            try:
                async with self._client().get(f"{candidate}{CHANNEL_PATH}/", ssl=self._ssl, timeout=aiohttp.ClientTimeout(total=2)) as response:
                    if response.status == 200:
                        return True
            except (TimeoutError, aiohttp.ClientError, OSError):
                continue
        return False

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
