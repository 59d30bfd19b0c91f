"""A Discord message delivered twice by the gateway (at-least-once, see the stand-in's
`redeliver`) is answered once: deduplication by message id, through the real discord.py client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.engine.remote import ModelServerEngine
from bot.privacy.store import TranscriptStore
from tests.integration.test_discord_connector import FAN, DiscordWorld, discord_world

pytestmark = pytest.mark.integration


@pytest.fixture
async def world(model_engine: ModelServerEngine, store: TranscriptStore) -> AsyncIterator[DiscordWorld]:
    async with discord_world(model_engine, store) as running:
        yield running


async def test_a_message_delivered_twice_is_answered_once(world: DiscordWorld) -> None:
    message_id = await world.standin.send_dm(FAN, "how do I cancel my subscription?")
    await world.sent(world.dm(), count=2)  # disclosure + answer
    await world.standin.redeliver(message_id)
    await world.standin.send_dm(FAN, "thanks")  # a later message is still answered: the redelivery was read
    await world.sent(world.dm(), count=3)
    await world.settled()
    replies = [m for m in world.standin.sent if m.channel_id == world.dm()]
    assert len(replies) == 3, [m.content for m in replies]
    assert await world.bot.drain() is None
