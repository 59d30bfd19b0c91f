"""Tickets owned by the database (issue 16, "Tickets"): two `Bot`s, each with its own store
object on one database (two processes' worth of state), act as one bot for handoffs. On a
real SQLite file and a real PostgreSQL. No process keeps a ticket index the other could
contradict: every read is the database's, every move and notice a conditional update."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest

from bot.config import AssistantSettings, HandoffSettings
from bot.conversation import ConversationMemory
from bot.core import Bot
from bot.handoff.actions import console_action
from bot.handoff.desk import ConsoleDesk
from bot.handoff.ticket_store import TicketStore
from bot.messages import Address, Incoming, Kind, Outgoing
from bot.privacy.pseudonym import Pseudonymizer
from bot.privacy.store import TranscriptStore
from bot.testing.fake_engine import FakeEngine
from connectors.router import Router, Unreachable
from tests.integration.databases import database_url, stores  # noqa: F401  (fixtures)

pytestmark = pytest.mark.integration
KEY = b"handoff-workers-test-pseudonym-key-0123456789"
SETTINGS = HandoffSettings(moderators=("mod1", "mod2"), claim_timeout_minutes=10, claimed_silence_minutes=15)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1)

    def __call__(self) -> datetime:
        return self.now


def two_bots(stores: tuple[TranscriptStore, TranscriptStore], clock: Clock) -> tuple[Bot, Bot]:
    a, b = (
        Bot(FakeEngine(), Pseudonymizer(KEY), AssistantSettings(), ConversationMemory(3600), store, clock=clock, handoff=SETTINGS)
        for store in stores
    )
    return a, b


async def say(bot: Bot, text: str, user: str = "ann") -> list[Outgoing]:
    return await bot.handle(Incoming("slack", user, "D1", text))


async def act(bot: Bot, moderator: str, text: str, ticket: int | None = None) -> list[Outgoing]:
    return await bot.moderate(console_action(moderator, text, ticket, SETTINGS.moderators))


def kinds(replies: list[Outgoing]) -> list[tuple[str, str]]:
    return [(reply.kind.value, reply.to) for reply in replies]


async def test_a_handoff_opened_in_one_process_is_worked_from_the_other(stores) -> None:  # type: ignore[no-untyped-def]
    a, b = two_bots(stores, Clock())
    await say(b, "hello")  # B has seen the fan (and, before issue 16, loaded its index)
    started = await say(a, "/human")
    assert ("handoff_ticket", "desk") in kinds(started)
    relayed = await say(b, "are you there?")  # B: relayed to the desk, the model does not answer
    assert kinds(relayed) == [("handoff_relay", "desk")], kinds(relayed)
    assert "already in the queue" in (await say(b, "/human"))[0].text  # no second ticket from B

    claimed = await act(b, "mod1", "/claim Alex")  # the desk action lands on B
    assert kinds(claimed) == [("moderator_joined", "user"), ("moderator_joined", "desk")]
    [reply] = await act(a, "mod1", "Hi, looking at it now.")  # and the reply on A
    assert reply.kind is Kind.MODERATOR_REPLY and reply.recipient == Address("slack", "ann", "D1")
    resolved = await act(a, "mod1", "/resolve")
    assert kinds(resolved) == [("handoff_resolved", "user"), ("handoff_resolved", "desk")]
    answered = await say(b, "I forgot my password")  # B: back with the model
    assert [r.kind for r in answered] == [Kind.ANSWER], kinds(answered)
    assert await b.handoff.find(None) is None and await a.handoff.find(None) is None


async def test_two_claims_at_once_from_two_processes_have_one_winner(stores) -> None:  # type: ignore[no-untyped-def]
    a, b = two_bots(stores, Clock())
    await say(a, "/human")
    for _ in range(5):  # several rounds: a lost race must never let both through
        first, second = await asyncio.gather(act(a, "mod1", "/claim Alex"), act(b, "mod2", "/claim Sam"))
        outcomes = sorted([first[0].kind.value, second[0].kind.value])
        assert outcomes == ["moderator_joined", "refused"], outcomes
        winner = "mod1" if first[0].kind is Kind.MODERATOR_JOINED else "mod2"
        loser_bot = b if winner == "mod1" else a
        assert [r.kind for r in await act(loser_bot, winner, "/unclaim")] == [Kind.HANDOFF_STARTED, Kind.HANDOFF_TICKET]
    claims = [e for e in stores[0].audit_log.entries() if e["action"] == "ticket_claimed"]
    assert len(claims) == 5  # each winning move has its audit record, each losing one none


async def test_an_unclaimed_timeout_checked_by_both_processes_is_told_once(stores) -> None:  # type: ignore[no-untyped-def]
    clock = Clock()
    a, b = two_bots(stores, clock)
    await say(a, "/human")
    clock.now += timedelta(minutes=11)
    notices = await asyncio.gather(a.expire_handoffs(), b.expire_handoffs())
    told = [n for batch in notices for n in batch if n.kind is Kind.HANDOFF_TIMEOUT]
    assert [n.to for n in told] == ["user"]  # the fan, once
    clock.now += timedelta(minutes=30)
    assert await a.expire_handoffs() + await b.expire_handoffs() == []


async def test_a_silent_claim_checked_by_both_processes_is_told_once(stores) -> None:  # type: ignore[no-untyped-def]
    clock = Clock()
    a, b = two_bots(stores, clock)
    await say(a, "/human")
    await act(b, "mod1", "/claim Alex")
    clock.now += timedelta(minutes=16)
    notices = await asyncio.gather(a.expire_handoffs(), b.expire_handoffs())
    told = [n for batch in notices for n in batch if n.kind is Kind.HANDOFF_TIMEOUT]
    assert sorted(n.to for n in told) == ["desk", "user"]  # the fan and the desk, once each
    assert await a.expire_handoffs() + await b.expire_handoffs() == []


async def test_an_operator_release_is_told_once_by_either_process(stores, database_url: str) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    clock = Clock()
    a, b = two_bots(stores, clock)
    await say(a, "/human")
    await act(a, "mod1", "/claim Alex")
    released = await b.handoff.release(1)  # `bot handoff release 1` does this move from its own process
    assert released.status.value == "open"
    notices = await asyncio.gather(a.expire_handoffs(), b.expire_handoffs())
    told = sorted((n.kind.value, n.to) for batch in notices for n in batch)
    assert told == [("handoff_started", "user"), ("handoff_ticket", "desk")]
    assert await a.expire_handoffs() + await b.expire_handoffs() == []
    assert kinds(await act(b, "mod2", "/claim Sam"))[0] == ("moderator_joined", "user")  # back in the queue for anyone


async def test_forget_me_in_one_process_removes_the_ticket_opened_in_the_other(stores) -> None:  # type: ignore[no-untyped-def]
    a, b = two_bots(stores, Clock())
    await say(a, "/human")
    assert (await say(b, "/forget-me confirm"))[0].kind is Kind.ERASURE_DONE
    await b.drain()
    fan = Pseudonymizer(KEY).fan("slack", "ann")
    assert await a.handoff.active(fan) is None
    assert [t for t in await TicketStore(stores[0]).listing(active_only=False) if t.fan == fan] == []
    assert [r.kind for r in await act(a, "mod1", "/claim Alex", 1)] == [Kind.REFUSED]
    again = await say(a, "hello")  # A: a first contact with the model, not a relay to a gone ticket
    assert [r.kind for r in again][:1] == [Kind.DISCLOSURE] and Kind.HANDOFF_RELAY not in [r.kind for r in again]


async def test_one_fan_opening_from_two_processes_at_once_gets_one_ticket(stores) -> None:  # type: ignore[no-untyped-def]
    """Below the per-fan lock: the database's unique index keeps one active ticket per fan."""
    fan = Pseudonymizer(KEY).fan("slack", "ann")
    route = Address("slack", "ann", "D1")
    at = datetime(2026, 1, 1)
    opened = await asyncio.gather(
        *(TicketStore(store).open(fan, "c", route, "asked", at, 5) for store in stores for _ in range(3))
    )
    assert sum(o.new for o in opened) == 1
    assert len({o.ticket.id for o in opened}) == 1 and {o.place for o in opened} == {1}
    assert len(await TicketStore(stores[1]).listing(active_only=True)) == 1


