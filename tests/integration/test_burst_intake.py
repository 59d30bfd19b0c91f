"""A burst of fans through the real slack-bolt and discord.py clients and the stand-ins: the
messages waiting for the model are held in the intake as records, not as a task each with
the SDK's objects (issue 11: what made 5,000 fans cost 60 MB that never came back; the
figures are `bench/soak.py`'s), each fan answered once, in order; past the intake's capacity
a fan is told honestly to write again. The model here is a gate the test opens: what is
measured is what waits in front of it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from bot.engine import EngineResult
from bot.privacy.store import TranscriptStore
from bot.testing.fake_engine import FakeEngine
from connectors.intake import BUSY_TEXT, CONCURRENCY, Intake
from tests.integration.test_discord_connector import discord_world
from tests.integration.test_slack_connector import SlackWorld, start_world

FANS = 120


class GatedEngine(FakeEngine):
    """The fake model, answering only once `gate` opens; counts the calls at once."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.running = 0
        self.most = 0

    async def respond(self, pseudonym: str, text: str) -> EngineResult:
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await self.gate.wait()
            return await super().respond(pseudonym, text)
        finally:
            self.running -= 1


async def until(check: object, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def slack(engine: GatedEngine, store: TranscriptStore) -> AsyncIterator[SlackWorld]:
    worlds = start_world("socket", engine, store)  # type: ignore[arg-type]
    world = await worlds.__anext__()
    try:
        yield world
    finally:
        engine.gate.set()
        with contextlib.suppress(StopAsyncIteration):
            await worlds.__anext__()


async def test_a_slack_burst_waits_as_records_and_every_fan_is_answered_once_in_order(store: TranscriptStore) -> None:
    engine = GatedEngine()
    async with slack(engine, store) as world:
        fans = [f"UBURST{n:04d}" for n in range(FANS)]
        for fan in fans:
            world.standin.add_user(fan, "fan")
        tasks_before, acks_before = len(asyncio.all_tasks()), len(world.standin.acks)
        for fan in fans:
            await world.standin.send_dm(fan, "hello there")
        await world.standin.send_dm(fans[0], "and a refund please")  # the same fan again: after their first
        await until(lambda: len(world.standin.acks) - acks_before == FANS + 1)  # Slack got every ack
        assert len(world.connector._intake) == FANS + 1
        # Every message was taken (and acked) while the model answers none: they wait as
        # records. A task each (the SDK's handler, suspended with its payload) is what is gone.
        assert len(asyncio.all_tasks()) - tasks_before < FANS // 2
        engine.gate.set()
        for fan in fans:
            sent = await world.sent_to(world.dm(fan), count=3 if fan == fans[0] else 2)
            assert "not a human" in (sent[0].text or "")  # the disclosure first
        first = [m.text for m in world.standin.sent if m.channel == world.dm(fans[0])]
        assert (first[1] or "").endswith("[greet answer]") and (first[-1] or "").endswith("[faq_billing answer]")
        await world.settled()
        for fan in fans:
            assert len([m for m in world.standin.sent if m.channel == world.dm(fan)]) == (3 if fan == fans[0] else 2)
        assert engine.most <= CONCURRENCY  # the intake's workers, not the whole burst, reach the model at once


async def test_a_discord_burst_waits_as_records_and_every_fan_is_answered_once_in_order(store: TranscriptStore) -> None:
    engine = GatedEngine()
    async with discord_world(engine, store) as world:  # type: ignore[arg-type]
        fans = [1_500_000_000_000_000_000 + n for n in range(FANS)]
        for fan in fans:
            world.standin.add_user(fan, "fan")
        tasks_before = len(asyncio.all_tasks())
        ids = [await world.standin.send_dm(fan, "hello there") for fan in fans]
        await world.standin.send_dm(fans[0], "and a refund please")
        await until(lambda: len(world.connector._intake) == FANS + 1)
        assert len(asyncio.all_tasks()) - tasks_before < FANS // 2
        engine.gate.set()
        for fan, message_id in zip(fans, ids):
            sent = await world.sent(world.dm(fan), count=3 if fan == fans[0] else 2)
            assert "not a human" in sent[0].content
            # Replied to from ids alone (no discord.Message kept): still a reply to the fan's message.
            assert int(sent[0].message_reference["message_id"]) == message_id
        first = [m.content for m in world.standin.sent if m.channel_id == world.dm(fans[0])]
        assert first[1].endswith("[greet answer]") and first[-1].endswith("[faq_billing answer]")
        await world.settled()
        for fan in fans:
            assert len([m for m in world.standin.sent if m.channel_id == world.dm(fan)]) == (3 if fan == fans[0] else 2)
        engine.gate.set()


async def test_past_the_intakes_capacity_a_fan_is_told_to_write_again(store: TranscriptStore) -> None:
    engine = GatedEngine()
    async with slack(engine, store) as world:
        world.connector._intake = Intake(world.connector._answer_taken, concurrency=1, capacity=1, platform="slack")
        for fan in ("UFULL1", "UFULL2"):
            world.standin.add_user(fan, "fan")
        await world.standin.send_dm("UFULL1", "hello")
        await until(lambda: len(world.connector._intake) == 1)
        await world.standin.send_dm("UFULL2", "hello")
        (busy,) = await world.sent_to(world.dm("UFULL2"), contains="more messages are reaching me")
        assert busy.text == BUSY_TEXT or BUSY_TEXT in (busy.text or "")
        assert "AI assistant" in BUSY_TEXT  # nothing reaches a fan before they know an AI answers
        engine.gate.set()
        await world.sent_to(world.dm("UFULL1"), count=2)


async def test_discords_buttons_are_not_kept_by_discord_py_and_idle_rate_limit_buckets_go(store: TranscriptStore) -> None:
    engine = GatedEngine()
    engine.gate.set()
    async with discord_world(engine, store) as world:  # type: ignore[arg-type]
        fans = [1_600_000_000_000_000_000 + n for n in range(5)]
        for fan in fans:
            world.standin.add_user(fan, "fan")
            await world.standin.send_dm(fan, "I need a refund")
        for fan in fans:
            answer = (await world.sent(world.dm(fan), count=2))[1]
            assert answer.components, "the answer carries its Helpful / Not helpful buttons"
        # discord.py keeps every unfinished View it sends until it times out (never, here);
        # clicks are answered by custom_id, so it must keep none.
        assert world.connector.client._connection._view_store._views == {}
        http = world.connector.client.http
        assert len(http._buckets) >= len(fans)  # a bucket per DM channel written to
        await asyncio.sleep(1.1)  # the stand-in's rate-limit windows (1 s, as Discord's headers say) are over
        assert world.connector.release_idle(idle_seconds=0.0) >= len(fans)
        assert len(http._buckets) < len(fans)
        await world.standin.send_dm(fans[0], "hello again")  # a dropped bucket is made afresh
        await world.sent(world.dm(fans[0]), count=3)
        assert world.connector.release_idle(idle_seconds=0.0) == 0  # a window still running is kept
        assert len(http._buckets) >= 1


class SlowWhenAsked(GatedEngine):
    """Answers at once, except a message saying "slow", which waits for the gate."""

    async def respond(self, pseudonym: str, text: str) -> EngineResult:
        if "slow" in text:
            return await super().respond(pseudonym, text)
        return await FakeEngine.respond(self, pseudonym, text)


async def test_a_message_still_waiting_when_its_fan_erases_everything_is_dropped_not_stored(store: TranscriptStore) -> None:
    engine = SlowWhenAsked()
    async with slack(engine, store) as world:
        fan = "UERASER"
        world.standin.add_user(fan, "fan")
        await world.standin.send_dm(fan, "a slow question")  # holds the fan's turn while the model thinks
        await until(lambda: engine.running == 1)
        await world.standin.send_dm(fan, "I need a refund")  # waits in the intake behind it
        await until(lambda: len(world.connector._intake) == 2)
        await world.standin.send_command("/forget-me", "confirm", fan, world.dm(fan))  # waits for the fan's turn
        await asyncio.sleep(0.3)
        engine.gate.set()
        await world.standin.wait_for_sent(lambda m: m.method == "response_url" and "erased" in (m.text or "").lower(), timeout=20)
        await until(lambda: len(world.connector._intake) == 0)
        await world.settled()
        texts = [m.text or "" for m in world.standin.sent if m.channel == world.dm(fan)]
        assert not [t for t in texts if "[faq_billing answer]" in t]  # the waiting message went with the rest
        pseudonym = world.bot._pseudonyms.fan("slack", fan)
        assert (await store.export(pseudonym, "test"))["turns"] == []
        assert not store.holds_key(pseudonym)
