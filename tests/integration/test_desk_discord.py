"""Issue 10 items 1 and 2 on the Discord desk, through the real discord.py client and the
Discord stand-in, on SQLite and PostgreSQL: an erased fan's thread, number and buttons never
reach the next fan, even after a restart; erasure deletes the desk messages (and the ticket
thread) and says what it could not; a fan who writes first after a restart is relayed into
their ticket's thread."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import pytest

from bot.config import AssistantSettings, DiscordSettings, HandoffSettings
from bot.conversation import ConversationMemory
from bot.core import Bot
from bot.engine.remote import ModelServerEngine
from bot.handoff.desk import ERASED_TEXT, Removal
from bot.handoff.states import Status
from bot.privacy.crypto import MasterKeys
from bot.privacy.pseudonym import Pseudonymizer
from bot.privacy.store import TranscriptStore
from connectors.discord_connector import DiscordConnector
from connectors.router import Router
from standins.discord import DiscordStandIn, SentMessage
from tests.integration.databases import database_url  # noqa: F401 - the fixture
from tests.integration.test_discord_connector import (
    DESK_ID,
    FAN,
    KEY,
    MOD_ROLE,
    MODERATOR,
    OTHER_FAN,
    OUTSIDER,
    TOKEN,
    DiscordWorld,
    discord_world,
)

PHONE = "+44 20 7946 0958"


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[TranscriptStore]:  # noqa: F811
    opened = TranscriptStore.open(database_url, None, MasterKeys.parse(MasterKeys.generate()))
    yield opened
    await opened.aclose()


@contextlib.asynccontextmanager
async def restarted(standin: DiscordStandIn, engine: ModelServerEngine, store: TranscriptStore) -> AsyncIterator[Bot]:
    router = Router()
    settings = DiscordSettings(
        api_base_url=standin.api_base, gateway_url=standin.gateway_url, guild_id=str(standin.guild_id), moderator_role=str(MOD_ROLE)
    )
    connector = DiscordConnector(settings, TOKEN, router, str(DESK_ID), guild_ready_timeout=0.1)
    router.add_platform("discord", connector)
    router.desk = connector.desk
    bot = Bot(engine, Pseudonymizer(KEY), AssistantSettings(), ConversationMemory(1800), store, handoff=HandoffSettings(desk=f"discord:{DESK_ID}"))
    task = asyncio.create_task(connector.run(bot))
    try:
        await asyncio.wait_for(connector.ready.wait(), 15)
        yield bot
    finally:
        await connector.aclose()
        with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError):
            await asyncio.wait_for(task, 10)
        await bot.drain()


async def thread_of(standin: DiscordStandIn, count: int) -> int:
    for _ in range(200):
        if len(standin.threads) >= count:
            break
        await asyncio.sleep(0.05)
    return int(standin.threads[count - 1]["id"])


async def test_an_erased_fans_thread_number_and_buttons_never_reach_the_next_fan(model_engine: ModelServerEngine, store: TranscriptStore) -> None:
    async with discord_world(model_engine, store) as world:
        standin = world.standin
        await standin.send_slash("human", FAN)
        packet_a = (await world.sent(DESK_ID, contains="Ticket #1 ·"))[0]
        thread_a = await thread_of(standin, 1)
        await standin.send_dm(FAN, f"call me on {PHONE}")
        relay = (await world.sent(thread_a, contains=PHONE))[0]
        await standin.click_button(MODERATOR, "ticket:claim:1", packet_a.message_id, DESK_ID)
        claimed = (await world.sent(thread_a, contains="You claimed"))[0]
        await world.sent(world.dm(), contains="Robin")

        # Discord refuses some: a relay can be edited, a notice neither deleted nor edited,
        # and the thread itself stays (so a moderator can still write in it below).
        standin.fail("DELETE message", relay.message_id or 0)
        standin.fail("DELETE message", claimed.message_id or 0)
        standin.fail("PATCH message", claimed.message_id or 0)
        standin.fail("DELETE channel", thread_a)
        await standin.send_slash("forget-me", FAN)
        request = await world.sent(kind="followup", contains="/forget-me confirm")
        await standin.click_button(FAN, "forget_me:confirm", request[-1].message_id, world.dm(), guild=False)
        receipt = (await world.sent(kind="followup", contains="erased"))[-1]
        assert receipt.ephemeral
        assert "deleted 1 message(s)" in (receipt.content or "") and "1 I could not delete" in (receipt.content or "")
        assert "1 I could neither delete nor edit" in (receipt.content or "")
        assert (DESK_ID, packet_a.message_id) in standin.deleted
        desk_now = standin.messages(DESK_ID) + standin.messages(thread_a)
        assert not [m for m in desk_now if PHONE in (m.get("content") or "")]
        assert [m["content"] for m in desk_now if int(m["id"]) == relay.message_id] == [ERASED_TEXT]

        await standin.send_slash("human", OTHER_FAN)
        await world.sent(DESK_ID, contains="Ticket #2 ·")
        thread_b = await thread_of(standin, 2)
        await world.connector.aclose()
        await world.bot.drain()

        async with restarted(standin, model_engine, store) as bot:
            before = len(standin.sent)
            # A moderator's message in A's old thread reaches nobody; only they are told (DM).
            await standin.send_guild_message(MODERATOR, thread_a, "are you still there?")
            refusal = await world.sent(standin.dm_channel_id(MODERATOR), contains="closed or was erased")
            assert refusal[-1].kind == "message"
            # A's old Claim button does nothing to B's ticket.
            await standin.click_button(MODERATOR, "ticket:claim:1", packet_a.message_id, DESK_ID)
            refused = await world.sent(kind="followup", contains="closed or was erased")
            assert refused[-1].ephemeral
            ticket_b = await bot.handoff.tickets.get(2)
            assert ticket_b is not None and ticket_b.status is Status.OPEN
            # B writes first after the restart: relayed into B's thread, not the desk channel.
            await standin.send_dm(OTHER_FAN, "hello, anyone?")
            relayed = await world.sent(contains="hello, anyone?", kind="message")
            assert relayed[0].channel_id == thread_b
            await standin.send_guild_message(MODERATOR, thread_b, "!claim")
            await world.sent(world.dm(OTHER_FAN), contains="Robin")
            await standin.send_guild_message(MODERATOR, thread_b, "Hi B, how can I help?")
            await world.sent(world.dm(OTHER_FAN), contains="how can I help")
            await asyncio.sleep(0.3)
            after = standin.sent[before:]
            assert not [m for m in after if "are you still there" in (m.content or "")]
            assert not [m for m in after if m.channel_id == world.dm(FAN)]


async def test_erasure_deletes_the_ticket_thread_the_bot_created(model_engine: ModelServerEngine, store: TranscriptStore) -> None:
    async with discord_world(model_engine, store) as world:
        standin = world.standin
        await standin.send_slash("human", FAN)
        packet = (await world.sent(DESK_ID, contains="Ticket #1 ·"))[0]
        thread = await thread_of(standin, 1)
        await standin.send_dm(FAN, f"my number is {PHONE}")
        await world.sent(thread, contains=PHONE)
        await standin.send_slash("forget-me", FAN)
        request = await world.sent(kind="followup", contains="/forget-me confirm")
        await standin.click_button(FAN, "forget_me:confirm", request[-1].message_id, world.dm(), guild=False)
        receipt = (await world.sent(kind="followup", contains="erased"))[-1]
        assert "deleted 2 message(s)" in (receipt.content or "") and "could not" not in (receipt.content or "")
        assert thread in standin.deleted_channels and (DESK_ID, packet.message_id) in standin.deleted
        assert not [m for m in standin.messages() if PHONE in (m.get("content") or "") and int(m["channel_id"]) != world.dm()]


async def test_the_discord_desk_authorises_by_its_own_rule_only(model_engine: ModelServerEngine, store: TranscriptStore) -> None:
    """Issue 11 item 11: an id in `[handoff] moderators` (the console desk's list) gains
    nothing on Discord: only members with the moderator role may act there."""
    async with discord_world(model_engine, store, moderators=(str(OUTSIDER),)) as world:
        standin = world.standin
        await standin.send_slash("human", FAN)
        packet = (await world.sent(DESK_ID, contains="Ticket #1 ·"))[0]
        thread = await thread_of(standin, 1)
        await standin.click_button(OUTSIDER, "ticket:claim:1", packet.message_id, DESK_ID)
        refusal = await world.sent(kind="followup", contains="Only moderators")
        assert refusal[-1].ephemeral
        await standin.send_guild_message(OUTSIDER, thread, "!claim")
        await standin.send_guild_message(OUTSIDER, thread, "hello fan, I am not a moderator")
        await world.settled(0.5)
        ticket = await world.bot.handoff.tickets.get(1)
        assert ticket is not None and ticket.status is Status.OPEN
        assert not [m for m in standin.sent if m.channel_id == world.dm() and "not a moderator" in (m.content or "")]
        await standin.click_button(MODERATOR, "ticket:claim:1", packet.message_id, DESK_ID)
        await world.sent(world.dm(), contains="Robin")


#: The two REST calls of a new ticket's packet: its post in the desk channel, then its thread.
PACKET_STEPS = {"packet": rf"/channels/{DESK_ID}/messages", "thread": rf"/channels/{DESK_ID}/messages/\d+/threads"}


async def packet_through(world: DiscordWorld, fault: Callable[..., None], step: str) -> tuple[SentMessage, int]:
    """A fan's /human while Discord fails `step` of the packet once (`fault`: the stand-in's
    `unavailable` or `lose_answers`), then the fan's next message, relayed into the thread;
    checks Discord did answer 503. Returns the packet and its thread's id."""
    standin = world.standin
    fault(PACKET_STEPS[step], method="POST")
    await standin.send_slash("human", FAN)
    [packet] = await world.sent(DESK_ID, contains="Ticket #1 ·")
    thread = await thread_of(standin, 1)
    await standin.send_dm(FAN, f"my number is {PHONE}")
    await world.sent(thread, contains=PHONE)
    await world.settled(1.0)
    failed = f"/channels/{DESK_ID}/messages" if step == "packet" else f"/channels/{DESK_ID}/messages/{packet.message_id}/threads"
    assert ("POST", failed, 503) in [(method, path.removeprefix("/api/v10"), status) for method, path, status in standin.requests]
    return packet, thread


