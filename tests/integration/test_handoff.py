"""Human handoff, scripted through `bot replay`'s own code on a real SQLite store.

The dialogue model is the fake engine here (the handoff does not depend on its answers);
`test_cli.py` plays a handoff through the real model and a real process.
"""

from __future__ import annotations

import asyncio
import io
import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from bot.config import AssistantSettings, HandoffSettings
from bot.conversation import ConversationMemory
from bot.core import Bot
from bot.handoff.actions import console_action
from bot.messages import Incoming
from bot.privacy.crypto import MasterKeys
from bot.privacy.pseudonym import Pseudonymizer
from bot.privacy.store import TranscriptStore
from bot.replay import replay
from bot.testing.fake_engine import FakeEngine

KEY = b"handoff-test-pseudonym-key-0123456789abcdef"
SETTINGS = HandoffSettings(moderators=("mod1", "mod2"), claim_timeout_minutes=1)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def master() -> MasterKeys:
    return MasterKeys.parse(MasterKeys.generate())


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/transcripts.db"


def make_bot(store: TranscriptStore, clock: Clock, engine: FakeEngine | None = None) -> Bot:
    return Bot(
        engine or FakeEngine(), Pseudonymizer(KEY), AssistantSettings(), ConversationMemory(3600), store,
        clock=clock, handoff=SETTINGS,
    )


async def play(bot: Bot, *lines: dict) -> list[dict]:  # type: ignore[type-arg]
    out, err = io.StringIO(), io.StringIO()
    assert await replay(bot, [json.dumps(line) for line in lines], out, err) == 0, err.getvalue()
    return [json.loads(line) for line in out.getvalue().splitlines()]


def summary(lines: list[dict]) -> list[tuple[str, str, str]]:  # type: ignore[type-arg]
    return [(line["to"], line["user"], line["kind"]) for line in lines]


async def test_ask_claim_talk_resolve_and_the_bot_answers_again(url: str, master: MasterKeys) -> None:
    store = TranscriptStore.open(url, None, master)
    bot = make_bot(store, Clock())
    lines = await play(
        bot,
        {"user": "ann", "text": "hello, my refund never arrived, mail ann@example.com"},
        {"user": "ann", "text": "/human"},
        {"user": "ann", "text": "are you there?"},
        {"moderator": "mod1", "ticket": "last", "text": "/claim Alex"},
        {"moderator": "mod1", "ticket": "1", "text": "Hi Ann, I'm looking at your refund now."},
        {"user": "ann", "text": "thank you!"},
        {"moderator": "mod1", "ticket": "last", "text": "/resolve"},
        {"user": "ann", "text": "hello"},
    )
    assert summary(lines) == [
        ("user", "ann", "disclosure"),
        ("user", "ann", "answer"),
        ("user", "ann", "handoff_started"),
        ("desk", "ann", "handoff_ticket"),
        ("desk", "ann", "handoff_relay"),
        ("user", "ann", "moderator_joined"),
        ("desk", "mod1", "moderator_joined"),
        ("user", "ann", "moderator_reply"),
        ("desk", "ann", "handoff_relay"),
        ("user", "ann", "handoff_resolved"),
        ("desk", "mod1", "handoff_resolved"),
        ("user", "ann", "answer"),
    ]
    packet = lines[3]["text"]
    assert "Ticket #1" in packet and "the fan asked for a person" in packet
    assert "[EMAIL]" in packet and "ann@example.com" not in packet  # history is redacted
    assert "AI disclosure shown: 2026-01-01 00:00:00 UTC" in packet
    assert "place 1" in lines[2]["text"]
    assert "Alex" in lines[5]["text"] and "mod1" not in lines[5]["text"]
    assert lines[7]["text"].startswith("Alex (human moderator): ")
    assert all(line["ticket"] == "1" for line in lines[2:11])
    actions = [entry["action"] for entry in store.audit_log.entries()]
    assert actions == ["ticket_claimed", "ticket_resolved"]
    assert all(entry["actor"] not in ("mod1", "ann") and len(entry["actor"]) == 64 for entry in store.audit_log.entries())
    await store.aclose()


