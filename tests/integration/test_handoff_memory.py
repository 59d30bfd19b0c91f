"""Handoff packets from the fans' recent turns held in memory, and tickets opened in groups:
the packet must be what a store read gives, and nothing erased or purged may stay in memory.

On a real SQLite file and a real PostgreSQL server (see `test_privacy_store.py`).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any, Optional

from sqlalchemy import func, insert, select

from bot.config import AssistantSettings, HandoffSettings
from bot.conversation import ConversationMemory
from bot.core import Bot
from bot.handoff.actions import console_action
from bot.handoff.service import Handoff
from bot.messages import Incoming, Kind, Outgoing
from bot.privacy.crypto import MasterKeys
from bot.privacy.pseudonym import Pseudonymizer
from bot.privacy.schema import tickets
from bot.privacy.store import TranscriptStore
from bot.testing.fake_engine import FakeEngine
from tests.integration.test_privacy_store import database_url, master  # noqa: F401 (fixtures)

KEY = b"handoff-memory-test-key-0123456789abcdef"
HISTORY = 4
MODERATORS = tuple(f"mod{i}" for i in range(60))


class Clock:
    """As `bot replay`'s: reading it does not move it; every message (`say`) a second later."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1)

    def __call__(self) -> datetime:
        return self.now


_CLOCKS: dict[int, Clock] = {}


def make_bot(store: TranscriptStore, clock: Optional[Clock] = None) -> Bot:
    clock = clock or Clock()
    bot = Bot(
        FakeEngine(), Pseudonymizer(KEY), AssistantSettings(), ConversationMemory(3600), store,
        clock=clock, handoff=HandoffSettings(moderators=MODERATORS, history_turns=HISTORY),
    )
    _CLOCKS[id(bot)] = clock
    return bot


def fan(user: str) -> str:
    return Pseudonymizer(KEY).fan("test", user)


async def say(bot: Bot, user: str, text: str) -> list[Outgoing]:
    _CLOCKS[id(bot)].now += timedelta(seconds=1)  # every message a second later: distinct times
    return await bot.handle(Incoming("test", user, "D1", text))


def packet_of(replies: list[Outgoing]) -> str:
    return next(reply.text for reply in replies if reply.kind is Kind.HANDOFF_TICKET)


async def from_store(store: TranscriptStore, pseudonym: str) -> tuple[list[dict[str, Any]], Optional[datetime]]:
    """What the packet showed before the memory: read and decrypted from the database."""
    return await store.run(lambda: (store.read_recent_turns(pseudonym, HISTORY), store.read_first_disclosure(pseudonym)))


async def from_memory(store: TranscriptStore, pseudonym: str) -> tuple[list[dict[str, Any]], Optional[datetime]]:
    assert await store.holds_recent(pseudonym)
    return await store.run(lambda: store.recent_history(pseudonym, HISTORY))


async def test_the_packet_from_memory_is_what_the_store_read_gives(database_url: str, master: MasterKeys) -> None:
    store = TranscriptStore.open(database_url, None, master)
    bot = make_bot(store)
    for text in ("hello", "refund please, mail me at ann@example.com", "this is useless"):
        await say(bot, "ann", text)
    await say(bot, "ann", "/privacy off")
    await say(bot, "ann", "my card is 4111 1111 1111 1111")  # not kept: logging is off
    first = await say(bot, "ann", "/human")
    await say(bot, "ann", "are you there? call +44 20 7946 0958")  # a relay: kept even with logging off
    await bot.moderate(console_action("mod1", "/claim Alex", None, bot.handoff.settings.moderators))
    await bot.moderate(console_action("mod1", "Hi, looking at it now.", None, bot.handoff.settings.moderators))
    await bot.moderate(console_action("mod1", "/resolve", None, bot.handoff.settings.moderators))
    second = await say(bot, "ann", "/human")
    await bot.drain()

    memory, stored = await from_memory(store, fan("ann")), await from_store(store, fan("ann"))
    assert memory == stored
    # logging off: the first handoff's relay and reply were kept only until it closed
    kinds = [turn["kind"] for turn in stored[0]]
    assert "handoff_relay" not in kinds and "moderator_reply" not in kinds and kinds[-1] == "handoff_offer"
    assert stored[1] is not None  # the disclosure of the first message
    # the packet the desk got is the one the store read would have made
    expected = Handoff._packet(await bot.handoff.find(None), *stored)  # type: ignore[arg-type]
    assert packet_of(second) == expected.text
    assert "+44" not in expected.text and "Hi, looking" not in expected.text
    assert "4111" not in packet_of(first) + packet_of(second)  # logging was off: never stored, never shown
    await store.aclose()


async def test_after_forget_me_nothing_of_the_fan_is_held(database_url: str, master: MasterKeys) -> None:
    store = TranscriptStore.open(database_url, None, master)
    bot = make_bot(store)
    await say(bot, "ann", "refund please, mail me at ann@example.com")
    await say(bot, "bob", "hello")
    await bot.drain()
    assert await store.holds_recent(fan("ann"))
    done = await say(bot, "ann", "/forget-me confirm")
    assert done[0].kind is Kind.ERASURE_DONE
    assert not await store.holds_recent(fan("ann"))
    assert await store.holds_recent(fan("bob"))  # only that fan
    packet = packet_of(await say(bot, "ann", "/human"))
    assert "refund" not in packet and "[EMAIL]" not in packet
    await store.aclose()


