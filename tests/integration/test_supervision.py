"""One connector's failure never stops another (issue 11 item 1): `serve` with Slack and
Discord side by side (real slack-bolt and discord.py against the stand-ins, the real
model); malformed Discord dispatches are dropped, a non-JSON gateway frame crashes the
Discord connection, which is restarted alone, and Slack answers throughout."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from bot.config import SlackSettings
from bot.engine.remote import ModelServerEngine
from bot.privacy.store import TranscriptStore
from bot.testing.slack_standin import SlackStandIn
from connectors.launch import Platforms, serve
from connectors.router import Router
from connectors.slack_connector import SlackConnector, SlackTokens
from tests.integration.test_discord_connector import FAN, discord_world

pytestmark = pytest.mark.integration
SLACK_FAN = "UFANSUP"


async def dispatch(standin: Any, event: str, data: dict[str, Any]) -> None:
    """A dispatch with whatever payload the test gives (a fuzzed or future-API shape)."""
    session = standin._require_session()  # noqa: SLF001 - the stand-in's gateway session
    await standin._dispatch(session, event, data)  # noqa: SLF001


async def raw_frame(standin: Any, text: str) -> None:
    session = standin._require_session()  # noqa: SLF001
    await session.ws.send_str(text)


MALFORMED = [
    ("MESSAGE_CREATE", {"id": "1300000000000000777", "type": 0, "content": "hi", "author": {"id": str(FAN), "username": "fan", "discriminator": "0", "avatar": None}}),  # no channel_id
    ("MESSAGE_CREATE", {"channel_id": "1300000000000000778", "type": 0, "author": {"id": str(FAN)}}),  # no id, no content
    ("INTERACTION_CREATE", {"id": "1300000000000000779", "application_id": "1", "type": 2, "token": "t", "version": 1, "data": {"id": "1", "name": "why", "type": 1}}),  # short
    ("GUILD_CREATE", {"name": "no id"}),
]


async def test_malformed_dispatches_and_a_garbage_frame_leave_every_platform_serving(
    model_engine: ModelServerEngine, store: TranscriptStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with SlackStandIn(bot_token="xoxb-sup", app_token="xapp-sup") as slack_standin:
        slack_standin.add_user(SLACK_FAN, "slack fan")
        router = Router()
        slack = SlackConnector(SlackSettings(api_base_url=slack_standin.api_base_url), SlackTokens("xoxb-sup", "xapp-sup"), router, None, ping_interval=1.0)
        router.add_platform("slack", slack)
        async with discord_world(model_engine, store, desk=None, router=router) as world:
            # The world already runs the Discord connector; serve() supervises Slack beside it,
            # and a second supervisor takes over the Discord connector after its crash below.
            stop = asyncio.Event()
            serving = asyncio.create_task(serve(world.bot, Platforms(connectors=[slack], router=router), stop=stop))
            await slack_standin.wait_for_socket(10)
            try:
                for event, data in MALFORMED:
                    await dispatch(world.standin, event, data)
                await world.standin.send_dm(FAN, "how do I reset my password?")
                await world.sent(world.dm(), count=2)  # same connection: the bad dispatches were dropped
                dropped = [r for r in caplog.records if "dropped a malformed" in r.getMessage()]
                assert {r.getMessage().split()[3] for r in dropped} == {"MESSAGE_CREATE", "INTERACTION_CREATE", "GUILD_CREATE"}
                assert "hi" not in " ".join(r.getMessage() for r in dropped)

                await slack_standin.send_dm(SLACK_FAN, "the stream keeps buffering")
                await slack_standin.wait_for_sent(lambda m: m.channel == slack_standin.dm_channel(SLACK_FAN), count=2, timeout=20)
                assert not serving.done()
            finally:
                stop.set()
                await asyncio.wait_for(serving, 20)


async def test_a_crashed_discord_connection_is_restarted_alone(
    model_engine: ModelServerEngine, store: TranscriptStore, caplog: pytest.LogCaptureFixture
) -> None:
    from bot.config import DiscordSettings
    from bot.testing.discord_standin import DiscordStandIn, point_discord_at
    from connectors.discord_connector import DiscordConnector

    caplog.set_level(logging.INFO)
    async with SlackStandIn(bot_token="xoxb-sup", app_token="xapp-sup") as slack_standin, DiscordStandIn(token="sup") as discord_standin:
        slack_standin.add_user(SLACK_FAN, "slack fan")
        discord_standin.add_member(FAN, "fan")
        restore = point_discord_at(discord_standin.api_base, discord_standin.gateway_url)
        router = Router()
        slack = SlackConnector(SlackSettings(api_base_url=slack_standin.api_base_url), SlackTokens("xoxb-sup", "xapp-sup"), router, None, ping_interval=1.0)
        discord = DiscordConnector(
            DiscordSettings(api_base_url=discord_standin.api_base, gateway_url=discord_standin.gateway_url, guild_id=str(discord_standin.guild_id)),
            "sup", router, None, guild_ready_timeout=0.1,
        )
        router.add_platform("slack", slack)
        router.add_platform("discord", discord)
        from bot.config import AssistantSettings
        from bot.conversation import ConversationMemory
        from bot.core import Bot
        from bot.privacy.pseudonym import Pseudonymizer as Pseudonyms

        bot = Bot(model_engine, Pseudonyms(b"supervision-test-key-0123456789abcdef"), AssistantSettings(), ConversationMemory(1800), store)
        stop = asyncio.Event()
        serving = asyncio.create_task(serve(bot, Platforms(connectors=[slack, discord], router=router), stop=stop))
        try:
            await slack_standin.wait_for_socket(10)
            await asyncio.wait_for(discord.ready.wait(), 15)
            first_session = discord_standin._session  # noqa: SLF001
            await raw_frame(discord_standin, "this is not JSON {")
            for _ in range(300):  # the crash is logged, then the supervisor logs in and identifies afresh
                if discord_standin._session is not first_session and discord.client.is_ready():  # noqa: SLF001
                    break
                await asyncio.sleep(0.05)
            crashed = [r for r in caplog.records if "discord connector crashed" in r.getMessage()]
            assert len(crashed) == 1 and "JSONDecodeError" in crashed[0].getMessage()
            await slack_standin.send_dm(SLACK_FAN, "hello slack")  # Slack was never interrupted
            await slack_standin.wait_for_sent(lambda m: m.channel == slack_standin.dm_channel(SLACK_FAN), count=2, timeout=20)
            await discord_standin.send_dm(FAN, "hello again discord")
            await discord_standin.wait_for_sent(lambda m: m.channel_id == discord_standin.dm_channel_id(FAN), count=2, timeout=20)
            assert not serving.done()
        finally:
            stop.set()
            await asyncio.wait_for(serving, 20)
            restore()
