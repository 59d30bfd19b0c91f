"""Issue 10 item 1 and 2 on the Slack desk, through the real slack-bolt app and the Slack
stand-in, on SQLite and PostgreSQL: an erased fan's ticket thread, buttons and number never
reach another fan, even after a restart; erasure deletes the desk copies and says what it
could not delete; a fan who writes first after a restart is relayed into their thread."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from bot.config import AssistantSettings, HandoffSettings, SlackSettings
from bot.conversation import ConversationMemory
from bot.core import Bot
from bot.engine.remote import ModelServerEngine
from bot.handoff.desk import ERASED_TEXT
from bot.handoff.states import Status
from bot.privacy.crypto import MasterKeys
from bot.privacy.pseudonym import Pseudonymizer
from bot.privacy.store import TranscriptStore
from connectors.router import Router
from connectors.slack_connector import SlackConnector, SlackTokens
from standins.slack import SlackStandIn
from tests.integration.databases import database_url  # noqa: F401 - the fixture
from tests.integration.test_slack_connector import (
    APP_TOKEN,
    BOT_TOKEN,
    DESK,
    FAN,
    GENERAL,
    MODERATOR,
    OTHER_FAN,
    OUTSIDER,
    SECRET,
    start_world,
)

PSEUDONYM_KEY = b"slack-test-pseudonym-key-0123456789abcdef"
PHONE = "+44 20 7946 0958"


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[TranscriptStore]:  # noqa: F811
    opened = TranscriptStore.open(database_url, None, MasterKeys.parse(MasterKeys.generate()))
    yield opened
    await opened.aclose()


@contextlib.asynccontextmanager
async def restarted(standin: SlackStandIn, engine: ModelServerEngine, store: TranscriptStore) -> AsyncIterator[Bot]:
    """A new process: a new connector and bot, nothing in memory, the same store."""
    router = Router()
    connector = SlackConnector(SlackSettings(api_base_url=standin.api_base_url), SlackTokens(BOT_TOKEN, APP_TOKEN, SECRET), router, DESK, ping_interval=1.0)
    router.add_platform("slack", connector)
    router.desk = connector.desk
    bot = Bot(engine, Pseudonymizer(PSEUDONYM_KEY), AssistantSettings(), ConversationMemory(1800), store, handoff=HandoffSettings(desk=f"slack:{DESK}"))
    task = asyncio.create_task(connector.run(bot))
    try:
        await standin.wait_for_socket(10)
        yield bot
    finally:
        await connector.aclose()
        await asyncio.wait_for(task, 10)
        await bot.drain()


def desk_texts(standin: SlackStandIn) -> str:
    return "\n".join(m.get("text", "") for m in standin.messages_in(DESK))


async def test_an_erased_fans_thread_number_and_buttons_never_reach_the_next_fan(model_engine: ModelServerEngine, store: TranscriptStore) -> None:
    async for world in start_world("socket", model_engine, store):
        standin = world.standin
        # Fan A: ticket #1, a relay with a phone number, a claim and a reply in the thread.
        await standin.send_command("/human", "", FAN, GENERAL)
        packet_a = (await world.sent_to(DESK, contains="Ticket #1 ·"))[0]
        await standin.send_dm(FAN, f"call me on {PHONE}")
        relay = (await standin.wait_for_sent(lambda m: m.thread_ts == packet_a.ts and PHONE in (m.text or ""), timeout=20))[0]
        await standin.click_button(MODERATOR, "ticket_claim", "1", DESK, packet_a.ts)
        claimed = (await standin.wait_for_sent(lambda m: m.thread_ts == packet_a.ts and "You claimed" in (m.text or ""), timeout=20))[0]
        await world.sent_to(world.dm(), contains="Sam Mod")

        # Slack refuses to delete two of them: one can still be edited, one cannot.
        standin.fail("chat.delete", relay.ts or "", "cant_delete_message")
        standin.fail("chat.delete", claimed.ts or "", "cant_delete_message")
        standin.fail("chat.update", claimed.ts or "", "cant_update_message")
        await standin.send_command("/forget-me", "confirm", FAN, world.dm())
        receipt = (await standin.wait_for_sent(lambda m: m.method == "response_url" and "erased" in (m.text or "").lower() and m.user == FAN, timeout=20))[-1]
        assert "deleted 1 message(s)" in receipt.text and "1 I could not delete" in receipt.text
        assert "1 I could neither delete nor edit" in receipt.text
        assert (DESK, packet_a.ts) in standin.deleted
        assert PHONE not in desk_texts(standin)  # the fan's words are gone from the desk
        await world.sent_to(DESK, contains="Ticket #1 was erased at the fan's request.")  # the desk is told, no content
        edited = next(m for m in standin.messages_in(DESK) if m["ts"] == relay.ts)
        assert edited["text"] == ERASED_TEXT
        await world.bot.drain()
        left = [e for e in store.audit_log.entries() if e["action"] == "desk_copies_left"]
        assert left and '"edited":1' in left[-1]["detail"] and '"not_removed":1' in left[-1]["detail"]

        # Fan B's ticket is #2, never A's number.
        await standin.send_command("/human", "", OTHER_FAN, GENERAL)
        packet_b = (await world.sent_to(DESK, contains="Ticket #2 ·"))[0]
        assert not [m for m in standin.sent if "Ticket #1 ·" in (m.text or "") and m.ts != packet_a.ts]
        await world.connector.aclose()
        await world.bot.drain()

        async with restarted(standin, model_engine, store) as bot:
            before = len(standin.sent)
            # A moderator's line in A's old thread reaches nobody; they alone are told.
            await standin.send_channel_message(MODERATOR, DESK, "are you still there?", thread_ts=packet_a.ts)
            refusal = (await standin.wait_for_sent(lambda m: m.method == "chat.postEphemeral" and m.user == MODERATOR, timeout=20))[-1]
            assert "closed or was erased" in refusal.text and refusal.thread_ts == packet_a.ts
            # A's old buttons (whatever number they carry) do nothing to B's ticket.
            for value in ("1", "2"):
                await standin.click_button(MODERATOR, "ticket_claim", value, DESK, packet_a.ts)
                await standin.wait_for_sent(lambda m: m.method == "response_url" and m.user == MODERATOR and "closed or was erased" in (m.text or ""), count=1, timeout=20)
            ticket_b = await bot.handoff.tickets.get(2)
            assert ticket_b is not None and ticket_b.status is Status.OPEN
            # B writes first after the restart: relayed into B's own thread.
            await standin.send_dm(OTHER_FAN, "hello, anyone?")
            relayed = await standin.wait_for_sent(lambda m: "hello, anyone?" in (m.text or ""), timeout=20)
            assert relayed[0].channel == DESK and relayed[0].thread_ts == packet_b.ts
            await standin.send_channel_message(MODERATOR, DESK, "!claim", thread_ts=packet_b.ts)
            await world.sent_to(world.dm(OTHER_FAN), contains="Sam Mod")
            await standin.send_channel_message(MODERATOR, DESK, "Hi B, how can I help?", thread_ts=packet_b.ts)
            await world.sent_to(world.dm(OTHER_FAN), contains="how can I help")
            await asyncio.sleep(0.3)
            after = standin.sent[before:]
            assert not [m for m in after if "are you still there" in (m.text or "")]  # reached no fan
            assert not [m for m in after if m.channel == world.dm(FAN)]
            # A resolved ticket's thread refuses too, looked up in the database.
            await standin.send_channel_message(MODERATOR, DESK, "!resolve", thread_ts=packet_b.ts)
            await world.sent_to(world.dm(OTHER_FAN), contains="back with the AI assistant")
            await standin.send_channel_message(MODERATOR, DESK, "one more thing", thread_ts=packet_b.ts)
            closed = await standin.wait_for_sent(lambda m: m.method == "chat.postEphemeral" and "is resolved" in (m.text or ""), timeout=20)
            assert closed[-1].user == MODERATOR


async def test_the_slack_desk_authorises_by_its_own_rule_only(model_engine: ModelServerEngine, store: TranscriptStore) -> None:
    """An id in `[handoff] moderators` (the console desk's list) gains nothing on Slack: only
    the desk channel's members (or the moderator user group) may act there."""
    async for world in start_world("socket", model_engine, store, moderators=(OUTSIDER,)):
        standin = world.standin
        await standin.send_command("/human", "", FAN, GENERAL)
        packet = (await world.sent_to(DESK, contains="Ticket #1 ·"))[0]
        await standin.click_button(OUTSIDER, "ticket_claim", "1", DESK, packet.ts)
        refusal = await standin.wait_for_sent(lambda m: m.user == OUTSIDER and "Only moderators" in (m.text or ""), timeout=20)
        assert refusal[0].response_type == "ephemeral"
        ticket = await world.bot.handoff.tickets.get(1)
        assert ticket is not None and ticket.status is Status.OPEN
        await standin.send_channel_message(MODERATOR, DESK, "!claim", thread_ts=packet.ts)
        await world.sent_to(world.dm(), contains="Sam Mod")


async def test_an_operator_erasure_leaves_desk_copies_for_the_running_bot_to_delete(model_engine: ModelServerEngine, store: TranscriptStore) -> None:
    """`bot forget` has no desk connection: the erasure queues the desk messages' locations
    (durably, in its own transaction) and the running bot's periodic desk work deletes them."""
    async for world in start_world("socket", model_engine, store):
        standin = world.standin
        await standin.send_command("/human", "", FAN, GENERAL)
        packet = (await world.sent_to(DESK, contains="Ticket #1 ·"))[0]
        await standin.send_dm(FAN, f"call me on {PHONE}")
        await standin.wait_for_sent(lambda m: m.thread_ts == packet.ts and PHONE in (m.text or ""), timeout=20)
        await world.bot.drain()

        receipt = await store.erase(Pseudonymizer(PSEUDONYM_KEY).fan("slack", FAN), actor="operator")  # what `bot forget` runs
        await store.settle()
        assert len(receipt.desk_posts) >= 2
        assert PHONE in desk_texts(standin)  # nothing could delete them yet
        removed = await world.bot.handoff.remove_pending_desk_copies(min_age_seconds=0)
        assert removed.deleted == len(receipt.desk_posts) and not removed.left
        assert PHONE not in desk_texts(standin) and (DESK, packet.ts) in standin.deleted
        again = await world.bot.handoff.remove_pending_desk_copies(min_age_seconds=0)
        assert again.deleted == 0  # the queue is empty once the desk has acted


async def test_a_packet_held_by_a_rate_limit_is_never_posted_after_the_fan_is_erased(model_engine: ModelServerEngine, store: TranscriptStore) -> None:
    """QA: Slack answers the packet's chat.postMessage with 429 three times (1 s apart in the
    outbox); the fan erases everything meanwhile. Then only the erasure's notice reaches the
    desk: the packet, with the fan's recent words, would sit where no erasure finds it."""
    async for world in start_world("socket", model_engine, store):
        standin = world.standin
        standin.rate_limit("chat.postMessage", times=3, retry_after=1)
        await standin.send_command("/human", "", FAN, GENERAL)
        await standin.wait_for_sent(lambda m: m.method == "response_url" and "ticket #1" in (m.text or ""), timeout=20)
        await standin.send_command("/forget-me", "confirm", FAN, world.dm())
        await standin.wait_for_sent(lambda m: m.method == "response_url" and "erased" in (m.text or "").lower() and m.user == FAN, timeout=20)
        notice = await world.sent_to(DESK, contains="Ticket #1 was erased at the fan's request.")
        await asyncio.sleep(1.5)
        await world.bot.drain()
        assert [m.text for m in standin.sent if m.channel == DESK] == [notice[0].text]


async def test_an_erasure_while_slack_rate_limits_the_deletes_deletes_the_copies_later(model_engine: ModelServerEngine, store: TranscriptStore) -> None:
    """QA: chat.delete and chat.update rate-limited during the erasure counted the packet as
    left for good. A rate limit decides nothing: it stays queued and goes at the next try."""
    async for world in start_world("socket", model_engine, store):
        standin = world.standin
        await standin.send_command("/human", "", FAN, GENERAL)
        packet = (await world.sent_to(DESK, contains="Ticket #1 ·"))[0]
        standin.rate_limit("chat.delete", times=5, retry_after=1)
        standin.rate_limit("chat.update", times=5, retry_after=1)
        await standin.send_command("/forget-me", "confirm", FAN, world.dm())
        receipt = (await standin.wait_for_sent(lambda m: m.method == "response_url" and "erased" in (m.text or "").lower() and m.user == FAN, timeout=20))[-1]
        assert "could not reach just now" in (receipt.text or "") and "still there" not in (receipt.text or ""), receipt.text
        standin.rate_limit("chat.delete", times=0)
        standin.rate_limit("chat.update", times=0)
        removal = await world.bot.handoff.remove_pending_desk_copies(min_age_seconds=0)
        assert removal.deleted == 1 and not removal.left and not removal.pending
        assert (DESK, packet.ts) in standin.deleted