async def test_an_erasure_by_another_process_is_not_shown_from_memory(database_url: str, master: MasterKeys) -> None:
    store = TranscriptStore.open(database_url, None, master)
    bot = make_bot(store)
    await say(bot, "ann", "refund please, mail me at ann@example.com")
    await bot.drain()
    operator = TranscriptStore.open(database_url, None, master)  # `bot forget` while the bot runs
    await operator.erase(fan("ann"), actor="operator")
    await operator.aclose()
    packet = packet_of(await say(bot, "ann", "/human"))
    assert "refund" not in packet and "[EMAIL]" not in packet
    assert "Last 0 turn(s)" in packet
    await store.aclose()


async def test_a_purge_drops_what_it_deleted_from_memory(database_url: str, master: MasterKeys) -> None:
    store = TranscriptStore.open(database_url, None, master)
    clock = Clock()
    bot = make_bot(store, clock)
    await say(bot, "ann", "refund please")  # disclosure, message, answer at day 0
    clock.now += timedelta(days=40)
    await say(bot, "ann", "this is useless")
    await bot.drain()
    await store.purge(clock.now - timedelta(days=30))
    assert not await store.holds_recent(fan("ann"))  # it held the purged turns
    replies = await say(bot, "ann", "/human")
    turns, disclosed = await from_store(store, fan("ann"))
    assert disclosed is None and "refund" not in packet_of(replies)
    assert [turn["kind"] for turn in turns] == ["message", "answer", "handoff_offer"]
    await store.aclose()


async def test_after_a_restart_the_packet_still_carries_the_history(database_url: str, master: MasterKeys) -> None:
    store = TranscriptStore.open(database_url, None, master)
    bot = make_bot(store)
    for user in ("ann", "bob"):
        await say(bot, user, "refund please, mail me at someone@example.com")
    await bot.drain()
    await store.aclose()

    restarted = TranscriptStore.open(database_url, None, master)  # a new process: nothing in memory
    bot = make_bot(restarted)
    assert not await restarted.holds_recent(fan("ann"))
    cold = packet_of(await say(bot, "ann", "/human"))  # first message since the restart: read from the store
    await say(bot, "bob", "hello again")  # a returning fan: their history is read into memory
    await bot.drain()
    assert await from_memory(restarted, fan("bob")) == await from_store(restarted, fan("bob"))
    warm = packet_of(await say(bot, "bob", "/human"))
    assert "refund please, mail me at [EMAIL]" in cold
    # the first disclosures, before the restart (bob was told again after it, at a later time)
    assert "AI disclosure shown: 2026-01-01 00:00:01 UTC" in cold
    assert "AI disclosure shown: 2026-01-01 00:00:02 UTC" in warm
    await restarted.aclose()


async def test_fifty_fans_asking_at_once_get_distinct_stored_tickets(database_url: str, master: MasterKeys) -> None:
    store = TranscriptStore.open(database_url, None, master)
    bot = make_bot(store)
    users = [f"fan{i}" for i in range(50)]
    for user in users:
        await say(bot, user, "hello")
    runs = await asyncio.gather(*(say(bot, user, "/human") for user in users))
    numbers = [int(packet_ticket) for packet_ticket in (next(r.ticket for r in replies if r.kind is Kind.HANDOFF_TICKET) for replies in runs)]
    assert len(set(numbers)) == 50
    await bot.drain()
    stored = await bot.handoff.tickets.listing(active_only=True)
    assert sorted(ticket.id for ticket in stored) == sorted(numbers)
    assert {ticket.fan: ticket.id for ticket in stored} == {fan(user): number for user, number in zip(users, numbers)}
    assert all(ticket.route is not None and ticket.route.user_id in users for ticket in stored)
    # the database's own numbering carries on after them (PostgreSQL: the id sequence moved)
    with store.engine.begin() as connection:
        row = dict(
            fan="x" * 64, conversation="c", platform="test", route=b"-", status="resolved", reason="asked",
            created_at=datetime(2026, 1, 1), timeout_notified=False,
        )
        added = connection.execute(insert(tickets).values(**row)).inserted_primary_key[0]
        assert added > max(numbers)
        assert connection.execute(select(func.count()).select_from(tickets)).scalar() == 51
    await store.aclose()


async def test_a_restart_resumes_tickets_opened_in_a_group(database_url: str, master: MasterKeys) -> None:
    store = TranscriptStore.open(database_url, None, master)
    bot = make_bot(store)
    runs = await asyncio.gather(*(say(bot, f"fan{i}", "/human") for i in range(5)))
    assert all(any(r.kind is Kind.HANDOFF_STARTED for r in replies) for replies in runs)
    await store.aclose()  # the fans were told: their tickets are committed

    restarted = TranscriptStore.open(database_url, None, master)
    bot = make_bot(restarted)
    again = await say(bot, "fan3", "/human")
    assert [reply.kind for reply in again if reply.kind is Kind.HANDOFF_TICKET] == []
    assert any(reply.kind is Kind.HANDOFF_STARTED and "already in the queue" in reply.text for reply in again)
    more = packet_of(await say(bot, "fan9", "/human"))
    assert more.startswith("Ticket #6 ")
    await restarted.aclose()