async def test_non_moderators_are_refused_and_only_the_claimer_replies(url: str, master: MasterKeys) -> None:
    store = TranscriptStore.open(url, None, master)
    lines = await play(
        make_bot(store, Clock()),
        {"user": "ann", "text": "/human"},
        {"moderator": "eve", "ticket": "last", "text": "/claim"},
        {"moderator": "mod1", "ticket": "last", "text": "hello?"},
        {"moderator": "mod1", "ticket": "last", "text": "/claim Alex"},
        {"moderator": "mod2", "ticket": "last", "text": "I'll take it"},
        {"moderator": "mod2", "ticket": "last", "text": "/resolve"},
        {"moderator": "mod1", "ticket": "last", "text": "/dance"},
        {"moderator": "mod1", "ticket": "7", "text": "/claim"},
    )
    assert [line["kind"] for line in lines[3:]] == [
        "refused",  # eve is no moderator
        "refused",  # a reply before anyone claimed
        "moderator_joined", "moderator_joined",
        "refused",  # mod2 replying to mod1's ticket
        "refused",  # mod2 resolving it
        "refused",  # unknown desk command
        "refused",  # no ticket 7
    ]
    assert all(line["to"] == "desk" for line in lines[3:] if line["kind"] == "refused")
    await store.aclose()


async def test_two_moderators_claiming_at_once_one_wins(url: str, master: MasterKeys) -> None:
    store = TranscriptStore.open(url, None, master)
    bot = make_bot(store, Clock())
    await bot.handle(Incoming("replay", "ann", "direct", "/human"))
    results = await asyncio.gather(
        bot.moderate(console_action("mod1", "/claim Alex", None, bot.handoff.settings.moderators)),
        bot.moderate(console_action("mod2", "/claim Sam", None, bot.handoff.settings.moderators)),
    )
    kinds = sorted(tuple(reply.kind.value for reply in result) for result in results)
    assert kinds == [("moderator_joined", "moderator_joined"), ("refused",)]
    # and in the database, without the fan lock: the conditional update decides
    ticket = await bot.handoff.find(1)
    assert ticket is not None and ticket.moderator_name in ("Alex", "Sam")
    await store.aclose()


async def test_an_unclaimed_ticket_times_out_once_with_honest_options(url: str, master: MasterKeys) -> None:
    store = TranscriptStore.open(url, None, master)
    clock = Clock()
    bot = make_bot(store, clock)
    await bot.handle(Incoming("replay", "ann", "direct", "/human"))
    clock.now += timedelta(seconds=59)
    assert await bot.expire_handoffs() == []
    clock.now += timedelta(seconds=2)
    notices = await bot.expire_handoffs()
    assert [(n.kind.value, n.recipient.user_id if n.recipient else None) for n in notices] == [("handoff_timeout", "ann")]
    assert "/human cancel" in notices[0].text and "keep waiting" in notices[0].text
    assert await bot.expire_handoffs() == []  # told once
    back = await bot.handle(Incoming("replay", "ann", "direct", "/human cancel"))
    assert [(r.to, r.kind.value) for r in back] == [("user", "handoff_resolved"), ("desk", "handoff_resolved")]
    assert [r.kind.value for r in await bot.handle(Incoming("replay", "ann", "direct", "refund"))] == ["answer"]
    await store.aclose()


async def test_a_restart_mid_handoff_resumes_it(url: str, master: MasterKeys) -> None:
    store = TranscriptStore.open(url, None, master)
    first = make_bot(store, Clock())
    await play(first, {"user": "ann", "text": "/human"}, {"moderator": "mod1", "ticket": "last", "text": "/claim Alex"})
    await store.aclose()

    reopened = TranscriptStore.open(url, None, master)  # a new process on the same store
    engine = FakeEngine()
    second = make_bot(reopened, Clock(), engine)
    lines = await play(
        second,
        {"user": "ann", "text": "still there?"},
        {"moderator": "mod1", "ticket": "last", "text": "Yes, still here."},
    )
    assert summary(lines) == [("desk", "ann", "handoff_relay"), ("user", "ann", "moderator_reply")]
    assert engine.seen == []  # the model never answered: the fan stayed with the human
    await reopened.aclose()


async def test_erasure_during_an_open_handoff_tells_the_desk(url: str, master: MasterKeys) -> None:
    store = TranscriptStore.open(url, None, master)
    lines = await play(
        make_bot(store, Clock()),
        {"user": "ann", "text": "/human"},
        {"moderator": "mod1", "ticket": "last", "text": "/claim Alex"},
        {"user": "ann", "text": "/forget-me confirm"},
        {"moderator": "mod1", "ticket": "1", "text": "hello?"},
        {"user": "ann", "text": "hello"},
    )
    assert summary(lines)[5:] == [
        ("user", "ann", "erasure_done"),
        ("desk", "ann", "handoff_resolved"),
        ("desk", "mod1", "refused"),
        ("user", "ann", "disclosure"),
        ("user", "ann", "answer"),
    ]
    assert "erased at the fan's request" in lines[6]["text"]
    assert "handoff tickets (1)" in lines[5]["text"]
    assert await store.count_turns() == 3  # only what came after the erasure: disclosure, message, answer
    await store.aclose()


