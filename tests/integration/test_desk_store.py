"""Tickets at the database, on SQLite and PostgreSQL: numbers never reused, claims racing
from two separate stores, `/privacy off` handoff turns deleted on close, the claimed-silence
notice once, takeover and the operator's release."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from bot.config import AssistantSettings, HandoffSettings
from bot.conversation import ConversationMemory
from bot.core import Bot
from bot.handoff.actions import console_action
from bot.handoff.desk import Removal
from bot.handoff.locations import DeskPost
from bot.handoff.states import Action, IllegalTransition, Status
from bot.handoff.ticket_store import TicketStore
from bot.messages import Incoming, Kind
from bot.privacy.crypto import MasterKeys
from bot.privacy.pseudonym import Pseudonymizer
from bot.privacy.schema import audit_log, turns
from bot.privacy.store import TranscriptStore
from bot.testing.fake_engine import FakeEngine
from tests.integration.databases import database_url  # noqa: F401 - the fixture

KEY = b"desk-store-test-pseudonym-key-0123456789abcdef"
SETTINGS = HandoffSettings(moderators=("mod1", "mod2"), claimed_silence_minutes=15)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def master() -> MasterKeys:
    return MasterKeys.parse(MasterKeys.generate())


def make_bot(store: TranscriptStore, clock: Clock) -> Bot:
    return Bot(FakeEngine(), Pseudonymizer(KEY), AssistantSettings(), ConversationMemory(3600), store, clock=clock, handoff=SETTINGS)


async def say(bot: Bot, user: str, text: str) -> list:  # type: ignore[type-arg]
    return await bot.handle(Incoming("replay", user, "direct", text))


async def act(bot: Bot, moderator: str, text: str, ticket: int | None = None) -> list:  # type: ignore[type-arg]
    return await bot.moderate(console_action(moderator, text, ticket, SETTINGS.moderators))


async def test_an_erased_newest_ticket_number_is_never_handed_out_again(database_url: str, master: MasterKeys) -> None:  # noqa: F811
    store = TranscriptStore.open(database_url, None, master)
    bot = make_bot(store, Clock())
    await say(bot, "ann", "/human")
    assert (await bot.handoff.active(Pseudonymizer(KEY).fan("replay", "ann"))).id == 1  # type: ignore[union-attr]
    await say(bot, "ann", "/forget-me confirm")
    await bot.drain()
    await store.aclose()

    store = TranscriptStore.open(database_url, None, master)  # a restart: nothing in memory
    bot = make_bot(store, Clock())
    started = await say(bot, "bob", "/human")
    assert [r.ticket for r in started if r.kind is Kind.HANDOFF_TICKET] == ["2"]
    await store.aclose()


async def test_two_claims_racing_from_two_stores_have_exactly_one_winner(database_url: str, master: MasterKeys) -> None:  # noqa: F811
    """Two stores (two threads, two connection pools, as two processes would have): only
    the conditional update at the database can pick the winner."""
    first = TranscriptStore.open(database_url, None, master)
    second = TranscriptStore.open(database_url, None, master)
    bot = make_bot(first, Clock())
    await say(bot, "ann", "/human")
    a, b = TicketStore(first), TicketStore(second)
    for _ in range(5):  # several rounds: a lost race must never let both through
        ticket_a, ticket_b = (await a.listing())[0], (await b.listing())[0]
        assert ticket_a.status is Status.OPEN and ticket_b.status is Status.OPEN
        results = await asyncio.gather(
            a.move(ticket_a, Action.CLAIM, datetime(2026, 1, 1), "m1", "m1", "Alex"),
            b.move(ticket_b, Action.CLAIM, datetime(2026, 1, 1), "m2", "m2", "Sam"),
            return_exceptions=True,
        )
        winners = [r for r in results if not isinstance(r, BaseException)]
        assert len(winners) == 1 and sum(isinstance(r, IllegalTransition) for r in results) == 1
        stored = (await b.listing())[0]
        assert (stored.moderator, stored.moderator_name) == (winners[0].moderator, winners[0].moderator_name)
        await a.move(stored, Action.UNCLAIM, datetime(2026, 1, 1), stored.moderator or "")
    await first.aclose()
    await second.aclose()


async def _handoff_kinds(store: TranscriptStore, fan: str) -> list[str]:
    def work() -> list[str]:
        with store.engine.connect() as connection:
            return list(connection.execute(select(turns.c.kind).where(turns.c.fan == fan).order_by(turns.c.id)).scalars())

    return await store.run(work)


@pytest.mark.parametrize("closing", ["/resolve", "cancel"])
async def test_privacy_off_handoff_turns_are_deleted_when_the_ticket_closes(database_url: str, master: MasterKeys, closing: str) -> None:  # noqa: F811
    store = TranscriptStore.open(database_url, None, master)
    bot = make_bot(store, Clock())
    pseudonyms = Pseudonymizer(KEY)
    for user in ("ann", "bob"):
        await say(bot, user, "hello")
        if user == "ann":
            await say(bot, user, "/privacy off")
        await say(bot, user, "/human")
        await say(bot, user, "are you there?")
    for ticket in (1, 2):
        await act(bot, "mod1", "/claim Alex", ticket)
        await act(bot, "mod1", "Hi, looking at it now.", ticket)
    await bot.drain()
    ann, bob = pseudonyms.fan("replay", "ann"), pseudonyms.fan("replay", "bob")
    assert {"handoff_relay", "moderator_reply"} <= set(await _handoff_kinds(store, ann))  # kept while the ticket is open
    for ticket, user in ((1, "ann"), (2, "bob")):
        if closing == "cancel":
            await say(bot, user, "/human cancel")
        else:
            await act(bot, "mod1", "/resolve", ticket)
    await bot.drain()
    kept = await _handoff_kinds(store, ann)
    assert "handoff_relay" not in kept and "moderator_reply" not in kept
    assert "answer" in kept  # what was stored before /privacy off stays
    assert {"handoff_relay", "moderator_reply"} <= set(await _handoff_kinds(store, bob))  # logging on: kept
    await store.aclose()


async def test_a_silent_claim_is_notified_once_and_another_moderator_takes_over(database_url: str, master: MasterKeys) -> None:  # noqa: F811
    clock = Clock()
    first, second = TranscriptStore.open(database_url, None, master), TranscriptStore.open(database_url, None, master)
    bot, other = make_bot(first, clock), make_bot(second, clock)  # two processes checking timeouts
    await say(bot, "ann", "/human")
    await act(bot, "mod1", "/claim Alex")
    await act(bot, "mod1", "Hi, one moment.")
    clock.now += timedelta(minutes=10)
    for process in (bot, other):  # both now hold the claimed ticket in memory, not yet notified
        assert [n for n in await process.expire_handoffs() if n.kind is Kind.HANDOFF_TIMEOUT] == []
    clock.now += timedelta(minutes=6)  # 16 minutes after the last reply
    notices = await asyncio.gather(bot.expire_handoffs(), other.expire_handoffs())
    silence = [n for batch in notices for n in batch if n.kind is Kind.HANDOFF_TIMEOUT]
    assert sorted(n.to for n in silence) == ["desk", "user"]  # once: the desk and the fan
    clock.now += timedelta(minutes=30)
    assert not [n for n in await bot.expire_handoffs() + await other.expire_handoffs() if n.kind is Kind.HANDOFF_TIMEOUT]

    refused = await act(bot, "mod2", "Hello, I'm here")
    assert [r.kind for r in refused] == [Kind.REFUSED]
    taken = await act(bot, "mod2", "/takeover Sam")
    assert [(r.kind, r.to) for r in taken] == [(Kind.MODERATOR_JOINED, "user"), (Kind.MODERATOR_JOINED, "desk")]
    assert "from Alex" in taken[1].text
    assert [r.kind for r in await act(bot, "mod1", "still me")] == [Kind.REFUSED]
    assert [r.kind for r in await act(bot, "mod2", "Sam here, sorting it")] == [Kind.MODERATOR_REPLY]
    await bot.drain()
    actions = [e["action"] for e in first.audit_log.entries()]
    assert "ticket_taken_over" in actions
    await first.aclose()
    await second.aclose()


async def test_the_operator_releases_a_claimed_ticket_and_the_running_bot_tells_both(database_url: str, master: MasterKeys) -> None:  # noqa: F811
    clock = Clock()
    running = TranscriptStore.open(database_url, None, master)
    bot = make_bot(running, clock)
    await say(bot, "ann", "/human")
    await act(bot, "mod1", "/claim Alex")
    operator = TranscriptStore.open(database_url, None, master)  # `bot handoff release 1`, another process
    tickets = TicketStore(operator)
    ticket = await tickets.get(1)
    assert ticket is not None
    released = await tickets.move(ticket, Action.RELEASE, clock(), "operator")
    assert released.status is Status.OPEN and released.moderator is None
    told = await bot.expire_handoffs()
    assert sorted((n.kind, n.to) for n in told) == [(Kind.HANDOFF_STARTED, "user"), (Kind.HANDOFF_TICKET, "desk")]
    assert await bot.expire_handoffs() == []  # told once
    claimed = await act(bot, "mod2", "/claim Sam")  # back in the queue for anyone
    assert claimed[0].kind is Kind.MODERATOR_JOINED
    with operator.engine.connect() as connection:
        assert "ticket_released" in list(connection.execute(select(audit_log.c.action)).scalars())
    await running.aclose()
    await operator.aclose()


class UnreachableDesk:
    """A desk whose platform cannot be reached now (a network error, a failed REST login)."""

    async def remove(self, posts: object) -> Removal:
        raise ConnectionResetError("the desk's API is unreachable")


class ReachableDesk:
    def __init__(self) -> None:
        self.removed: list[DeskPost] = []

    async def remove(self, posts: list[DeskPost]) -> Removal:
        self.removed.extend(posts)
        return Removal(deleted=len(posts))


async def test_desk_copies_an_erasure_could_not_reach_stay_queued_and_go_later(database_url: str, master: MasterKeys) -> None:  # noqa: F811
    """QA: a desk that raised (the network, a failed login) made the erasure drop its queue of
    desk messages to delete, so they stayed at the desk for good; now they wait for the next try."""
    store = TranscriptStore.open(database_url, None, master)
    try:
        clock = Clock()
        bot = make_bot(store, clock)
        await say(bot, "ann", "/human")
        post = DeskPost(1, "discord", "900", "901")
        assert await bot.handoff.tickets.posted([post], datetime.utcnow()) == []
        bot.handoff.use_desk_copies(UnreachableDesk())
        receipt = " ".join(r.text for r in await say(bot, "ann", "/forget-me confirm"))
        assert "1 I could not reach just now" in receipt and "still there" not in receipt
        later = datetime.utcnow() + timedelta(minutes=5)
        assert await bot.handoff.tickets.pending_removals(later) == [post]  # still queued
        desk = ReachableDesk()
        bot.handoff.use_desk_copies(desk)
        clock.now = later  # the jobs leader's next look
        await bot.handoff.remove_pending_desk_copies()
        assert desk.removed == [post] and await bot.handoff.tickets.pending_removals(later) == []
        await bot.drain()
    finally:
        await store.aclose()
