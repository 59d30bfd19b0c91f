"""Issue 13's inputs, through the real slack-bolt / discord.py clients and the strict stand-ins:
text decoded once at the edge, human subtypes handled, duplicates found by message, and
Nitro-length Discord messages reaching the moderator."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bot.engine.remote import ModelServerEngine
from bot.privacy.store import TranscriptStore
from tests.integration.test_discord_connector import DESK_ID, DiscordWorld, discord_world
from tests.integration.test_discord_connector import FAN as DISCORD_FAN
from tests.integration.test_discord_connector import MODERATOR as DISCORD_MOD
from tests.integration.test_slack_connector import DESK, FAN, MODERATOR, SlackWorld, start_world

pytestmark = pytest.mark.integration

GUIDE = "Please follow <https://help.example/refunds|our refund guide> and ping <@UMOD1> if stuck"


@pytest.fixture
async def slack(model_engine: ModelServerEngine, store: TranscriptStore) -> AsyncIterator[SlackWorld]:
    async for running in start_world("socket", model_engine, store):
        yield running


async def _claimed_ticket(world: SlackWorld) -> str:
    """/human, then the moderator claims: the ticket thread's ts."""
    await world.standin.send_command("/human", "", FAN)
    packet = (await world.sent_to(DESK, contains="Ticket #"))[0]
    assert packet.ts is not None
    await world.standin.click_button(MODERATOR, "ticket_claim", packet.blocks[-2]["elements"][0]["value"], DESK, packet.ts)
    await world.sent_to(world.dm(), contains="Sam Mod")
    return packet.ts


async def test_slack_text_is_decoded_once_both_ways(slack: SlackWorld) -> None:
    thread = await _claimed_ticket(slack)
    await slack.standin.send_dm(FAN, "thanks to the R&amp;D team &lt;3")
    relay = (await slack.standin.wait_for_sent(lambda m: m.thread_ts == thread and "R&" in (m.seen or ""), timeout=20))[0]
    assert "thanks to the R&D team <3" in (relay.seen or "")  # not R&amp;amp;D, not &amp;lt;3
    await slack.standin.send_channel_message(MODERATOR, DESK, GUIDE, thread_ts=thread)
    reply = (await slack.standin.wait_for_sent(lambda m: m.channel == slack.dm() and "refund guide" in (m.seen or ""), timeout=20))[0]
    assert "Please follow our refund guide (https://help.example/refunds) and ping @Sam Mod if stuck" in (reply.seen or "")
    assert "UMOD1" not in (reply.text or "") and "<https" not in (reply.text or "")


async def test_slack_human_subtypes_are_handled_and_edits_are_not(slack: SlackWorld) -> None:
    dm = slack.dm()
    await slack.standin.send_subtype("file_share", FAN, dm, "my screen shows an error", files=["error.png"])
    await slack.sent_to(dm, count=2)  # disclosure + an answer to the captioned screenshot
    await slack.standin.send_subtype("me_message", FAN, dm, "is confused about billing")
    await slack.sent_to(dm, count=3)
    first = await slack.standin.send_dm(FAN, "hello")
    await slack.sent_to(dm, count=4)
    await slack.standin.send_subtype("message_changed", None, dm, "hello again", ts=first.payload["event"]["ts"])
    await slack.standin.send_subtype("message_deleted", None, dm, ts=first.payload["event"]["ts"])
    await slack.settled(1.0)
    assert len([m for m in slack.standin.sent if m.channel == dm]) == 4

    thread = await _claimed_ticket(slack)
    await slack.standin.send_subtype("thread_broadcast", MODERATOR, DESK, "Refund sent, check your email", thread_ts=thread)
    await slack.sent_to(dm, contains="Refund sent")


async def test_slack_one_message_under_two_event_ids_gets_one_reply(slack: SlackWorld) -> None:
    first = await slack.standin.send_dm(FAN, "how do I reset my password?")
    await slack.sent_to(slack.dm(), count=2)
    again = await slack.standin.redeliver_as_new(first)
    assert again.acked and again.event_id != first.event_id
    await slack.settled(1.0)
    assert len([m for m in slack.standin.sent if m.channel == slack.dm()]) == 2


@pytest.fixture
async def discord(model_engine: ModelServerEngine, store: TranscriptStore) -> AsyncIterator[DiscordWorld]:
    async with discord_world(model_engine, store) as running:
        yield running


async def test_discord_nitro_message_in_a_handoff_reaches_the_moderator_decoded(discord: DiscordWorld) -> None:
    await discord.standin.send_slash("human", DISCORD_FAN)
    await discord.sent(DESK_ID, contains="Ticket #")
    for _ in range(100):  # the thread is opened right after the packet
        if discord.standin.threads:
            break
        await asyncio.sleep(0.05)
    thread = int(discord.standin.threads[-1]["id"])
    words = " ".join(f"w{i:04d}" for i in range(520))  # 2,599 characters: Nitro allows 4,000
    text = f"<@{DISCORD_MOD}> in <#{DESK_ID}> <:party:123> " + words
    await discord.standin.send_dm(DISCORD_FAN, text)
    await discord.sent(thread, contains="w0519")
    relayed = "\n".join(m.content or "" for m in discord.standin.sent if m.channel_id == thread)
    assert "w0000" in relayed and "w0519" in relayed
    assert "@Robin in #mod-desk :party:" in relayed and str(DISCORD_MOD) not in relayed