async def test_the_audit_chain_verifies_after_a_two_process_run(stores) -> None:  # type: ignore[no-untyped-def]
    a, b = two_bots(stores, Clock())
    users = [f"fan{n}" for n in range(6)]
    await asyncio.gather(*(say(a if n % 2 else b, "/human", user) for n, user in enumerate(users)))
    for number in range(1, 7):
        await asyncio.gather(act(a, "mod1", "/claim Alex", number), act(b, "mod2", "/claim Sam", number))
    for number in range(1, 7):
        ticket = await a.handoff.find(number)
        assert ticket is not None
        holder = "mod1" if ticket.moderator_name == "Alex" else "mod2"
        await (a if number % 2 else b).moderate(console_action(holder, "/resolve", number, SETTINGS.moderators))
    await asyncio.gather(say(a, "/forget-me confirm", "fan0"), say(b, "/forget-me confirm", "fan1"))
    await a.drain()
    await b.drain()
    report = stores[1].audit_log.verify()
    assert report.ok, report
    actions = [e["action"] for e in stores[0].audit_log.entries()]
    assert actions.count("ticket_claimed") == 6 and actions.count("ticket_resolved") == 6


class ClosedDms:
    """A platform that refuses every DM to the fan for good (as Slack's `user_not_visible` or
    Discord's 50007 do in the stand-ins) and has no other place to ask them."""

    def __init__(self) -> None:
        self.refused = 0

    async def send_to(self, address: Address, message: Outgoing) -> None:
        self.refused += 1
        raise Unreachable("dms_closed")

    async def tell_unreachable(self, address: Address, reason: str) -> None:
        raise Unreachable(reason)


async def test_an_unreachable_fan_is_reported_to_the_desk_once_across_processes(stores) -> None:  # type: ignore[no-untyped-def]
    """A moderator's replies reach both workers' routers; the desk hears once, not once each."""
    a, b = two_bots(stores, Clock())
    desk_lines: list[Outgoing] = []
    routers, channels = [], []
    for bot in (a, b):
        router, channel = Router(ConsoleDesk(desk_lines.append)), ClosedDms()
        router.add_platform("slack", channel)
        router.share_notices(bot.deliveries.first_time)
        routers.append(router)
        channels.append(channel)
    reply = Outgoing(Kind.MODERATOR_REPLY, "Are you there?", ticket="1", from_ai=False, recipient=Address("slack", "ann", "D1"))
    await asyncio.gather(*(router.deliver([reply, reply]) for router in routers))
    for _ in range(100):
        if not any(router._notices for router in routers):  # noqa: SLF001 - the notice tasks have run
            break
        await asyncio.sleep(0.02)
    assert [channel.refused for channel in channels] == [2, 2]
    assert len([line for line in desk_lines if "not reaching the fan" in line.text]) == 1
    for router in routers:
        await router.aclose()
