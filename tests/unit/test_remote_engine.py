"""The model-server client's faults, fast, against small HTTP servers that answer as the
channel does (docs/model-server.md) or misbehave. The real channel and the real model are
tested in tests/integration/test_model_server.py and rasa_project/addons/tests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from bot.engine import ARRIVED, EngineStarting, EngineUnavailable
from bot.engine.child import free_port
from bot.engine.remote import CHANNEL_PATH, ModelServerEngine

TOKEN = "t" * 32
GOOD = {"texts": ["Hi!"], "intent": "greet", "confidence": 0.97, "guess": None, "ranking": [{"name": "greet", "confidence": 0.97}]}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Server:
    """One HTTP server on loopback; `seen` lists (route, body) it was sent."""

    def __init__(self, message: Handler | None = None) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []
        self._message = message
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._runner: web.AppRunner | None = None

    async def _route(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"error": "unauthorized"}, status=401)
        body = await request.json()
        route = request.match_info["route"]
        self.seen.append((route, body))
        if route == "forget":
            return web.json_response({"dropped": 1})
        if self._message is not None:
            return await self._message(request)
        return web.json_response(GOOD)

    async def start(self) -> Server:
        app = web.Application()
        app.router.add_post(CHANNEL_PATH + "/{route}", self._route)
        app.router.add_get(CHANNEL_PATH + "/", lambda _: web.json_response({"status": "ok"}))
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def servers() -> AsyncIterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        await server.stop()


async def serve(servers: list[Server], message: Handler | None = None) -> Server:
    server = await Server(message).start()
    servers.append(server)
    return server


async def test_an_answer_in_the_contract_becomes_an_engine_result(servers: list[Server]) -> None:
    server = await serve(servers)
    engine = ModelServerEngine([server.url], TOKEN)
    result = await engine.respond("p1", "hello")
    assert (result.texts, result.intent, result.confidence, result.ranking) == (("Hi!",), "greet", 0.97, (("greet", 0.97),))
    assert server.seen == [("message", {"sender": "p1", "text": "hello"})]
    await engine.aclose()


@pytest.mark.parametrize(
    "body",
    [
        b"<html>502 Bad Gateway</html>",
        json.dumps({"texts": "Hi!", "intent": "greet", "confidence": 0.9}).encode(),
        json.dumps({"texts": [], "intent": 3, "confidence": 0.9}).encode(),
        json.dumps({"texts": [], "intent": "greet", "confidence": "high"}).encode(),
        json.dumps({"texts": [], "intent": "greet", "confidence": 7.0}).encode(),
        json.dumps({"texts": [], "intent": "greet", "confidence": 0.9, "ranking": [{"name": "x"}]}).encode(),
        json.dumps([1, 2]).encode(),
        b"\xff\xfe",
    ],
)
async def test_garbage_is_an_engine_failure_with_no_content(servers: list[Server], body: bytes) -> None:
    async def garbage(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    engine = ModelServerEngine([(await serve(servers, garbage)).url], TOKEN)
    with pytest.raises(EngineUnavailable) as raised:
        await engine.respond("p1", "secret words")
    assert "secret" not in str(raised.value)
    await engine.aclose()


@pytest.mark.parametrize("status", [500, 503, 404, 400])
async def test_an_error_status_is_an_engine_failure(servers: list[Server], status: int) -> None:
    async def failing(request: web.Request) -> web.Response:
        return web.json_response({"error": "x"}, status=status)

    engine = ModelServerEngine([(await serve(servers, failing)).url], TOKEN)
    with pytest.raises(EngineUnavailable, match=f"HTTP {status}"):
        await engine.respond("p1", "hi")
    await engine.aclose()


async def test_a_slow_server_times_out_and_is_not_asked_twice(servers: list[Server]) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.json_response(GOOD)

    first, second = await serve(servers, slow), await serve(servers)
    engine = ModelServerEngine([first.url, second.url], TOKEN, timeout_seconds=0.3)
    fan = next(f"p{i}" for i in range(100) if engine._ring.owner(f"p{i}") == first.url)
    with pytest.raises(EngineUnavailable, match="did not answer within"):
        await engine.respond(fan, "hi")
    assert second.seen == []  # a slow server may still be working on it: no second answer
    await engine.aclose()


async def test_a_wrong_token_says_so(servers: list[Server]) -> None:
    engine = ModelServerEngine([(await serve(servers)).url], "w" * 32)
    with pytest.raises(EngineUnavailable, match="refused the token"):
        await engine.respond("p1", "hi")
    await engine.aclose()


async def test_a_server_that_is_down_fails_over_and_is_used_again_when_back(servers: list[Server]) -> None:
    down_url = f"http://127.0.0.1:{free_port()}"
    up = await serve(servers)
    clock = [0.0]
    engine = ModelServerEngine([down_url, up.url], TOKEN, monotonic=lambda: clock[0])
    fan = next(f"p{i}" for i in range(100) if engine._ring.owner(f"p{i}") == down_url)
    assert (await engine.respond(fan, "hi")).intent == "greet"
    assert up.seen[-1] == ("message", {"sender": fan, "text": "hi"})
    # Back on the same port: after the retry pause the fan returns to its own server.
    port = int(down_url.rsplit(":", 1)[1])
    back = Server()
    back.port, back.url = port, down_url
    await back.start()
    servers.append(back)
    clock[0] += 10
    await engine.respond(fan, "again")
    assert back.seen == [("message", {"sender": fan, "text": "again"})]
    await engine.aclose()


async def test_all_servers_down_is_an_engine_failure_or_starting(servers: list[Server]) -> None:
    engine = ModelServerEngine([f"http://127.0.0.1:{free_port()}"], TOKEN)
    with pytest.raises(EngineUnavailable, match="no model server reachable"):
        await engine.respond("p1", "hi")
    engine.starting = True
    with pytest.raises(EngineStarting):
        await engine.respond("p1", "hi")
    await engine.aclose()


async def test_erasure_reaches_every_server_and_a_down_one_is_told_before_its_next_message(servers: list[Server]) -> None:
    a = await serve(servers)
    down_port = free_port()
    down_url = f"http://127.0.0.1:{down_port}"
    engine = ModelServerEngine([a.url, down_url], TOKEN)
    assert await engine.forget("gone") == 1
    assert a.seen == [("forget", {"sender": "gone"})]
    back = Server()
    back.port, back.url = down_port, down_url
    await back.start()
    servers.append(back)
    fan = next(f"p{i}" for i in range(100) if engine._ring.owner(f"p{i}") == down_url)
    await engine.respond(fan, "hi")
    assert back.seen == [("forget", {"sender": "gone"}), ("message", {"sender": fan, "text": "hi"})]
    await engine.aclose()


@pytest.mark.parametrize(
    ("assignment", "key"),
    [
        ("engine.urls=http://127.0.0.1:99999", "engine.urls"),
        ("engine.urls=ftp://model", "engine.urls"),
        ("engine.urls=http://a:1,http://a:1/", "engine.urls"),
        ("engine.url=model-1:5005", "engine.url"),
        ("engine.timeout_seconds=inf", "engine.timeout_seconds"),
        ("engine.timeout_seconds=0", "engine.timeout_seconds"),
        ("engine.ca_file=/no/such/ca.pem", "engine.ca_file"),
    ],
)
def test_bad_engine_settings_are_one_line_naming_the_key(assignment: str, key: str) -> None:
    from bot.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=f"^{key}: ") as raised:
        load_config(assignments=[assignment])
    assert "\n" not in str(raised.value)


async def test_a_ca_file_that_is_no_certificate_is_one_line_naming_the_key(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from bot.config import load_config
    from bot.engine.lifecycle import EngineConfigError, open_engine

    junk = tmp_path / "ca.pem"
    junk.write_text("not a certificate\n")
    config = load_config(assignments=["engine.url=https://127.0.0.1:5005", f"engine.ca_file={junk}"])
    with pytest.raises(EngineConfigError, match="^engine.ca_file: "):
        async with open_engine(config, environ={"BOT_ENGINE_TOKEN": TOKEN}):
            pass


async def test_a_burst_waits_in_the_bot_rather_than_timing_out_in_the_server(servers: list[Server]) -> None:
    """The stand-in works through one message at a time, as a model server does: twenty at
    once would mostly time out inside it; with two in flight, all are answered."""
    busy = asyncio.Lock()
    in_server = [0, 0]  # now, most

    async def one_at_a_time(request: web.Request) -> web.Response:
        in_server[0] += 1
        in_server[1] = max(in_server[1], in_server[0])
        try:
            async with busy:
                await asyncio.sleep(0.1)
        finally:
            in_server[0] -= 1
        return web.json_response(GOOD)

    engine = ModelServerEngine([(await serve(servers, one_at_a_time)).url], TOKEN, timeout_seconds=0.5, max_in_flight=2)
    results = await asyncio.gather(*(engine.respond(f"p{i}", "hi") for i in range(20)), return_exceptions=True)
    assert [r for r in results if isinstance(r, Exception)] == []
    assert in_server[1] == 2
    await engine.aclose()


async def test_a_place_not_found_in_time_is_an_honest_busy_failure(servers: list[Server]) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(1.0)
        return web.json_response(GOOD)

    engine = ModelServerEngine([(await serve(servers, slow)).url], TOKEN, timeout_seconds=5, max_in_flight=1, queue_seconds=0.2)
    results = await asyncio.gather(engine.respond("a", "hi"), engine.respond("b", "hi"), return_exceptions=True)
    assert sum(isinstance(r, EngineUnavailable) and "busy" in str(r) for r in results) == 1
    await engine.aclose()



async def test_a_wait_in_the_intake_before_the_pipeline_does_not_count_against_the_queue_limit(servers: list[Server]) -> None:
    """A burst's last fans waited in the connector's intake (`ARRIVED` long ago): they get a
    late answer, not the busy error (issue 11's soak: counted from arrival, a third of 5,000
    fans got the error on a busy machine)."""

    async def answer(request: web.Request) -> web.Response:
        return web.json_response(GOOD)

    engine = ModelServerEngine([(await serve(servers, answer)).url], TOKEN, timeout_seconds=5, queue_seconds=1)
    token = ARRIVED.set(0.0)  # monotonic zero: the machine's boot, hours ago
    try:
        assert (await engine.respond("a", "hi")).intent
    finally:
        ARRIVED.reset(token)
    await engine.aclose()