@pytest.mark.parametrize("failing", ["packet", "thread"])
async def test_a_desk_outage_delays_the_packet_but_never_loses_or_doubles_it(
    model_engine: ModelServerEngine, store: TranscriptStore, failing: str
) -> None:
    """Discord answers 503 once (an outage, which discord.py does not retry itself) when the
    packet is posted, or when its thread is started: the outbox tries again and the desk ends
    with one packet, its thread and its buttons, and the fan's next message in that thread."""
    async with discord_world(model_engine, store) as world:
        standin = world.standin
        packet, thread = await packet_through(world, standin.unavailable, failing)
        assert thread == packet.message_id  # started from the packet: same id
        assert [m.message_id for m in standin.sent if m.channel_id == DESK_ID] == [packet.message_id]
        assert packet.components  # Claim / Resolve
        assert [m for m in standin.sent if m.channel_id == thread and "Ticket #1" in (m.content or "")] == []
        ticket = await world.bot.handoff.tickets.get(1)
        assert ticket is not None and ticket.location is not None and ticket.location.thread == str(thread)


async def test_a_packet_waiting_on_an_outage_is_never_posted_after_the_fan_is_erased(
    model_engine: ModelServerEngine, store: TranscriptStore
) -> None:
    """The desk's API answers 503 three times, so the packet waits in the outbox (0.5, 1 and
    2 s apart); the fan erases everything meanwhile: when Discord answers again, nothing about
    the erased ticket may reach the desk, where no erasure would ever find it."""
    async with discord_world(model_engine, store) as world:
        standin = world.standin
        standin.unavailable(rf"/channels/{DESK_ID}/messages", times=3, method="POST")
        await standin.send_slash("human", FAN)
        await world.sent(kind="followup", contains="ticket #1")
        await standin.send_slash("forget-me", FAN)
        request = await world.sent(kind="followup", contains="/forget-me confirm")
        await standin.click_button(FAN, "forget_me:confirm", request[-1].message_id, world.dm(), guild=False)
        await world.sent(kind="followup", contains="erased")
        for _ in range(100):  # until the outage's three refusals were used up by retries
            if sum(status == 503 for _, _, status in standin.requests) == 3:
                break
            await asyncio.sleep(0.1)
        await world.settled(5.0)  # the next retry (4 s after the third) would post it
        at_desk = [m.content or "" for m in standin.sent if m.channel_id == DESK_ID]
        assert len(at_desk) == 1 and "Ticket #1 was erased at the fan's request." in at_desk[0], at_desk  # only that
        assert standin.threads == []


