"""Long private results are never cut (issue 13 fault 6): a `/my-data` for a fan with 400
stored turns (about 134,000 characters, more than Slack's five response_url posts can carry)
arrives whole as a file only the fan can see, through the real slack-bolt and discord.py
clients against stand-ins that refuse a sixth response_url post like Slack."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from bot.engine.remote import ModelServerEngine
from bot.privacy.pseudonym import Pseudonymizer
from bot.privacy.store import TranscriptStore, Turn
from tests.integration.test_discord_connector import FAN as DISCORD_FAN
from tests.integration.test_discord_connector import KEY as DISCORD_KEY
from tests.integration.test_discord_connector import discord_world
from tests.integration.test_slack_connector import FAN as SLACK_FAN
from tests.integration.test_slack_connector import start_world

pytestmark = pytest.mark.integration
TURN_TEXT = "a long question about my subscription, the episodes and the app on my television " * 4


async def seed(store: TranscriptStore, fan: str, turns: int = 400) -> None:
    at = datetime.utcnow()
    await store.append(*[Turn(fan, "c" * 64, "fan", "message", at, f"{TURN_TEXT} number {n}") for n in range(turns)])


async def test_a_long_slack_export_arrives_whole_as_a_file_in_the_fans_dm(model_engine: ModelServerEngine, store: TranscriptStore) -> None:
    async for world in start_world("socket", model_engine, store):
        await seed(store, Pseudonymizer(b"slack-test-pseudonym-key-0123456789abcdef").fan("slack", SLACK_FAN))
        await world.standin.send_command("/my-data", "", SLACK_FAN)
        note = (await world.standin.wait_for_sent(lambda m: m.method == "response_url" and "my-data.json" in (m.text or ""), timeout=30))[-1]
        assert "too long for messages, so it is a file, my-data.json" in (note.text or "") and note.user == SLACK_FAN
        assert "```" not in (note.text or "") and "```" not in str(note.blocks)  # prose about the file, not data in a code block
        [upload] = await world.standin.wait_for_sent(lambda m: m.method == "files.completeUploadExternal", timeout=30)
        assert upload.channel == world.dm()  # the fan's DM with the app: only they can see it
        exported = json.loads(upload.files[0]["content"])
        assert len(exported["turns"]) == 400 and exported["turns"][-1]["text"].endswith("number 399")  # the newest arrived
        assert len([m for m in world.standin.sent if m.method == "response_url"]) <= 5


async def test_a_long_discord_export_is_an_ephemeral_attachment(model_engine: ModelServerEngine, store: TranscriptStore) -> None:
    async with discord_world(model_engine, store) as world:
        await seed(store, Pseudonymizer(DISCORD_KEY).fan("discord", str(DISCORD_FAN)))
        await world.standin.send_slash("my-data", DISCORD_FAN)
        [followup] = await world.sent(kind="followup", contains="my-data.json")
        assert followup.ephemeral and followup.files == ["my-data.json"]
        assert "```" not in (followup.content or "")  # prose about the file, not data in a code block
        message = world.standin._messages[followup.message_id]  # noqa: SLF001 - what the fan's client receives
        assert message["attachments"][0]["size"] > 130_000  # whole: 400 turns
        assert not [m for m in world.standin.sent if m.kind == "message"]  # nothing in any channel