async def test_offers_after_two_fallbacks_and_after_a_complaint(url: str, master: MasterKeys) -> None:
    store = TranscriptStore.open(url, None, master)
    lines = await play(
        make_bot(store, Clock()),
        {"user": "ann", "text": "blorp"},
        {"user": "ann", "text": "zzkq"},
        {"user": "ann", "text": "yes"},
        {"user": "bob", "text": "this is useless"},
        {"user": "bob", "text": "yes"},
    )
    assert summary(lines) == [
        ("user", "ann", "disclosure"),
        ("user", "ann", "fallback"),
        ("user", "ann", "fallback"),
        ("user", "ann", "handoff_offer"),
        ("user", "ann", "handoff_started"),
        ("desk", "ann", "handoff_ticket"),
        ("user", "bob", "disclosure"),
        ("user", "bob", "answer"),
        ("user", "bob", "handoff_offer"),
        ("user", "bob", "handoff_started"),
        ("desk", "bob", "handoff_ticket"),
    ]
    assert "could not answer twice" in lines[5]["text"] and "complained" in lines[10]["text"]
    await store.aclose()


async def test_commands_still_work_during_a_handoff_and_relays_are_kept_with_privacy_off(
    url: str, master: MasterKeys
) -> None:
    store = TranscriptStore.open(url, None, master)
    bot = make_bot(store, Clock())
    lines = await play(
        bot,
        {"user": "ann", "text": "/privacy off"},
        {"user": "ann", "text": "/human"},
        {"user": "ann", "text": "my order is late"},
        {"user": "ann", "text": "/why"},
        {"user": "ann", "text": "/my-data"},
    )
    assert [line["kind"] for line in lines] == [
        "disclosure", "privacy_notice", "handoff_started", "handoff_ticket", "handoff_relay", "explanation", "data_export",
    ]
    assert "my order is late" in lines[-1]["text"]  # the relay was kept for the handoff the fan asked for
    await store.aclose()


async def test_unclaim_and_transfer(url: str, master: MasterKeys) -> None:
    store = TranscriptStore.open(url, None, master)
    lines = await play(
        make_bot(store, Clock()),
        {"user": "ann", "text": "/human"},
        {"moderator": "mod1", "ticket": "last", "text": "/claim Alex"},
        {"moderator": "mod1", "ticket": "last", "text": "/unclaim"},
        {"moderator": "mod2", "ticket": "last", "text": "/claim Sam"},
        {"moderator": "mod2", "ticket": "last", "text": "/transfer mod1 Alex"},
        {"moderator": "mod2", "ticket": "last", "text": "still me?"},
        {"moderator": "mod1", "ticket": "last", "text": "Alex here again."},
    )
    assert summary(lines)[5:] == [
        ("user", "ann", "handoff_started"),
        ("desk", "mod1", "handoff_ticket"),
        ("user", "ann", "moderator_joined"),
        ("desk", "mod2", "moderator_joined"),
        ("user", "ann", "moderator_joined"),
        ("desk", "mod2", "moderator_joined"),
        ("desk", "mod2", "refused"),
        ("user", "ann", "moderator_reply"),
    ]
    actions = [entry["action"] for entry in store.audit_log.entries()]
    assert actions == ["ticket_claimed", "ticket_unclaimed", "ticket_claimed", "ticket_transferred"]
    await store.aclose()


async def test_closed_tickets_are_kept_only_as_long_as_retention_allows(url: str, master: MasterKeys) -> None:
    store = TranscriptStore.open(url, None, master)
    clock = Clock()
    bot = make_bot(store, clock)
    await play(bot, {"user": "ann", "text": "/human"}, {"user": "bob", "text": "/human"}, {"user": "ann", "text": "/human cancel"})
    clock.now += timedelta(days=31)
    await store.purge(clock.now - timedelta(days=30))
    remaining = await bot.handoff.tickets.listing(active_only=False)
    assert [(t.id, t.status.value) for t in remaining] == [(2, "open")]  # the open one stays
    await store.aclose()


async def test_a_first_message_human_still_reports_the_disclosure_to_the_desk(url: str, master: MasterKeys) -> None:
    store = TranscriptStore.open(url, None, master)
    lines = await play(make_bot(store, Clock()), {"user": "ann", "text": "/human"})
    assert [line["kind"] for line in lines] == ["disclosure", "handoff_started", "handoff_ticket"]
    assert "AI disclosure shown: 2026-01-01 00:00:00 UTC" in lines[2]["text"]
    await store.aclose()