async def test_a_long_packet_that_fails_midway_is_finished_once_with_its_buttons(
    model_engine: ModelServerEngine, store: TranscriptStore
) -> None:
    """QA: three long messages make a packet of several pieces; Discord refuses one piece in the
    thread (503). The retry sends only the pieces not yet sent, the buttons on the last."""
    async with discord_world(model_engine, store) as world:
        standin = world.standin
        for n in range(3):
            await standin.send_dm(FAN, f"message {n}: " + "my stream keeps buffering and freezing every few seconds " * 28)
            await world.sent(world.dm(), count=2 + n)  # the disclosure, then an answer to each
        await world.settled()
        standin.unavailable(rf"/channels/(?!{DESK_ID})\d+/messages", method="POST")  # the second piece, in the thread
        await standin.send_slash("human", FAN)
        [packet] = await world.sent(DESK_ID, contains="Ticket #1 ·")
        thread = await thread_of(standin, 1)
        for _ in range(100):
            if any(m.components for m in standin.sent if m.channel_id == thread):
                break
            await asyncio.sleep(0.1)
        await world.settled(1.0)
        in_thread = [m for m in standin.sent if m.channel_id == thread]
        assert ("POST", f"/channels/{thread}/messages", 503) in [(m, p.removeprefix("/api/v10"), s) for m, p, s in standin.requests]
        assert len(in_thread) >= 1 and not packet.components
        assert [bool(m.components) for m in in_thread] == [False] * (len(in_thread) - 1) + [True]
        assert len({m.content for m in in_thread}) == len(in_thread)  # no piece twice
        assert not any((m.content or "").startswith(packet.content or "-") for m in in_thread)  # the head is not repeated


