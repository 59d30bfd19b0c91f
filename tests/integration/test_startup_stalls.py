"""Start-up against an API that misbehaves (issue 10 item 9, found again by QA): a server that
accepts the connection and never answers, or answers HTTP 500 with an HTML page, stops
start-up with one line (`ConnectorError`, exit 2 in `bot`), never a hang or a traceback.
The real slack-sdk / discord.py clients, against small loopback servers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from bot.config import DiscordSettings, SlackSettings
from connectors import discord_connector, slack_connector
from connectors.base import ConnectorError
from connectors.discord_connector import DiscordConnector
from connectors.router import Router
from connectors.slack_connector import SlackConnector, SlackTokens

pytestmark = pytest.mark.integration


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """Accepts connections and reads, but never answers."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        await reader.read(65536)
        await asyncio.sleep(3600)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    for writer in held:
        writer.close()


@pytest.fixture
async def html_500_port() -> AsyncIterator[int]:
    async def fail(request: web.Request) -> web.Response:
        return web.Response(status=500, text="<html><body>Internal Server Error</body></html>", content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fail)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield runner.addresses[0][1]
    await runner.cleanup()


async def test_a_silent_slack_api_times_out_with_one_line(silent_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(slack_connector, "START_TIMEOUT_SECONDS", 0.5)
    connector = SlackConnector(SlackSettings(api_base_url=f"http://127.0.0.1:{silent_port}/api/"), SlackTokens("xoxb-x", "xapp-x"), Router())
    with pytest.raises(ConnectorError, match=r"slack: cannot reach the API .* \(timed out\)"):
        await asyncio.wait_for(connector.run(None), 10)  # type: ignore[arg-type]
    await connector.aclose()


async def test_a_silent_discord_api_times_out_with_one_line(silent_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(discord_connector, "START_TIMEOUT_SECONDS", 0.5)
    base = f"http://127.0.0.1:{silent_port}/api/v10"
    connector = DiscordConnector(DiscordSettings(api_base_url=base, gateway_url=f"ws://127.0.0.1:{silent_port}/"), "t", Router())
    try:
        with pytest.raises(ConnectorError, match=r"discord: cannot reach the API .* \(timed out\)"):
            await asyncio.wait_for(connector.run(None), 10)  # type: ignore[arg-type]
    finally:
        await connector.aclose()


async def test_a_slack_api_answering_an_html_500_is_one_line(html_500_port: int) -> None:
    connector = SlackConnector(SlackSettings(api_base_url=f"http://127.0.0.1:{html_500_port}/api/"), SlackTokens("xoxb-x", "xapp-x"), Router())
    with pytest.raises(ConnectorError, match=r"slack: the API at .* failed auth.test \(HTTP 500\)"):
        await asyncio.wait_for(connector.run(None), 10)  # type: ignore[arg-type]
    await connector.aclose()