@pytest.mark.parametrize("losing", ["packet", "thread"])
async def test_a_lost_answer_from_discord_never_doubles_the_packet(model_engine: ModelServerEngine, store: TranscriptStore, losing: str) -> None:
    """QA: Discord made the packet (or its thread) but its answer was lost (answered 503 after
    the fact): the retry must not post a second packet nobody records, nor repeat its head."""
    async with discord_world(model_engine, store) as world:
        standin = world.standin
        packet, thread = await packet_through(world, standin.lose_answers, losing)
        assert [m["id"] for m in standin.messages(DESK_ID)] == [str(packet.message_id)]  # one packet at the desk
        assert len(standin.threads) == 1 and thread == packet.message_id
        assert not [m for m in standin.sent if m.channel_id == thread and "Ticket #1 ·" in (m.content or "")]


async def test_an_erasure_during_a_desk_outage_deletes_the_copies_once_discord_answers(
    model_engine: ModelServerEngine, store: TranscriptStore
) -> None:
    """QA: Discord answered 503 to the erasure's deletes (and edits), and the copies were counted
    as left for good and dropped from the queue. A 5xx decides nothing: they stay queued, the
    fan is told so, and the next try deletes them."""
    async with discord_world(model_engine, store) as world:
        standin = world.standin
        await standin.send_slash("human", FAN)
        [packet] = await world.sent(DESK_ID, contains="Ticket #1 ·")
        thread = await thread_of(standin, 1)
        await standin.send_dm(FAN, f"call me on {PHONE}")
        await world.sent(thread, contains=PHONE)
        standin.unavailable(r"/channels/\d+/messages/\d+", times=20, method="DELETE")
        standin.unavailable(r"/channels/\d+/messages/\d+", times=20, method="PATCH")
        await standin.send_slash("forget-me", FAN)
        request = await world.sent(kind="followup", contains="/forget-me confirm")
        await standin.click_button(FAN, "forget_me:confirm", request[-1].message_id, world.dm(), guild=False)
        receipt = (await world.sent(kind="followup", contains="erased"))[-1].content or ""
        assert "could not reach just now" in receipt and "still there" not in receipt, receipt
        assert PHONE in " ".join(m.get("content") or "" for m in standin.messages(thread))  # not yet
        standin.reset_outages()
        removal = await world.bot.handoff.remove_pending_desk_copies(min_age_seconds=0)
        assert removal.deleted == 2 and not removal.left and not removal.pending
        assert not [m for m in standin.messages(DESK_ID) if int(m["id"]) == packet.message_id]
        assert PHONE not in " ".join(m.get("content") or "" for m in standin.messages(thread))
        assert await world.bot.handoff.remove_pending_desk_copies(min_age_seconds=0) == Removal()  # nothing left queued
